import Foundation
import SecretsStoreCoreTesting
import SecretsStoreTesting
import Testing

@Suite("Fake Kubernetes API server over its wire protocol", .timeLimit(.minutes(3)))
struct FakeAPIServerTests {
    static let spcs = "/apis/secrets-store.csi.x-k8s.io/v1/namespaces/ns/secretproviderclasses"
    static let secrets = "/api/v1/namespaces/ns/secrets"

    static func spc(_ name: String, labels: [String: String] = [:]) -> [String: Any] {
        [
            "apiVersion": "secrets-store.csi.x-k8s.io/v1", "kind": "SecretProviderClass",
            "metadata": ["name": name, "labels": labels], "spec": ["provider": "azure"],
        ]
    }

    func withServer(bookmarkInterval: Duration = .seconds(1), _ body: (FakeKubernetesAPIServer, Int) async throws -> Void) async throws {
        let server = try await FakeKubernetesAPIServer(bookmarkInterval: bookmarkInterval, tokenIssuer: { ns, sa, audiences, seconds in
            "token-\(ns)-\(sa)-\(audiences.joined(separator: "+"))-\(seconds)"
        })
        let port = Int(server.url.split(separator: ":").last!)!
        do { try await body(server, port) } catch {
            try await server.shutdown()
            throw error
        }
        try await server.shutdown()
    }

    @Test func watchFromZeroSendsCurrentObjectsThenChanges() async throws {
        try await withServer { server, port in
            server.seed(path: Self.spcs, object: Self.spc("a"))
            server.seed(path: Self.spcs, object: Self.spc("b"))
            let watch = try await WatchConnection(port: port, path: Self.spcs + "?watch=true&resourceVersion=0")
            try await watch.receive("$0.types.count >= 2") { $0.types.count >= 2 }
            #expect(watch.text.lowercased().contains("transfer-encoding: chunked"))
            #expect(watch.types == ["ADDED", "ADDED"], "\(watch.text)")
            var a = jsonObject(try await call("GET", Self.spcs + "/a", port: port))
            a["spec"] = ["provider": "gcp"]
            #expect(try await call("PUT", Self.spcs + "/a", port: port, body: jsonText(a)).status == 200)
            #expect(try await call("DELETE", Self.spcs + "/b", port: port).status == 200)
            try await watch.receive("$0.types.count >= 4") { $0.types.count >= 4 }
            #expect(watch.types == ["ADDED", "ADDED", "MODIFIED", "DELETED"])
            let deleted = watch.events.dropFirst(3).first?["object"] as? [String: Any]
            #expect((deleted?["metadata"] as? [String: Any])?["name"] as? String == "b")
            let modified = watch.events.dropFirst(2).first?["object"] as? [String: Any]
            #expect((modified?["metadata"] as? [String: Any])?["generation"] as? Int == 2)
        }
    }

    @Test func watchFromAVersionReplaysLaterChangesWithLabelSelectorAndBookmarks() async throws {
        try await withServer(bookmarkInterval: .milliseconds(50)) { server, port in
            server.seed(path: Self.spcs, object: Self.spc("old", labels: ["app": "x"]))
            let list = jsonObject(try await call("GET", Self.spcs, port: port))
            let version = (list["metadata"] as? [String: Any])?["resourceVersion"] as? String ?? ""
            server.seed(path: Self.spcs, object: Self.spc("selected", labels: ["app": "x"]))
            server.seed(path: Self.spcs, object: Self.spc("other", labels: ["app": "y"]))
            let watch = try await WatchConnection(
                port: port,
                path: "/apis/secrets-store.csi.x-k8s.io/v1/secretproviderclasses?watch=1&resourceVersion=\(version)&allowWatchBookmarks=true&labelSelector=app%3Dx"
            )
            try await watch.receive("$0.types.contains(\"BOOKMARK\")") { $0.types.contains("BOOKMARK") }
            #expect(watch.types.filter { $0 != "BOOKMARK" } == ["ADDED"])
            let bookmark = watch.events.first { $0["type"] as? String == "BOOKMARK" }?["object"] as? [String: Any]
            #expect(bookmark?["kind"] as? String == "SecretProviderClass")
            #expect((bookmark?["metadata"] as? [String: Any])?["resourceVersion"] != nil)
            server.closeWatches()
            try await watch.receive("$0.text.contains(\"\\r\\n0\\r\\n\\r\\n\")") { $0.text.contains("\r\n0\r\n\r\n") }
            #expect(server.openWatchCount == 0)
        }
    }

    @Test func expiredVersionsAre410() async throws {
        try await withServer { server, port in
            server.seed(path: Self.spcs, object: Self.spc("a"))
            server.seed(path: Self.spcs, object: Self.spc("b"))
            server.expireHistory()
            let expired = try await call("GET", Self.spcs + "?watch=true&resourceVersion=1", port: port)
            #expect(expired.status == 410)
            #expect(jsonObject(expired)["reason"] as? String == "Expired")
            let timed = try await WatchConnection(port: port, path: Self.spcs + "?watch=true&timeoutSeconds=0")
            try await timed.receive("$0.text.contains(\"\\r\\n0\\r\\n\\r\\n\")") { $0.text.contains("\r\n0\r\n\r\n") }
        }
    }

    @Test func statusSubresourceAndGeneration() async throws {
        try await withServer { server, port in
            server.seed(path: Self.spcs, object: Self.spc("a"))
            var a = jsonObject(try await call("GET", Self.spcs + "/a", port: port))
            a["status"] = ["byPod": ["x"]]
            a["spec"] = ["provider": "vault"]
            let put = jsonObject(try await call("PUT", Self.spcs + "/a/status", port: port, body: jsonText(a)))
            #expect((put["status"] as? [String: Any]) != nil)
            #expect((put["spec"] as? [String: Any])?["provider"] as? String == "azure")
            #expect((put["metadata"] as? [String: Any])?["generation"] as? Int == 1)
            let stale = try await call("PUT", Self.spcs + "/a/status", port: port, body: jsonText(a))
            #expect(stale.status == 409)
            a["status"] = ["byPod": ["ignored"]]
            (a["metadata"] as? [String: Any]).map { var meta = $0; meta.removeValue(forKey: "resourceVersion"); a["metadata"] = meta }
            let main = jsonObject(try await call("PUT", Self.spcs + "/a", port: port, body: jsonText(a)))
            #expect((main["status"] as? [String: Any])?["byPod"] as? [String] == ["x"])
            #expect((main["metadata"] as? [String: Any])?["generation"] as? Int == 2)
            let patched = jsonObject(
                try await call("PATCH", Self.spcs + "/a/status", port: port, body: #"{"status":{"byPod":["y"]},"spec":{"provider":"no"}}"#, contentType: "application/merge-patch+json")
            )
            #expect((patched["status"] as? [String: Any])?["byPod"] as? [String] == ["y"])
            #expect((patched["spec"] as? [String: Any])?["provider"] as? String == "vault")
            #expect(try await call("GET", Self.spcs + "/a/status", port: port).status == 200)
        }
    }

    @Test func deletingAnOwnerCollectsDependentsInCascade() async throws {
        try await withServer { server, port in
            server.seed(path: Self.spcs, object: Self.spc("owner"))
            let ownerUID = (server.object(at: Self.spcs + "/owner")?["metadata"] as? [String: Any])?["uid"] as? String ?? ""
            server.seed(path: Self.secrets, object: ["metadata": ["name": "child", "ownerReferences": [["uid": ownerUID, "name": "owner"]]]])
            let childUID = (server.object(at: Self.secrets + "/child")?["metadata"] as? [String: Any])?["uid"] as? String ?? ""
            server.seed(path: Self.secrets, object: ["metadata": ["name": "grandchild", "ownerReferences": [["uid": childUID]]]])
            server.seed(path: Self.secrets, object: ["metadata": ["name": "two-owners", "ownerReferences": [["uid": ownerUID], ["uid": "alive"]]]])
            server.seed(path: Self.secrets, object: ["metadata": ["name": "alive"]])
            let list = jsonObject(try await call("GET", Self.secrets, port: port))
            let version = (list["metadata"] as? [String: Any])?["resourceVersion"] as? String ?? ""
            let watch = try await WatchConnection(port: port, path: Self.secrets + "?watch=true&resourceVersion=\(version)")
            #expect(try await call("DELETE", Self.spcs + "/owner", port: port).status == 200)
            try await watch.receive("$0.types.count >= 3") { $0.types.count >= 3 }
            #expect(server.object(at: Self.secrets + "/child") == nil)
            #expect(server.object(at: Self.secrets + "/grandchild") == nil)
            #expect(server.object(at: Self.secrets + "/two-owners") == nil)  // "alive" is a name, not a UID
            #expect(server.object(at: Self.secrets + "/alive") != nil)
            #expect(watch.types == ["DELETED", "DELETED", "DELETED"])
        }
    }

    @Test func tokenRequest() async throws {
        try await withServer { server, port in
            let path = "/api/v1/namespaces/ns/serviceaccounts/sa/token"
            let body = #"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenRequest","spec":{"audiences":["aud"],"expirationSeconds":600}}"#
            #expect(try await call("POST", path, port: port, body: body).status == 404)
            server.seed(path: "/api/v1/namespaces/ns/serviceaccounts", object: ["metadata": ["name": "sa"]])
            let response = try await call("POST", path, port: port, body: body)
            #expect(response.status == 201)
            let status = jsonObject(response)["status"] as? [String: Any]
            #expect(status?["token"] as? String == "token-ns-sa-aud-600")
            #expect((status?["expirationTimestamp"] as? String)?.hasSuffix("Z") == true)
            #expect(server.tokenRequests == [.init(namespace: "ns", serviceAccount: "sa", audiences: ["aud"], expirationSeconds: 600)])
        }
    }

    @Test func clusterScopedResourcesAndLeases() async throws {
        try await withServer { server, port in
            server.seed(path: "/apis/storage.k8s.io/v1/csidrivers", object: ["metadata": ["name": "secrets-store.csi.k8s.io"], "spec": ["tokenRequests": [["audience": "a"]]]])
            let driver = try await call("GET", "/apis/storage.k8s.io/v1/csidrivers/secrets-store.csi.k8s.io", port: port)
            #expect(driver.status == 200)
            #expect((jsonObject(driver)["metadata"] as? [String: Any])?["namespace"] == nil)
            #expect(((jsonObject(try await call("GET", "/apis/storage.k8s.io/v1/csidrivers", port: port))["items"]) as? [Any])?.count == 1)
            let leases = "/apis/coordination.k8s.io/v1/namespaces/ns/leases"
            let created = jsonObject(try await call("POST", leases, port: port, body: #"{"metadata":{"name":"l"},"spec":{"holderIdentity":"a"}}"#))
            var lease = created
            lease["spec"] = ["holderIdentity": "b"]
            #expect(try await call("PUT", leases + "/l", port: port, body: jsonText(lease)).status == 200)
            #expect(try await call("PUT", leases + "/l", port: port, body: jsonText(lease)).status == 409)
        }
    }
}
