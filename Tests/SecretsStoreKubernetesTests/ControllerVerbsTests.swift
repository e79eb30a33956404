import Foundation
import Logging
import NIOHTTP1
import SecretsStoreCore
import SecretsStoreKubernetes
import SecretsStoreTesting
import Testing

@Suite("Controller verbs of the REST client against the fake API server")
struct ControllerVerbsTests {
    static let spcCollection = "/apis/secrets-store.csi.x-k8s.io/v1/namespaces/ns/secretproviderclasses"
    let logger = Logger(label: "test")

    static func spc(_ name: String, provider: String = "azure") -> [String: Any] {
        [
            "apiVersion": "secrets-store.csi.x-k8s.io/v1", "kind": "SecretProviderClass",
            "metadata": ["name": name],
            "spec": [
                "provider": provider, "parameters": ["keyvaultName": "kv"], "refreshInterval": "1m",
                "sync": ["serviceAccountName": "sa", "nodePublishSecretRef": ["name": "creds"]],
            ],
        ]
    }

    func withClient(
        bookmarkInterval: Duration = .seconds(60),
        tokenIssuer: @escaping FakeKubernetesAPIServer.TokenIssuer = { _, _, _, _ in "issued-t0ken" },
        _ body: (FakeKubernetesAPIServer, RESTKubernetesClient) async throws -> Void
    ) async throws {
        let server = try await FakeKubernetesAPIServer(requiredToken: "t0ken", bookmarkInterval: bookmarkInterval, tokenIssuer: tokenIssuer)
        let client = try RESTKubernetesClient(configuration: KubernetesConfiguration(server: server.url, credentials: .token("t0ken")))
        do {
            try await body(server, client)
        } catch {
            try await client.shutdown()
            try await server.shutdown()
            throw error
        }
        try await client.shutdown()
        try await server.shutdown()
    }

    @Test func listsAndReadsTheSyncFields() async throws {
        try await withClient { server, client in
            server.seed(path: Self.spcCollection, object: Self.spc("a"))
            server.seed(path: "/apis/secrets-store.csi.x-k8s.io/v1/namespaces/other/secretproviderclasses", object: Self.spc("b"))
            let all = try await client.listSecretProviderClasses(namespace: nil, logger: logger)
            #expect(all.items.map(\.name).sorted() == ["a", "b"])
            #expect(all.resourceVersion == "2")
            let one = try await client.listSecretProviderClasses(namespace: "ns", logger: logger)
            #expect(one.items.map(\.name) == ["a"])
            let spc = try await client.secretProviderClass(namespace: "ns", name: "a", logger: logger)
            #expect(spc.refreshInterval == "1m")
            #expect(spc.sync == .init(serviceAccountName: "sa", nodePublishSecretRefName: "creds"))
            #expect(!spc.uid.isEmpty)
            #expect(spc.resourceVersion == "1")
            #expect(one.items.first == spc)
            let paths = server.requests.map(\.path)
            #expect(paths.contains("/apis/secrets-store.csi.x-k8s.io/v1/secretproviderclasses"))
        }
    }

    @Test func watchSeesAddedModifiedAndDeleted() async throws {
        try await withClient { server, client in
            server.seed(path: Self.spcCollection, object: Self.spc("a"))
            let listed = try await client.listSecretProviderClasses(namespace: "ns", logger: logger)
            server.seed(path: Self.spcCollection, object: Self.spc("b"))
            server.seed(path: Self.spcCollection, object: Self.spc("b", provider: "gcp"))
            _ = try await client.send(.DELETE, Self.spcCollection + "/a", logger: logger)
            var events: [String] = []
            for try await event in client.watchSecretProviderClasses(namespace: "ns", resourceVersion: listed.resourceVersion, logger: logger) {
                switch event {
                case .added(let spc): events.append("added \(spc.name) \(spc.provider)")
                case .modified(let spc): events.append("modified \(spc.name) \(spc.provider)")
                case .deleted(let spc): events.append("deleted \(spc.name)")
                case .bookmark: continue
                }
                if events.count == 3 { break }
            }
            #expect(events == ["added b azure", "modified b gcp", "deleted a"])
            let watch = try #require(server.requests.last { $0.path.hasSuffix("/secretproviderclasses") && $0.method == "GET" })
            #expect(watch.authorization == "Bearer t0ken")
        }
    }

    @Test func watchDeliversBookmarksAndEndsWhenTheServerCloses() async throws {
        try await withClient(bookmarkInterval: .milliseconds(20)) { server, client in
            let listed = try await client.listSecretProviderClasses(namespace: nil, logger: logger)
            var bookmarks = 0
            for try await event in client.watchSecretProviderClasses(namespace: nil, resourceVersion: listed.resourceVersion, logger: logger) {
                guard case .bookmark(let version) = event else { continue }
                #expect(version == listed.resourceVersion)
                bookmarks += 1
                if bookmarks == 2 { server.closeWatches() }
            }
            #expect(bookmarks >= 2)
        }
    }

    @Test func expiredResourceVersionIsRejectedWith410() async throws {
        try await withClient { server, client in
            server.seed(path: Self.spcCollection, object: Self.spc("a"))
            server.seed(path: Self.spcCollection, object: Self.spc("b"))
            server.expireHistory()
            await #expect {
                for try await _ in client.watchSecretProviderClasses(namespace: "ns", resourceVersion: "1", logger: logger) {}
            } throws: { error in
                guard case .rejected(status: 410, _)? = error as? KubernetesClientError else { return false }
                return true
            }
        }
    }

    @Test func watchHTTPErrorsMapAsRequestsDo() async throws {
        try await withClient { server, client in
            server.injectFailure(status: 403, forPathContaining: "secretproviderclasses")
            await #expect(throws: KubernetesClientError.forbidden("injected failure")) {
                for try await _ in client.watchSecretProviderClasses(namespace: "ns", resourceVersion: "0", logger: logger) {}
            }
            server.injectFailure(status: 503, forPathContaining: "secrets")
            await #expect {
                for try await _ in client.watchSecrets(namespace: nil, labelSelector: [:], resourceVersion: "0", logger: logger) {}
            } throws: { error in
                guard case .unavailable(let message)? = error as? KubernetesClientError else { return false }
                return message.contains("HTTP 503") && !message.contains("t0ken")
            }
        }
    }

    @Test func cancellingTheConsumerClosesTheWatch() async throws {
        try await withClient { server, client in
            server.seed(path: Self.spcCollection, object: Self.spc("a"))
            let stream = client.watchSecretProviderClasses(namespace: "ns", resourceVersion: "0", logger: logger)
            let consumer = Task {
                for try await _ in stream {}
            }
            while server.openWatchCount == 0 { try await Task.sleep(for: .milliseconds(5)) }
            consumer.cancel()
            _ = await consumer.result
            // The server sees the connection go; wait for it (the suite's time limit guards a hang).
            while server.openWatchCount != 0 { try await Task.sleep(for: .milliseconds(5)) }
        }
    }

    @Test func listsWatchesAndDeletesLabelledSecrets() async throws {
        try await withClient { server, client in
            let managed = ["secrets-store.csi.k8s.io/managed": "true"]
            func secret(_ name: String, labels: [String: String]) -> [String: Any] {
                ["apiVersion": "v1", "kind": "Secret", "metadata": ["name": name, "labels": labels], "type": "Opaque", "data": ["k": "dg=="]]
            }
            server.seed(path: "/api/v1/namespaces/ns/secrets", object: secret("kept", labels: managed))
            server.seed(path: "/api/v1/namespaces/ns/secrets", object: secret("other", labels: [:]))
            let listed = try await client.listSecrets(namespace: nil, labelSelector: managed, logger: logger)
            #expect(listed.items.map(\.name) == ["kept"])
            #expect(listed.items.first?.data == ["k": Array("v".utf8)])
            #expect(server.requests.last?.path == "/api/v1/secrets")
            try await client.deleteSecret(namespace: "ns", name: "kept", logger: logger)
            try await client.deleteSecret(namespace: "ns", name: "kept", logger: logger)
            server.seed(path: "/api/v1/namespaces/ns/secrets", object: secret("other2", labels: [:]))
            server.seed(path: "/api/v1/namespaces/ns/secrets", object: secret("new", labels: managed))
            for try await event in client.watchSecrets(namespace: "ns", labelSelector: managed, resourceVersion: listed.resourceVersion, logger: logger) {
                if case .deleted(let gone) = event {
                    #expect(gone.name == "kept")
                } else if case .added(let added) = event {
                    #expect(added.name == "new")
                    break
                }
            }
        }
    }

    @Test func tokenRequestRoundTrip() async throws {
        try await withClient { server, client in
            await #expect(throws: KubernetesClientError.self) {
                _ = try await client.requestToken(namespace: "ns", serviceAccount: "sa", audience: "api://x", expirationSeconds: 3600, logger: logger)
            }
            #expect(try await client.serviceAccountExists(namespace: "ns", name: "sa", logger: logger) == false)
            server.seed(path: "/api/v1/namespaces/ns/serviceaccounts", object: ["apiVersion": "v1", "kind": "ServiceAccount", "metadata": ["name": "sa"]])
            #expect(try await client.serviceAccountExists(namespace: "ns", name: "sa", logger: logger))
            let before = Int64(Date().timeIntervalSince1970)
            let token = try await client.requestToken(namespace: "ns", serviceAccount: "sa", audience: "api://x", expirationSeconds: 3600, logger: logger)
            #expect(token.token == "issued-t0ken")
            #expect(token.expiresAtSeconds >= before + 3600 - 1)
            #expect(RFC3339.epochSeconds(token.expirationTimestamp) == token.expiresAtSeconds)
            #expect(!"\(token)".contains("issued-t0ken"))
            #expect(server.tokenRequests == [.init(namespace: "ns", serviceAccount: "sa", audiences: ["api://x"], expirationSeconds: 3600)])
        }
    }

    @Test func readsCSIDriverAudiences() async throws {
        try await withClient { server, client in
            await #expect(throws: KubernetesClientError.notFound("csidrivers.storage.k8s.io \"secrets-store.csi.k8s.io\" not found")) {
                _ = try await client.csiDriverTokenAudiences(driverName: "secrets-store.csi.k8s.io", logger: logger)
            }
            server.seed(
                path: "/apis/storage.k8s.io/v1/csidrivers",
                object: [
                    "apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver", "metadata": ["name": "secrets-store.csi.k8s.io"],
                    "spec": ["tokenRequests": [["audience": "api://AzureADTokenExchange"], ["audience": "b", "expirationSeconds": 600]]],
                ]
            )
            let audiences = try await client.csiDriverTokenAudiences(driverName: "secrets-store.csi.k8s.io", logger: logger)
            #expect(audiences == ["api://AzureADTokenExchange", "b"])
            server.seed(path: "/apis/storage.k8s.io/v1/csidrivers", object: ["apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver", "metadata": ["name": "plain"], "spec": [:]])
            #expect(try await client.csiDriverTokenAudiences(driverName: "plain", logger: logger) == [])
        }
    }

    @Test func leaseCreateUpdateAndConflict() async throws {
        try await withClient { _, client in
            #expect(try await client.lease(namespace: "ns", name: "controller", logger: logger) == nil)
            let record = LeaseRecord(
                namespace: "ns", name: "controller", holderIdentity: "me", leaseDurationSeconds: 15,
                acquireTime: "2026-12-01T23:00:00.123456Z", renewTime: "2026-12-01T23:00:00.123456Z", leaseTransitions: 0
            )
            let created = try await client.createLease(record, logger: logger)
            #expect(created.holderIdentity == "me")
            #expect(created.acquireTime == "2026-12-01T23:00:00.123456Z")
            #expect(created.resourceVersion != nil)
            await #expect(throws: KubernetesClientError.self) { _ = try await client.createLease(record, logger: logger) }
            var renewed = created
            renewed.renewTime = "2026-12-01T23:00:05.000001Z"
            let written = try await client.updateLease(renewed, logger: logger)
            #expect(written.renewTime == "2026-12-01T23:00:05.000001Z")
            #expect(written.resourceVersion != created.resourceVersion)
            #expect(try await client.lease(namespace: "ns", name: "controller", logger: logger) == written)
            var stale = created
            stale.holderIdentity = "someone-else"
            stale.leaseTransitions = 1
            await #expect {
                _ = try await client.updateLease(stale, logger: logger)
            } throws: { error in
                guard case .conflict? = error as? KubernetesClientError else { return false }
                return true
            }
        }
    }

    @Test func patchesTheClassStatusAndRecordsEvents() async throws {
        try await withClient { server, client in
            server.seed(path: Self.spcCollection, object: Self.spc("a"))
            let status = SecretProviderClassStatus(
                conditions: [.init(type: "Ready", status: "True", reason: "Synced", message: "ok", lastTransitionTime: "2026-01-01T00:00:00Z", observedGeneration: 1)],
                lastSyncTime: "2026-01-01T00:00:01Z",
                objects: [ObjectVersion(id: "secret/a", version: "1")],
                syncedSecrets: ["s"]
            )
            try await client.updateSecretProviderClassStatus(namespace: "ns", name: "a", status: status, logger: logger)
            let patch = try #require(server.requests.last)
            #expect(patch.method == "PATCH")
            #expect(patch.path == Self.spcCollection + "/a/status")
            #expect(patch.contentType == "application/merge-patch+json")
            let stored = try #require(server.object(at: Self.spcCollection + "/a")?["status"] as? [String: Any])
            #expect(stored["lastSyncTime"] as? String == "2026-01-01T00:00:01Z")
            #expect(stored["syncedSecrets"] as? [String] == ["s"])
            #expect((stored["conditions"] as? [[String: Any]])?.first?["reason"] as? String == "Synced")
            try await client.updateSecretProviderClassStatus(
                namespace: "ns", name: "a",
                status: .init(conditions: [.init(type: "Ready", status: "False", reason: "ProviderError", message: "no", lastTransitionTime: "2026-01-01T00:00:02Z", observedGeneration: 1)]),
                logger: logger
            )
            let replaced = try #require(server.object(at: Self.spcCollection + "/a")?["status"] as? [String: Any])
            #expect(replaced["lastSyncTime"] == nil)
            #expect(replaced["syncedSecrets"] == nil)
            #expect(replaced["objects"] == nil)
            await #expect(throws: KubernetesClientError.notFound("secretproviderclasses.secrets-store.csi.x-k8s.io \"nope\" not found")) {
                try await client.updateSecretProviderClassStatus(namespace: "ns", name: "nope", status: status, logger: logger)
            }

            try await client.recordEvent(
                SecretProviderClassEvent(namespace: "ns", name: "a", uid: "u-1", kind: .warning, reason: "SecretSyncFailed", message: "provider failed"),
                logger: logger
            )
            let post = try #require(server.requests.last)
            #expect(post.path == "/api/v1/namespaces/ns/events")
            let event = try #require(try JSONSerialization.jsonObject(with: Data(post.body.utf8)) as? [String: Any])
            let involved = try #require(event["involvedObject"] as? [String: Any])
            #expect(involved["apiVersion"] as? String == "secrets-store.csi.x-k8s.io/v1")
            #expect(involved["kind"] as? String == "SecretProviderClass")
            #expect(involved["uid"] as? String == "u-1")
            #expect((event["source"] as? [String: Any])?["component"] as? String == "secrets-store-csi-driver-controller")
            #expect(event["type"] as? String == "Warning")
        }
    }
}
