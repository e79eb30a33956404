import SecretsStoreKubernetes

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension FuzzTarget {
    /// kubeconfig text through ``KubernetesConfiguration/kubeconfig(text:baseDirectory:source:)``, with a base
    /// directory that cannot exist, so relative file references are never read.
    ///
    /// Properties: an accepted configuration has a server URL; a token credential is
    /// non-empty; a token file is an absolute path.
    package static let kubeconfig = FuzzTarget(
        name: "kubeconfig",
        summary: "kubeconfig YAML through KubernetesConfiguration.kubeconfig(text:baseDirectory:)",
        seeds: KubeconfigSeeds.texts.map { Array($0.utf8) },
        dictionary: KubeconfigSeeds.tokens.map { Array($0.utf8) },
        maxInputLength: 32 * 1024,
        check: checkKubeconfig
    )

    private static func checkKubeconfig(_ bytes: [UInt8]) -> FuzzOutcome {
        let name = "kubeconfig"
        let configuration: KubernetesConfiguration
        do {
            configuration = try KubernetesConfiguration.kubeconfig(
                text: String(decoding: bytes, as: UTF8.self),
                baseDirectory: KubeconfigSeeds.baseDirectory
            )
        } catch {
            require(!error.description.isEmpty, "rejected with an empty message", target: name, input: bytes)
            return .rejected(error.description)
        }
        require(!configuration.server.isEmpty, "accepted a configuration without a server", target: name, input: bytes)
        switch configuration.credentials {
        case .token(let token):
            require(!token.isEmpty, "accepted an empty token", target: name, input: bytes)
        case .tokenFile(let path):
            require(path.hasPrefix("/"), "accepted a relative token file \(path.debugDescription)", target: name, input: bytes)
        case .none, .clientCertificate:
            break
        }
        return .accepted
    }
}

/// Realistic kubeconfigs: kind/minikube-style with inline certificates, a token user, a token file, several
/// contexts, and fields the driver ignores (exec plugins, extensions, preferences).
enum KubeconfigSeeds {
    /// Under a character device, so no file below it can exist.
    static let baseDirectory = "/dev/null/csi-fuzz"

    static let caData = Data(FuzzMaterial.pemBundle.utf8).base64EncodedString()

    static let texts: [String] = [
        """
        apiVersion: v1
        kind: Config
        clusters:
        - cluster:
            certificate-authority-data: \(caData)
            server: https://127.0.0.1:6443
          name: kind-csi
        contexts:
        - context:
            cluster: kind-csi
            user: kind-csi
          name: kind-csi
        current-context: kind-csi
        preferences: {}
        users:
        - name: kind-csi
          user:
            client-certificate-data: \(caData)
            client-key-data: \(caData)
        """,
        """
        apiVersion: v1
        kind: Config
        current-context: prod
        clusters:
          - name: prod
            cluster:
              server: "https://api.prod.example.com:443/"
              insecure-skip-tls-verify: false
              extensions:
                - name: client.authentication.k8s.io/exec
                  extension: {audience: prod}
          - name: staging
            cluster: {server: "https://[fd00::1]:6443"}
        contexts:
          - name: prod
            context: {cluster: prod, user: driver, namespace: kube-system}
          - name: staging
            context: {cluster: staging, user: exec-user}
        users:
          - name: driver
            user:
              token: eyJhbGciOiJSUzI1NiIsImtpZCI6ImZ1enoifQ.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6a3ViZS1zeXN0ZW06Y3NpIn0.c2ln
          - name: exec-user
            user:
              exec:
                apiVersion: client.authentication.k8s.io/v1beta1
                command: kubelogin
                args: [get-token, --server-id, 6dae42f8-4368-4678-94ff-3960e28e3630]
        """,
        """
        {"apiVersion":"v1","kind":"Config","current-context":"sa","clusters":[{"name":"in-cluster","cluster":{"server":"https://10.96.0.1:443","insecure-skip-tls-verify":true}}],"contexts":[{"name":"sa","context":{"cluster":"in-cluster","user":"sa"}}],"users":[{"name":"sa","user":{"tokenFile":"token"}}]}
        """,
        """
        current-context: local
        clusters: [{name: local, cluster: {server: "http://localhost:8080"}}]
        contexts: [{name: local, context: {cluster: local}}]
        """,
    ]

    static let tokens: [String] = [
        "current-context: ", "clusters:", "contexts:", "users:", "- name: ", "  cluster:", "  context:", "  user:",
        "server: ", "cluster: ", "user: ", "name: ", "token: ", "tokenFile: ", "client-certificate-data: ",
        "client-key-data: ", "client-certificate: ", "client-key: ", "certificate-authority-data: ",
        "certificate-authority: ", "insecure-skip-tls-verify: ", "https://", "http://", ":6443", "[::1]", "\"\"",
        "ca.crt", "token", "namespace: ",
    ]
}
