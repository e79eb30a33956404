import Foundation
import Logging
import SecretsStoreCore
import SecretsStoreHTTPClient
import SecretsStoreKubernetes
import SecretsStoreTesting
import Testing

@Suite("Owner references, TLS settings and path escaping of the Kubernetes client")
struct ResourcesTests {
    let logger = Logger(label: "test")

    func withClient(_ body: (FakeKubernetesAPIServer, RESTKubernetesClient) async throws -> Void) async throws {
        let server = try await FakeKubernetesAPIServer()
        let client = try RESTKubernetesClient(configuration: KubernetesConfiguration(server: server.url))
        do {
            try await body(server, client)
        } catch {
            try? await client.shutdown()
            try? await server.shutdown()
            throw error
        }
        try await client.shutdown()
        try await server.shutdown()
    }

    @Test("an owner reference converts to the wire form and back; controller and blockOwnerDeletion are dropped")
    func ownerReferenceConversion() throws {
        let domain = OwnerReference(apiVersion: "apps/v1", kind: "ReplicaSet", name: "web-1", uid: "uid-rs")
        let wire = Resources.OwnerReference(domain)
        #expect(wire == Resources.OwnerReference(apiVersion: "apps/v1", kind: "ReplicaSet", name: "web-1", uid: "uid-rs"))
        #expect(wire.controller == nil && wire.blockOwnerDeletion == nil)
        #expect(wire.domainValue == domain)

        var controlling = wire
        controlling.controller = true
        controlling.blockOwnerDeletion = true
        #expect(controlling.domainValue == domain)
    }

    @Test("pod owners and Secret owners read and written through the API keep kind, name and UID")
    func ownerReferencesOverTheAPI() async throws {
        try await withClient { server, client in
            server.seed(
                path: "/api/v1/namespaces/ns/pods",
                object: [
                    "metadata": [
                        "name": "web-1-abc",
                        "ownerReferences": [
                            ["apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "uid-rs", "controller": true, "blockOwnerDeletion": true]
                        ],
                    ]
                ]
            )
            let owners = [OwnerReference(apiVersion: "apps/v1", kind: "ReplicaSet", name: "web-1", uid: "uid-rs")]
            let pod = try await client.pod(namespace: "ns", name: "web-1-abc", logger: logger)
            #expect(pod.ownerReferences == owners)

            let secret = KubernetesSecret(namespace: "ns", name: "s", type: "Opaque", data: ["k": Array("v".utf8)], ownerReferences: owners)
            try await client.createSecret(secret, logger: logger)
            let stored = try #require(server.object(at: "/api/v1/namespaces/ns/secrets/s"))
            let written = try #require((stored["metadata"] as? [String: Any])?["ownerReferences"] as? [[String: Any]])
            #expect(written.count == 1)
            #expect(written[0]["uid"] as? String == "uid-rs")
            #expect(written[0]["controller"] == nil)
            #expect(try await client.secret(namespace: "ns", name: "s", logger: logger)?.ownerReferences == owners)
        }
    }

    @Test("names are percent-encoded in paths, `~` and spaces included")
    func pathEscaping() async throws {
        try await withClient { server, client in
            let found = try await client.secret(namespace: "ns", name: "a~b c", logger: logger)
            #expect(found == nil)
            #expect(server.requests.last?.path == "/api/v1/namespaces/ns/secrets/a%7Eb%20c")
        }
    }

    @Test("TLS settings: only the cluster CA when one is set, the client certificate, insecure-skip-tls-verify")
    func tlsSettings() {
        let ca = Array("CA".utf8)
        #expect(KubernetesConfiguration(server: "https://k").tls == HTTPSClientTLS())
        #expect(KubernetesConfiguration(server: "https://k", certificateAuthorityPEM: ca).tls == HTTPSClientTLS(trustRoots: .only(pem: ca)))
        let withCertificate = KubernetesConfiguration(
            server: "https://k",
            credentials: .clientCertificate(certificatePEM: Array("CERT".utf8), keyPEM: Array("KEY".utf8)),
            insecureSkipTLSVerify: true
        )
        #expect(
            withCertificate.tls
                == HTTPSClientTLS(
                    clientCertificate: .init(certificatePEM: Array("CERT".utf8), keyPEM: Array("KEY".utf8)),
                    insecureSkipVerify: true
                )
        )
        #expect(KubernetesConfiguration(server: "https://k", credentials: .token("t")).tls.clientCertificate == nil)
    }
}
