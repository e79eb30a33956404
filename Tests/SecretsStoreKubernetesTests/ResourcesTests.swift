import Foundation
import Logging
import SecretsStoreCore
import SecretsStoreHTTPClient
@testable import SecretsStoreKubernetes
import SecretsStoreTesting
import Testing

@Suite("Owner references, TLS settings and path escaping of the Kubernetes client", .timeLimit(.minutes(3)))
struct ResourcesTests {
    let logger = Logger(label: "test")

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

    @Test("pod owners and Secret owners read and written through a real API server keep kind, name and UID", .realAPIServer)
    func ownerReferencesOverTheAPI() async throws {
        let api = try await RealKubernetesAPIServer.shared()
        try await api.withNamespace { client, ns in
            try await client.create(
                "/api/v1/namespaces/\(ns)/pods",
                [
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": [
                        "name": "web-1-abc",
                        "ownerReferences": [
                            ["apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "uid-rs", "controller": true, "blockOwnerDeletion": true]
                        ],
                    ],
                    "spec": ["containers": [["name": "app", "image": "nginx"]]],
                ]
            )
            let owners = [OwnerReference(apiVersion: "apps/v1", kind: "ReplicaSet", name: "web-1", uid: "uid-rs")]
            let pod = try await client.pod(namespace: ns, name: "web-1-abc", logger: logger)
            #expect(pod.ownerReferences == owners)
            #expect(!pod.uid.isEmpty && !pod.terminating)

            let secret = KubernetesSecret(namespace: ns, name: "s", type: "Opaque", data: ["k": Array("v".utf8)], ownerReferences: owners)
            try await client.createSecret(secret, logger: logger)
            let stored = try #require(try await client.object(at: "/api/v1/namespaces/\(ns)/secrets/s"))
            let written = try #require((stored["metadata"] as? [String: Any])?["ownerReferences"] as? [[String: Any]])
            #expect(written.count == 1)
            #expect(written[0]["uid"] as? String == "uid-rs")
            #expect(written[0]["controller"] == nil)
            #expect(written[0]["blockOwnerDeletion"] == nil)
            let read = try await client.secret(namespace: ns, name: "s", logger: logger)
            #expect(read?.ownerReferences == owners)
            #expect(read?.data == ["k": Array("v".utf8)])
        }
    }

    @Test("names are percent-encoded in paths (`~`, space, `?`, `#` included): the API server gets them whole", .realAPIServer)
    func pathEscaping() async throws {
        let api = try await RealKubernetesAPIServer.shared()
        try await api.withNamespace { client, ns in
            let found = try await client.secret(namespace: ns, name: "a~b c?d#e", logger: logger)
            #expect(found == nil)
            // The API server's NotFound names the object as it decoded the path.
            await #expect(throws: KubernetesClientError.notFound("secretproviderclasses.secrets-store.csi.x-k8s.io \"a~b c?d#e\" not found")) {
                try await client.secretProviderClass(namespace: ns, name: "a~b c?d#e", logger: logger)
            }
        }
    }

    @Test("a Secret list's items decode without apiVersion and kind, which the API server leaves out of them")
    func secretListItemsWithoutTypeMeta() throws {
        let body = #"{"kind":"SecretList","apiVersion":"v1","metadata":{"resourceVersion":"7"},"items":[{"metadata":{"name":"s","namespace":"ns"},"type":"Opaque","data":{"k":"dg=="}}]}"#
        let list = try JSONDecoder().decode(Resources.List<Resources.Secret>.self, from: Data(body.utf8))
        #expect(list.metadata?.resourceVersion == "7")
        let secret = try #require(list.items.first)
        #expect(secret.apiVersion == "v1" && secret.kind == "Secret")
        #expect(secret.domainValue(namespace: "", name: "") == KubernetesSecret(namespace: "ns", name: "s", type: "Opaque", data: ["k": Array("v".utf8)]))
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
