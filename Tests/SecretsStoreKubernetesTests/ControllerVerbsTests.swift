import Foundation
import Logging
import SecretsStoreCore
import SecretsStoreCoreTesting
import SecretsStoreKubernetes
import SecretsStoreTesting
import Testing

/// The sync controller's verbs against a real API server (etcd + kube-apiserver, our CRDs applied): each test
/// in a namespace of its own.
@Suite("Controller verbs of the REST client against a real API server", .realAPIServer, .timeLimit(.minutes(3)))
struct ControllerVerbsTests {
    let logger = Logger(label: "test")

    static func spcCollection(_ namespace: String) -> String {
        "/apis/secrets-store.csi.x-k8s.io/v1/namespaces/\(namespace)/secretproviderclasses"
    }

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

    static func metadata(_ object: [String: Any]?) -> [String: Any] { object?["metadata"] as? [String: Any] ?? [:] }

    func withNamespace(_ body: (RealKubernetesAPIServer, RESTKubernetesClient, String) async throws -> Void) async throws {
        let api = try await RealKubernetesAPIServer.shared()
        try await api.withNamespace { client, namespace in try await body(api, client, namespace) }
    }

    @Test func listsAndReadsTheSyncFields() async throws {
        try await withNamespace { api, client, ns in
            let other = try await api.createNamespace(client)
            let created = try await client.create(Self.spcCollection(ns), Self.spc("a"))
            try await client.create(Self.spcCollection(other), Self.spc("b"))
            // Every namespace: other tests' classes too, so only ours are compared.
            let all = try await client.listSecretProviderClasses(namespace: nil, logger: logger)
            let ours = all.items.filter { $0.namespace == ns || $0.namespace == other }
            #expect(ours.map { "\($0.namespace)/\($0.name)" }.sorted() == ["\(ns)/a", "\(other)/b"].sorted())
            #expect(Int(all.resourceVersion) != nil)
            let one = try await client.listSecretProviderClasses(namespace: ns, logger: logger)
            #expect(one.items.map(\.name) == ["a"])
            #expect(Int(one.resourceVersion) != nil)
            let spc = try await client.secretProviderClass(namespace: ns, name: "a", logger: logger)
            #expect(spc.namespace == ns)
            #expect(spc.refreshInterval == "1m")
            #expect(spc.sync == .init(serviceAccountName: "sa", nodePublishSecretRefName: "creds"))
            #expect(spc.uid == Self.metadata(created)["uid"] as? String && !spc.uid.isEmpty)
            #expect(spc.resourceVersion == Self.metadata(created)["resourceVersion"] as? String)
            #expect(spc.generation == 1)
            #expect(one.items.first == spc)
        }
    }

    @Test func watchSeesAddedModifiedAndDeleted() async throws {
        try await withNamespace { _, client, ns in
            let collection = Self.spcCollection(ns)
            try await client.create(collection, Self.spc("a"))
            let listed = try await client.listSecretProviderClasses(namespace: ns, logger: logger)
            try await client.create(collection, Self.spc("b"))
            try await client.mergePatch(collection + "/b", ["spec": ["provider": "gcp"]])
            try await client.delete(collection + "/a")
            var events: [String] = []
            for try await event in client.watchSecretProviderClasses(namespace: ns, resourceVersion: listed.resourceVersion, logger: logger) {
                switch event {
                case .added(let spc): events.append("added \(spc.name) \(spc.provider)")
                case .modified(let spc): events.append("modified \(spc.name) \(spc.provider)")
                case .deleted(let spc): events.append("deleted \(spc.name)")
                case .bookmark: continue
                }
                if events.count == 3 { break }
            }
            #expect(events == ["added b azure", "modified b gcp", "deleted a"])
        }
    }

    @Test func listsWatchesAndDeletesLabelledSecrets() async throws {
        try await withNamespace { _, client, ns in
            let managed = ["secrets-store.csi.k8s.io/managed": "true"]
            let secrets = "/api/v1/namespaces/\(ns)/secrets"
            func secret(_ name: String, labels: [String: String]) -> [String: Any] {
                ["apiVersion": "v1", "kind": "Secret", "metadata": ["name": name, "labels": labels], "type": "Opaque", "data": ["k": "dg=="]]
            }
            try await client.create(secrets, secret("kept", labels: managed))
            try await client.create(secrets, secret("other", labels: [:]))
            let listed = try await client.listSecrets(namespace: nil, labelSelector: managed, logger: logger)
            #expect(listed.items.filter { $0.namespace == ns }.map(\.name) == ["kept"])
            #expect(listed.items.allSatisfy { $0.labels["secrets-store.csi.k8s.io/managed"] == "true" })
            #expect(listed.items.first { $0.namespace == ns }?.data == ["k": Array("v".utf8)])
            try await client.deleteSecret(namespace: ns, name: "kept", logger: logger)
            try await client.deleteSecret(namespace: ns, name: "kept", logger: logger)
            #expect(try await client.secret(namespace: ns, name: "kept", logger: logger) == nil)
            try await client.create(secrets, secret("other2", labels: [:]))
            try await client.create(secrets, secret("new", labels: managed))
            var seen: [String] = []
            for try await event in client.watchSecrets(namespace: ns, labelSelector: managed, resourceVersion: listed.resourceVersion, logger: logger) {
                switch event {
                case .added(let secret): seen.append("added \(secret.name)")
                case .modified(let secret): seen.append("modified \(secret.name)")
                case .deleted(let secret): seen.append("deleted \(secret.name)")
                case .bookmark: continue
                }
                if seen.last == "added new" { break }
            }
            #expect(seen == ["deleted kept", "added new"])
        }
    }

    @Test func tokenRequestRoundTrip() async throws {
        try await withNamespace { _, client, ns in
            await #expect(throws: KubernetesClientError.notFound("serviceaccounts \"sa\" not found")) {
                _ = try await client.requestToken(namespace: ns, serviceAccount: "sa", audience: "api://x", expirationSeconds: 3600, logger: logger)
            }
            #expect(try await client.serviceAccountExists(namespace: ns, name: "sa", logger: logger) == false)
            try await client.create("/api/v1/namespaces/\(ns)/serviceaccounts", ["apiVersion": "v1", "kind": "ServiceAccount", "metadata": ["name": "sa"]])
            #expect(try await client.serviceAccountExists(namespace: ns, name: "sa", logger: logger))
            let before = Int64(Date().timeIntervalSince1970)
            let token = try await client.requestToken(namespace: ns, serviceAccount: "sa", audience: "api://x", expirationSeconds: 3600, logger: logger)
            let after = Int64(Date().timeIntervalSince1970)
            #expect(token.expiresAtSeconds >= before + 3600 - 1 && token.expiresAtSeconds <= after + 3600 + 1)
            #expect(RFC3339.epochSeconds(token.expirationTimestamp) == token.expiresAtSeconds)
            // Computed apart, so that a failure shows neither the token nor the description holding it.
            let described = "\(token)".contains(token.token)
            #expect(!described)
            // The API server's own JWT: for the audience asked, as the service account, expiring when it says.
            let claims = try Self.claims(ofJWT: token.token)
            #expect(claims["aud"] as? [String] == ["api://x"])
            #expect(claims["sub"] as? String == "system:serviceaccount:\(ns):sa")
            #expect((claims["exp"] as? Int).map(Int64.init) == token.expiresAtSeconds)
        }
    }

    /// The payload of a JWT (base64url JSON between the first and second dots); never quotes the token.
    static func claims(ofJWT jwt: String) throws -> [String: Any] {
        let parts = jwt.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3 else { throw ClaimsError() }
        var base64 = parts[1].replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        guard let data = Data(base64Encoded: base64), let claims = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ClaimsError()
        }
        return claims
    }

    struct ClaimsError: Error, CustomStringConvertible {
        var description: String { "the token is not a JWT with a JSON payload" }
    }

    @Test func readsCSIDriverAudiences() async throws {
        let api = try await RealKubernetesAPIServer.shared()
        try await api.withClient { client in
            // CSIDrivers are cluster-scoped: names of this test only, removed at the end.
            let name = "t\(RealKubernetesAPIServer.randomName()).csi.example.com"
            let plain = "p\(RealKubernetesAPIServer.randomName()).csi.example.com"
            await #expect(throws: KubernetesClientError.notFound("csidrivers.storage.k8s.io \"\(name)\" not found")) {
                _ = try await client.csiDriverTokenAudiences(driverName: name, logger: logger)
            }
            try await client.create(
                "/apis/storage.k8s.io/v1/csidrivers",
                [
                    "apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver", "metadata": ["name": name],
                    "spec": ["tokenRequests": [["audience": "api://AzureADTokenExchange"], ["audience": "b", "expirationSeconds": 600]]],
                ]
            )
            try await client.create(
                "/apis/storage.k8s.io/v1/csidrivers",
                ["apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver", "metadata": ["name": plain], "spec": [String: Any]()]
            )
            let audiences = try await client.csiDriverTokenAudiences(driverName: name, logger: logger)
            #expect(audiences == ["api://AzureADTokenExchange", "b"])
            #expect(try await client.csiDriverTokenAudiences(driverName: plain, logger: logger) == [])
            try await client.delete("/apis/storage.k8s.io/v1/csidrivers/\(name)")
            try await client.delete("/apis/storage.k8s.io/v1/csidrivers/\(plain)")
        }
    }

    @Test func leaseCreateUpdateAndConflict() async throws {
        try await withNamespace { _, client, ns in
            #expect(try await client.lease(namespace: ns, name: "controller", logger: logger) == nil)
            let record = LeaseRecord(
                namespace: ns, name: "controller", holderIdentity: "me", leaseDurationSeconds: 15,
                acquireTime: "2026-12-01T23:00:00.123456Z", renewTime: "2026-12-01T23:00:00.123456Z", leaseTransitions: 0
            )
            let created = try await client.createLease(record, logger: logger)
            #expect(created.holderIdentity == "me")
            #expect(created.leaseDurationSeconds == 15)
            #expect(created.acquireTime == "2026-12-01T23:00:00.123456Z")
            #expect(created.resourceVersion != nil)
            await #expect(throws: KubernetesClientError.conflict("leases.coordination.k8s.io \"controller\" already exists")) {
                _ = try await client.createLease(record, logger: logger)
            }
            var renewed = created
            renewed.renewTime = "2026-12-01T23:00:05.000001Z"
            let written = try await client.updateLease(renewed, logger: logger)
            #expect(written.renewTime == "2026-12-01T23:00:05.000001Z")
            #expect(written.resourceVersion != created.resourceVersion)
            #expect(try await client.lease(namespace: ns, name: "controller", logger: logger) == written)
            var stale = created
            stale.holderIdentity = "someone-else"
            stale.leaseTransitions = 1
            await #expect {
                _ = try await client.updateLease(stale, logger: logger)
            } throws: { error in
                guard case .conflict(let message)? = error as? KubernetesClientError else { return false }
                return message.contains("the object has been modified")
            }
            #expect(try await client.lease(namespace: ns, name: "controller", logger: logger)?.holderIdentity == "me")
        }
    }

    @Test func patchesTheClassStatusAndRecordsEvents() async throws {
        try await withNamespace { _, client, ns in
            let collection = Self.spcCollection(ns)
            let created = try await client.create(collection, Self.spc("a"))
            let status = SecretProviderClassStatus(
                conditions: [.init(type: "Ready", status: "True", reason: "Synced", message: "ok", lastTransitionTime: "2026-01-01T00:00:00Z", observedGeneration: 1)],
                lastSyncTime: "2026-01-01T00:00:01Z",
                objects: [ObjectVersion(id: "secret/a", version: "1")],
                syncedSecrets: ["s"]
            )
            try await client.updateSecretProviderClassStatus(namespace: ns, name: "a", status: status, logger: logger)
            // The CRD has a status subresource: only a write to /status changes .status.
            let written = try #require(try await client.object(at: collection + "/a"))
            let stored = try #require(written["status"] as? [String: Any])
            #expect(stored["lastSyncTime"] as? String == "2026-01-01T00:00:01Z")
            #expect(stored["syncedSecrets"] as? [String] == ["s"])
            #expect((stored["objects"] as? [[String: String]]) == [["id": "secret/a", "version": "1"]])
            let condition = try #require((stored["conditions"] as? [[String: Any]])?.first)
            #expect(condition["reason"] as? String == "Synced")
            #expect(condition["observedGeneration"] as? Int == 1)
            #expect(Self.metadata(written)["generation"] as? Int == 1)
            try await client.updateSecretProviderClassStatus(
                namespace: ns, name: "a",
                status: .init(conditions: [.init(type: "Ready", status: "False", reason: "ProviderError", message: "no", lastTransitionTime: "2026-01-01T00:00:02Z", observedGeneration: 1)]),
                logger: logger
            )
            let replaced = try #require(try await client.object(at: collection + "/a")?["status"] as? [String: Any])
            #expect(replaced["lastSyncTime"] == nil)
            #expect(replaced["syncedSecrets"] == nil)
            #expect(replaced["objects"] == nil)
            #expect((replaced["conditions"] as? [[String: Any]])?.map { $0["reason"] as? String } == ["ProviderError"])
            await #expect(throws: KubernetesClientError.notFound("secretproviderclasses.secrets-store.csi.x-k8s.io \"nope\" not found")) {
                try await client.updateSecretProviderClassStatus(namespace: ns, name: "nope", status: status, logger: logger)
            }

            let uid = try #require(Self.metadata(created)["uid"] as? String)
            try await client.recordEvent(
                SecretProviderClassEvent(namespace: ns, name: "a", uid: uid, kind: .warning, reason: "SecretSyncFailed", message: "provider failed"),
                logger: logger
            )
            let events = try #require(try await client.object(at: "/api/v1/namespaces/\(ns)/events")?["items"] as? [[String: Any]])
            #expect(events.count == 1)
            let event = try #require(events.first)
            let involved = try #require(event["involvedObject"] as? [String: Any])
            #expect(involved["apiVersion"] as? String == "secrets-store.csi.x-k8s.io/v1")
            #expect(involved["kind"] as? String == "SecretProviderClass")
            #expect(involved["name"] as? String == "a" && involved["namespace"] as? String == ns)
            #expect(involved["uid"] as? String == uid)
            #expect((event["source"] as? [String: Any])?["component"] as? String == "secrets-store-csi-driver-controller")
            #expect(event["type"] as? String == "Warning")
            #expect(event["reason"] as? String == "SecretSyncFailed" && event["message"] as? String == "provider failed")
            #expect(event["count"] as? Int == 1)
            #expect((Self.metadata(event)["name"] as? String)?.hasPrefix("a.") == true)
        }
    }
}

/// Watch faults a real API server cannot be made to produce on demand: bookmarks every few milliseconds, a
/// watch closed by the server at will, history compacted at will (410), injected HTTP errors, and the
/// server's count of open watches.
@Suite("Controller verbs of the REST client: watch faults against the fake API server", .timeLimit(.minutes(1)))
struct ControllerWatchFaultTests {
    static let spcCollection = "/apis/secrets-store.csi.x-k8s.io/v1/namespaces/ns/secretproviderclasses"
    let logger = Logger(label: "test")

    static func spc(_ name: String) -> [String: Any] {
        ControllerVerbsTests.spc(name)
    }

    func withClient(
        bookmarkInterval: Duration = .seconds(60),
        _ body: (FakeKubernetesAPIServer, RESTKubernetesClient) async throws -> Void
    ) async throws {
        try await FakeKubernetesAPIServer.withClient(bookmarkInterval: bookmarkInterval, body)
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
                guard case .unavailable(let message, _)? = error as? KubernetesClientError else { return false }
                return message.contains("HTTP 503") && !message.contains("t0ken")
            }
        }
    }

    @Test func cancellingTheConsumerClosesTheWatch() async throws {
        // Bookmarks every 50 ms: the server notices the closed connection when its next write fails.
        try await withClient(bookmarkInterval: .milliseconds(50)) { server, client in
            server.seed(path: Self.spcCollection, object: Self.spc("a"))
            let stream = client.watchSecretProviderClasses(namespace: "ns", resourceVersion: "0", logger: logger)
            let consumer = Task {
                for try await _ in stream {}
            }
            try await eventually("the watch open") { server.openWatchCount != 0 }
            consumer.cancel()
            _ = await consumer.result
            // The server sees the connection go.
            try await eventually("the server seeing the watch closed") { server.openWatchCount == 0 }
        }
    }
}
