import Foundation
import Logging
import SecretsStoreCore
import SecretsStoreCoreTesting
import SecretsStoreKubernetes
import SecretsStoreTesting
import Testing

extension Trait where Self == ConditionTrait {
    /// Runs only where a real API server can be started (``RealKubernetesAPIServer``); otherwise the test is
    /// skipped with what is missing.
    static var realAPIServer: Self {
        .enabled(
            if: RealKubernetesAPIServer.unavailableReason == nil,
            Comment(rawValue: RealKubernetesAPIServer.unavailableReason ?? "a real API server can be started")
        )
    }
}

/// The node plugin's verbs against a real API server (etcd + kube-apiserver, our CRDs applied): each test in a
/// namespace of its own.
@Suite("Kubernetes REST client against a real API server", .realAPIServer, .timeLimit(.minutes(3)))
struct RESTKubernetesClientTests {
    let logger = Logger(label: "test")

    static func podStatus(namespace: String) -> SecretProviderClassPodStatus {
        SecretProviderClassPodStatus(
            namespace: namespace,
            podName: "pod",
            podUID: "uid-1",
            nodeName: "node-1",
            secretProviderClassName: "spc",
            targetPath: "/var/lib/kubelet/pods/uid-1/volumes/kubernetes.io~csi/v/mount",
            objects: [ObjectVersion(id: "secret/b", version: "2"), ObjectVersion(id: "secret/a", version: "1")]
        )
    }

    func withNamespace(_ body: (RealKubernetesAPIServer, RESTKubernetesClient, String) async throws -> Void) async throws {
        let api = try await RealKubernetesAPIServer.shared()
        try await api.withNamespace { client, namespace in try await body(api, client, namespace) }
    }

    @Test func readsASecretProviderClass() async throws {
        try await withNamespace { _, client, ns in
            try await client.create(
                "/apis/secrets-store.csi.x-k8s.io/v1/namespaces/\(ns)/secretproviderclasses",
                [
                    "apiVersion": "secrets-store.csi.x-k8s.io/v1", "kind": "SecretProviderClass",
                    "metadata": ["name": "spc"],
                    "spec": [
                        "provider": "azure", "parameters": ["keyvaultName": "kv", "objects": "array: []"],
                        "secretObjects": [["secretName": "s", "type": "Opaque", "data": [["objectName": "a", "key": "k"]]]],
                    ],
                ]
            )
            let spc = try await client.secretProviderClass(namespace: ns, name: "spc", logger: logger)
            #expect(spc.namespace == ns && spc.name == "spc")
            #expect(spc.provider == "azure")
            #expect(spc.parameters == ["keyvaultName": "kv", "objects": "array: []"])
            #expect(spc.secretObjects.first?.secretName == "s")
            #expect(spc.secretObjects.first?.data?.first?.key == "k")
            #expect(spc.generation == 1)
            #expect(spc.refreshInterval == nil && spc.sync == nil)
        }
    }

    @Test("the API server's Status messages: not found, forbidden (RBAC), unauthorized (unknown token)")
    func mapsStatusErrors() async throws {
        try await withNamespace { api, client, ns in
            await #expect(throws: KubernetesClientError.notFound("secretproviderclasses.secrets-store.csi.x-k8s.io \"nope\" not found")) {
                try await client.secretProviderClass(namespace: ns, name: "nope", logger: logger)
            }
            try await api.withClient(token: api.unprivilegedToken) { viewer in
                await #expect(
                    throws: KubernetesClientError.forbidden(
                        "secretproviderclasses.secrets-store.csi.x-k8s.io \"x\" is forbidden: User \"viewer\" cannot get resource \"secretproviderclasses\" in API group \"secrets-store.csi.x-k8s.io\" in the namespace \"\(ns)\""
                    )
                ) {
                    try await viewer.secretProviderClass(namespace: ns, name: "x", logger: logger)
                }
            }
            try await api.withClient(token: "not-a-token-of-this-server") { stranger in
                await #expect(throws: KubernetesClientError.forbidden("Unauthorized")) {
                    try await stranger.secretProviderClass(namespace: ns, name: "x", logger: logger)
                }
            }
        }
    }

    @Test("a server certificate from a CA the configuration does not name is refused")
    func untrustedServerIsUnavailable() async throws {
        let api = try await RealKubernetesAPIServer.shared()
        // No CA in the configuration: the system roots, which do not include the API server's own CA.
        let client = try RESTKubernetesClient(configuration: KubernetesConfiguration(server: api.url, credentials: .token("unused")))
        let error = await #expect(throws: KubernetesClientError.self) {
            try await client.secretProviderClass(namespace: "default", name: "x", logger: logger)
        }
        try await client.shutdown()
        guard case .unavailable(let message, _)? = error else {
            Issue.record("expected unavailable, got \(String(describing: error))")
            return
        }
        #expect(message.contains("CERTIFICATE_VERIFY_FAILED"))
    }

    @Test func createsThenUpdatesThePodStatus() async throws {
        try await withNamespace { _, client, ns in
            let path = "/apis/secrets-store.csi.x-k8s.io/v1/namespaces/\(ns)/secretproviderclasspodstatuses/pod-\(ns)-spc"
            let status = Self.podStatus(namespace: ns)
            let uid = try await client.applyPodStatus(status, logger: logger)
            let created = try #require(try await client.object(at: path))
            let metadata = try #require(created["metadata"] as? [String: Any])
            #expect(metadata["uid"] as? String == uid && !uid.isEmpty)
            #expect((metadata["labels"] as? [String: String]) == ["internal.secrets-store.csi.k8s.io/node-name": "node-1"])
            let owners = try #require(metadata["ownerReferences"] as? [[String: Any]])
            #expect(owners.count == 1)
            #expect(owners[0]["kind"] as? String == "Pod")
            #expect(owners[0]["apiVersion"] as? String == "v1")
            #expect(owners[0]["name"] as? String == "pod")
            #expect(owners[0]["uid"] as? String == "uid-1")
            #expect(owners[0]["controller"] == nil)
            let stored = try #require(created["status"] as? [String: Any])
            #expect(stored["podName"] as? String == "pod")
            #expect(stored["secretProviderClassName"] as? String == "spc")
            #expect(stored["mounted"] as? Bool == true)
            #expect(stored["targetPath"] as? String == status.targetPath)
            #expect((stored["objects"] as? [[String: String]])?.map { $0["id"]! } == ["secret/a", "secret/b"])
            #expect(created["kind"] as? String == "SecretProviderClassPodStatus")
            let firstVersion = metadata["resourceVersion"] as? String

            // Someone else's label and annotation on the object survive the update.
            try await client.mergePatch(path, ["metadata": ["labels": ["team": "a"], "annotations": ["note": "kept"]]])
            var moved = status
            moved.nodeName = "node-2"
            moved.objects = [ObjectVersion(id: "secret/a", version: "9")]
            #expect(try await client.applyPodStatus(moved, logger: logger) == uid)
            let updated = try #require(try await client.object(at: path))
            let updatedMeta = try #require(updated["metadata"] as? [String: Any])
            #expect(updatedMeta["labels"] as? [String: String] == ["internal.secrets-store.csi.k8s.io/node-name": "node-2", "team": "a"])
            #expect(updatedMeta["annotations"] as? [String: String] == ["note": "kept"])
            #expect(updatedMeta["resourceVersion"] as? String != firstVersion)
            #expect(updatedMeta["uid"] as? String == uid)
            #expect(((updated["status"] as? [String: Any])?["objects"] as? [[String: String]]) == [["id": "secret/a", "version": "9"]])

            let listed = try await client.podStatuses(nodeName: "node-2", logger: logger).filter { $0.namespace == ns }
            #expect(listed == [moved])
        }
    }
}

/// Faults a real API server cannot be made to produce on demand: injected 500, 403 and 409 answers (through the
/// fake API server), and no server at all.
@Suite("Kubernetes REST client: faults", .timeLimit(.minutes(1)))
struct RESTKubernetesClientFaultTests {
    static let statusPath = "/apis/secrets-store.csi.x-k8s.io/v1/namespaces/ns/secretproviderclasspodstatuses"
    let logger = Logger(label: "test")

    static let status = RESTKubernetesClientTests.podStatus(namespace: "ns")

    func withClient(_ body: (FakeKubernetesAPIServer, RESTKubernetesClient) async throws -> Void) async throws {
        try await FakeKubernetesAPIServer.withClient(body)
    }

    @Test func mapsInjectedStatusErrors() async throws {
        try await withClient { server, client in
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

@Suite("Kubernetes client configuration", .timeLimit(.minutes(3)))
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

    @Test func anUnparsableKubeconfigKeepsTheDecoderErrorAsItsCause() throws {
        let error = #expect(throws: KubernetesConfiguration.LoadError.self) {
            try KubernetesConfiguration.kubeconfig(text: "current-context: [", baseDirectory: "/", source: "/k")
        }
        let cause = try #require(error?.underlying)
        #expect(!(cause is KubernetesConfiguration.LoadError))
        #expect(error?.description == "/k: not a valid kubeconfig: \(cause)")
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

    @Test("a kubeconfig with a token file (relative to it) and inline CA reaches the real API server", .realAPIServer)
    func tokenFileIsReadForRequests() async throws {
        let api = try await RealKubernetesAPIServer.shared()
        try await withTemporaryDirectory { (directory: String) async throws in
            try (api.adminToken + "\n").write(toFile: directory + "/token", atomically: true, encoding: .utf8)
            try api.kubeconfig(user: "tokenFile: token").write(toFile: directory + "/config", atomically: true, encoding: .utf8)
            let configuration = try KubernetesConfiguration.kubeconfig(at: directory + "/config")
            #expect(configuration.credentials == .tokenFile(directory + "/token"))
            let client = try RESTKubernetesClient(configuration: configuration)
            // Found or not, an answer past authentication and RBAC: the file's token was sent.
            await #expect(throws: KubernetesClientError.notFound("secretproviderclasses.secrets-store.csi.x-k8s.io \"x\" not found")) {
                try await client.secretProviderClass(namespace: "default", name: "x", logger: Logger(label: "t"))
            }
            try await client.shutdown()
        }
    }
}
