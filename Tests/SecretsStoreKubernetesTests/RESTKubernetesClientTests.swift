import Foundation
import Logging
import SecretsStoreCore
import SecretsStoreCoreTesting
import SecretsStoreKubernetes
import SecretsStoreTesting
import Testing

@Suite("Kubernetes REST client against the fake API server")
struct RESTKubernetesClientTests {
    static let spcPath = "/apis/secrets-store.csi.x-k8s.io/v1/namespaces/ns/secretproviderclasses"
    static let statusPath = "/apis/secrets-store.csi.x-k8s.io/v1/namespaces/ns/secretproviderclasspodstatuses"
    let logger = Logger(label: "test")

    static let status = SecretProviderClassPodStatus(
        namespace: "ns",
        podName: "pod",
        podUID: "uid-1",
        nodeName: "node-1",
        secretProviderClassName: "spc",
        targetPath: "/var/lib/kubelet/pods/uid-1/volumes/kubernetes.io~csi/v/mount",
        objects: [ObjectVersion(id: "secret/b", version: "2"), ObjectVersion(id: "secret/a", version: "1")]
    )

    func withClient(
        token: String? = "t0ken",
        _ body: (FakeKubernetesAPIServer, RESTKubernetesClient) async throws -> Void
    ) async throws {
        let server = try await FakeKubernetesAPIServer(requiredToken: token)
        let client = try RESTKubernetesClient(
            configuration: KubernetesConfiguration(server: server.url, credentials: token.map { .token($0) } ?? .none)
        )
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

    @Test func readsASecretProviderClass() async throws {
        try await withClient { server, client in
            server.seed(
                path: Self.spcPath,
                object: [
                    "apiVersion": "secrets-store.csi.x-k8s.io/v1", "kind": "SecretProviderClass",
                    "metadata": ["name": "spc"],
                    "spec": [
                        "provider": "azure", "parameters": ["keyvaultName": "kv", "objects": "array: []"],
                        "secretObjects": [["secretName": "s", "type": "Opaque", "data": [["objectName": "a", "key": "k"]]]],
                    ],
                ]
            )
            let spc = try await client.secretProviderClass(namespace: "ns", name: "spc", logger: logger)
            #expect(spc.provider == "azure")
            #expect(spc.parameters == ["keyvaultName": "kv", "objects": "array: []"])
            #expect(spc.secretObjects.first?.data?.first?.key == "k")
            #expect(spc.generation == 1)
            #expect(server.requests.last?.authorization == "Bearer t0ken")
        }
    }

    @Test func mapsStatusErrors() async throws {
        try await withClient { server, client in
            await #expect(throws: KubernetesClientError.notFound("secretproviderclasses.secrets-store.csi.x-k8s.io \"nope\" not found")) {
                try await client.secretProviderClass(namespace: "ns", name: "nope", logger: logger)
            }
            server.injectFailure(status: 500, forPathContaining: "secretproviderclasses")
            await #expect(throws: KubernetesClientError.unavailable(
                "GET /apis/secrets-store.csi.x-k8s.io/v1/namespaces/ns/secretproviderclasses/x: HTTP 500: injected failure"
            )) {
                try await client.secretProviderClass(namespace: "ns", name: "x", logger: logger)
            }
            server.injectFailure(status: 403, forPathContaining: "secretproviderclasses")
            await #expect(throws: KubernetesClientError.forbidden("injected failure")) {
                try await client.secretProviderClass(namespace: "ns", name: "x", logger: logger)
            }
        }
    }

    @Test func wrongTokenIsForbidden() async throws {
        let server = try await FakeKubernetesAPIServer(requiredToken: "right")
        let client = try RESTKubernetesClient(configuration: KubernetesConfiguration(server: server.url, credentials: .token("wrong")))
        await #expect(throws: KubernetesClientError.forbidden("Unauthorized")) {
            try await client.secretProviderClass(namespace: "ns", name: "x", logger: logger)
        }
        try await client.shutdown()
        try await server.shutdown()
    }

    @Test func unreachableServerIsUnavailable() async throws {
        let client = try RESTKubernetesClient(configuration: KubernetesConfiguration(server: "http://127.0.0.1:1"))
        let error = await #expect(throws: KubernetesClientError.self) {
            try await client.secretProviderClass(namespace: "ns", name: "x", logger: logger)
        }
        guard case .unavailable = error else {
            Issue.record("expected unavailable, got \(String(describing: error))")
            try await client.shutdown()
            return
        }
        try await client.shutdown()
    }

    @Test func createsThenUpdatesThePodStatus() async throws {
        try await withClient { server, client in
            try await client.applyPodStatus(Self.status, logger: logger)
            let created = try #require(server.object(at: Self.statusPath + "/pod-ns-spc"))
            let metadata = try #require(created["metadata"] as? [String: Any])
            #expect((metadata["labels"] as? [String: String]) == ["internal.secrets-store.csi.k8s.io/node-name": "node-1"])
            let owners = try #require(metadata["ownerReferences"] as? [[String: Any]])
            #expect(owners.count == 1)
            #expect(owners[0]["kind"] as? String == "Pod")
            #expect(owners[0]["apiVersion"] as? String == "v1")
            #expect(owners[0]["name"] as? String == "pod")
            #expect(owners[0]["uid"] as? String == "uid-1")
            #expect(owners[0]["controller"] == nil)
            let status = try #require(created["status"] as? [String: Any])
            #expect(status["podName"] as? String == "pod")
            #expect(status["secretProviderClassName"] as? String == "spc")
            #expect(status["mounted"] as? Bool == true)
            #expect((status["objects"] as? [[String: String]])?.map { $0["id"]! } == ["secret/a", "secret/b"])
            #expect(created["kind"] as? String == "SecretProviderClassPodStatus")
            let firstVersion = metadata["resourceVersion"] as? String

            var moved = Self.status
            moved.nodeName = "node-2"
            moved.objects = [ObjectVersion(id: "secret/a", version: "9")]
            try await client.applyPodStatus(moved, logger: logger)
            let updated = try #require(server.object(at: Self.statusPath + "/pod-ns-spc"))
            let updatedMeta = try #require(updated["metadata"] as? [String: Any])
            #expect((updatedMeta["labels"] as? [String: String])?["internal.secrets-store.csi.k8s.io/node-name"] == "node-2")
            #expect(updatedMeta["resourceVersion"] as? String != firstVersion)
            #expect(updatedMeta["uid"] as? String == metadata["uid"] as? String)
            #expect(((updated["status"] as? [String: Any])?["objects"] as? [[String: String]])?.first?["version"] == "9")
            #expect(server.requests.map(\.method) == ["POST", "POST", "GET", "PUT"])
        }
    }

    @Test("a conflict while reading the status back surfaces, and the next apply succeeds")
    func conflictSurfacesThenRecovers() async throws {
        try await withClient { server, client in
            try await client.applyPodStatus(Self.status, logger: logger)
            server.injectFailure(status: 409, forPathContaining: "secretproviderclasspodstatuses/pod-ns-spc")
            await #expect(throws: KubernetesClientError.self) { try await client.applyPodStatus(Self.status, logger: logger) }
            try await client.applyPodStatus(Self.status, logger: logger)
        }
    }
}

@Suite("Kubernetes client configuration")
struct KubernetesConfigurationTests {
    @Test func kubeconfigWithTokenAndInlineCA() throws {
        let ca = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
        let yaml = """
            apiVersion: v1
            kind: Config
            current-context: dev
            clusters:
            - name: c1
              cluster:
                server: https://10.0.0.1:6443/
                certificate-authority-data: \(Data(ca.utf8).base64EncodedString())
            users:
            - name: u1
              user:
                token: abc
            contexts:
            - name: dev
              context: {cluster: c1, user: u1, namespace: default}
            """
        let config = try KubernetesConfiguration.kubeconfig(text: yaml, baseDirectory: "/nowhere")
        #expect(config.server == "https://10.0.0.1:6443")
        #expect(config.credentials == .token("abc"))
        #expect(config.certificateAuthorityPEM == Array(ca.utf8))
        #expect(config.insecureSkipTLSVerify == false)
    }

    @Test func kubeconfigWithClientCertificateFilesAndInsecure() async throws {
        try await withTemporaryDirectory { (directory: String) async throws in
            try "CERT".write(toFile: directory + "/client.crt", atomically: true, encoding: .utf8)
            try "KEY".write(toFile: directory + "/client.key", atomically: true, encoding: .utf8)
            let yaml = """
                current-context: x
                clusters: [{name: c, cluster: {server: "https://k", insecure-skip-tls-verify: true}}]
                users: [{name: u, user: {client-certificate: client.crt, client-key: client.key}}]
                contexts: [{name: x, context: {cluster: c, user: u}}]
                """
            try yaml.write(toFile: directory + "/config", atomically: true, encoding: .utf8)
            let config = try KubernetesConfiguration.kubeconfig(at: directory + "/config")
            #expect(config.credentials == .clientCertificate(certificatePEM: Array("CERT".utf8), keyPEM: Array("KEY".utf8)))
            #expect(config.insecureSkipTLSVerify)
        }
    }

    @Test(arguments: [
        ("clusters: []\n", "current-context is not set"),
        ("current-context: a\ncontexts: []\n", "context \"a\" not found"),
        ("current-context: a\ncontexts: [{name: a, context: {cluster: c}}]\n", "cluster \"c\" not found"),
        ("current-context: [", "not a valid kubeconfig"),
    ])
    func kubeconfigErrorsNameTheProblem(yaml: String, expected: String) {
        let error = #expect(throws: KubernetesConfiguration.LoadError.self) {
            try KubernetesConfiguration.kubeconfig(text: yaml, baseDirectory: "/", source: "/k")
        }
        #expect(error?.description.contains(expected) == true)
        #expect(error?.description.hasPrefix("/k") == true)
    }

    @Test func inClusterConfiguration() async throws {
        try await withTemporaryDirectory { (directory: String) async throws in
            try "CA".write(toFile: directory + "/ca.crt", atomically: true, encoding: .utf8)
            let config = try KubernetesConfiguration.inCluster(
                environment: ["KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"],
                serviceAccountDirectory: directory
            )
            #expect(config.server == "https://10.96.0.1:443")
            #expect(config.credentials == .tokenFile(directory + "/token"))
            #expect(config.certificateAuthorityPEM == Array("CA".utf8))
            #expect(throws: KubernetesConfiguration.LoadError.self) { try KubernetesConfiguration.inCluster(environment: [:]) }
        }
    }

    @Test func tokenFileIsReadForRequests() async throws {
        try await withTemporaryDirectory { (directory: String) async throws in
            try "file-token\n".write(toFile: directory + "/token", atomically: true, encoding: .utf8)
            let server = try await FakeKubernetesAPIServer(requiredToken: "file-token")
            let client = try RESTKubernetesClient(
                configuration: KubernetesConfiguration(server: server.url, credentials: .tokenFile(directory + "/token"))
            )
            await #expect(throws: KubernetesClientError.notFound("secretproviderclasses.secrets-store.csi.x-k8s.io \"x\" not found")) {
                try await client.secretProviderClass(namespace: "ns", name: "x", logger: Logger(label: "t"))
            }
            try await client.shutdown()
            try await server.shutdown()
        }
    }
}
