#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SecretsStoreHTTPClient
import Yams

/// Where the API server is and how to authenticate to it.
package struct KubernetesConfiguration: Sendable, Equatable {
    /// How requests are authenticated.
    package enum Credentials: Sendable, Equatable {
        /// No authentication (a local test server).
        case none
        /// A fixed bearer token.
        case token(String)
        /// A bearer token read from a file and re-read when it may have rotated (projected service account
        /// tokens are refreshed by kubelet).
        case tokenFile(String)
        /// A client certificate chain and key, PEM.
        case clientCertificate(certificatePEM: [UInt8], keyPEM: [UInt8])
    }

    /// `https://host:port` (or `http://` for local tests), without a trailing slash.
    package var server: String
    /// How requests are authenticated.
    package var credentials: Credentials
    /// PEM bundle of CAs to trust instead of the system's; `nil` for the system roots.
    package var certificateAuthorityPEM: [UInt8]?
    /// Accept any server certificate (kubeconfig's `insecure-skip-tls-verify`).
    package var insecureSkipTLSVerify: Bool

    /// A configuration; a trailing `/` on `server` is dropped.
    package init(
        server: String,
        credentials: Credentials = .none,
        certificateAuthorityPEM: [UInt8]? = nil,
        insecureSkipTLSVerify: Bool = false
    ) {
        self.server = server.hasSuffix("/") ? String(server.dropLast()) : server
        self.credentials = credentials
        self.certificateAuthorityPEM = certificateAuthorityPEM
        self.insecureSkipTLSVerify = insecureSkipTLSVerify
    }

    /// The TLS settings for this server: only ``certificateAuthorityPEM`` when set (else the system's roots),
    /// the client certificate when that is the credential, and ``insecureSkipTLSVerify``.
    package var tls: HTTPSClientTLS {
        var clientCertificate: HTTPSClientTLS.ClientCertificate?
        if case .clientCertificate(let certificate, let key) = credentials {
            clientCertificate = .init(certificatePEM: certificate, keyPEM: key)
        }
        return HTTPSClientTLS(
            trustRoots: certificateAuthorityPEM.map { .only(pem: $0) } ?? .system(),
            clientCertificate: clientCertificate,
            insecureSkipVerify: insecureSkipTLSVerify
        )
    }

    /// A configuration problem, with the file or variable at fault.
    package struct LoadError: Error, CustomStringConvertible, Equatable {
        /// What is wrong and where (naming the cause, when there is one).
        package var description: String
        /// The error behind it (the YAML decoder's, for a kubeconfig that does not parse), when there is one.
        package var underlying: (any Error)?

        package init(description: String, underlying: (any Error)? = nil) {
            self.description = description
            self.underlying = underlying
        }

        /// Equal when they say the same thing (the cause is named in `description`; errors are not `Equatable`).
        package static func == (lhs: LoadError, rhs: LoadError) -> Bool { lhs.description == rhs.description }
    }

    /// The in-cluster configuration: `KUBERNETES_SERVICE_HOST`/`_PORT`, the service account token file and CA.
    package static func inCluster(
        environment: [String: String],
        serviceAccountDirectory: String = "/var/run/secrets/kubernetes.io/serviceaccount"
    ) throws(LoadError) -> KubernetesConfiguration {
        guard let host = environment["KUBERNETES_SERVICE_HOST"], !host.isEmpty,
            let port = environment["KUBERNETES_SERVICE_PORT"], !port.isEmpty
        else {
            throw LoadError(
                description: "not running in a cluster (KUBERNETES_SERVICE_HOST/PORT unset) and no --kubeconfig given"
            )
        }
        let hostPart = host.contains(":") ? "[\(host)]" : host
        return KubernetesConfiguration(
            server: "https://\(hostPart):\(port)",
            credentials: .tokenFile(serviceAccountDirectory + "/token"),
            certificateAuthorityPEM: try readFile(serviceAccountDirectory + "/ca.crt")
        )
    }

    /// The current context of a kubeconfig file. Relative file references resolve against the file's directory.
    package static func kubeconfig(at path: String) throws(LoadError) -> KubernetesConfiguration {
        let text = String(decoding: try readFile(path), as: UTF8.self)
        let directory = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
        return try kubeconfig(text: text, baseDirectory: directory, source: path)
    }

    /// The current context of kubeconfig `text`: its cluster's server, CA and `insecure-skip-tls-verify`, and
    /// its user's token, token file or client certificate (in that order of preference). Relative file
    /// references resolve against `baseDirectory`; errors start with `source`.
    package static func kubeconfig(
        text: String,
        baseDirectory: String,
        source: String = "kubeconfig"
    ) throws(LoadError) -> KubernetesConfiguration {
        let config: Kubeconfig
        do {
            config = try YAMLDecoder().decode(Kubeconfig.self, from: text)
        } catch {
            throw LoadError(description: "\(source): not a valid kubeconfig: \(error)", underlying: error)
        }
        guard let contextName = config.currentContext, !contextName.isEmpty else {
            throw LoadError(description: "\(source): current-context is not set")
        }
        guard let context = config.contexts?.first(where: { $0.name == contextName })?.context else {
            throw LoadError(description: "\(source): context \"\(contextName)\" not found")
        }
        guard let cluster = config.clusters?.first(where: { $0.name == context.cluster })?.cluster else {
            throw LoadError(description: "\(source): cluster \"\(context.cluster)\" not found")
        }
        let user = context.user.flatMap { name in config.users?.first(where: { $0.name == name })?.user }

        func resolve(_ file: String) -> String {
            file.hasPrefix("/") ? file : baseDirectory + "/" + file
        }
        func material(data: String?, file: String?, what: String) throws(LoadError) -> [UInt8]? {
            if let data {
                guard let decoded = Data(base64Encoded: data, options: .ignoreUnknownCharacters) else {
                    throw LoadError(description: "\(source): \(what)-data is not valid base64")
                }
                return Array(decoded)
            }
            if let file { return try readFile(resolve(file)) }
            return nil
        }

        var credentials = Credentials.none
        if let user {
            if let token = user.token, !token.isEmpty {
                credentials = .token(token)
            } else if let tokenFile = user.tokenFile, !tokenFile.isEmpty {
                credentials = .tokenFile(resolve(tokenFile))
            } else if let certificate = try material(
                data: user.clientCertificateData,
                file: user.clientCertificate,
                what: "client-certificate"
            ) {
                guard let key = try material(data: user.clientKeyData, file: user.clientKey, what: "client-key") else {
                    throw LoadError(description: "\(source): user has a client certificate but no client key")
                }
                credentials = .clientCertificate(certificatePEM: certificate, keyPEM: key)
            }
        }
        return KubernetesConfiguration(
            server: cluster.server,
            credentials: credentials,
            certificateAuthorityPEM: try material(
                data: cluster.certificateAuthorityData,
                file: cluster.certificateAuthority,
                what: "certificate-authority"
            ),
            insecureSkipTLSVerify: cluster.insecureSkipTLSVerify ?? false
        )
    }

    static func readFile(_ path: String) throws(LoadError) -> [UInt8] {
        do {
            return Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw LoadError(description: "cannot read \(path)")
        }
    }
}

/// The kubeconfig fields the driver understands.
private struct Kubeconfig: Decodable {
    struct NamedCluster: Decodable {
        var name: String
        var cluster: Cluster
    }
    struct Cluster: Decodable {
        var server: String
        var certificateAuthority: String?
        var certificateAuthorityData: String?
        var insecureSkipTLSVerify: Bool?

        enum CodingKeys: String, CodingKey {
            case server
            case certificateAuthority = "certificate-authority"
            case certificateAuthorityData = "certificate-authority-data"
            case insecureSkipTLSVerify = "insecure-skip-tls-verify"
        }
    }
    struct NamedUser: Decodable {
        var name: String
        var user: User
    }
    struct User: Decodable {
        var token: String?
        var tokenFile: String?
        var clientCertificate: String?
        var clientCertificateData: String?
        var clientKey: String?
        var clientKeyData: String?

        enum CodingKeys: String, CodingKey {
            case token
            case tokenFile
            case clientCertificate = "client-certificate"
            case clientCertificateData = "client-certificate-data"
            case clientKey = "client-key"
            case clientKeyData = "client-key-data"
        }
    }
    struct NamedContext: Decodable {
        var name: String
        var context: Context
    }
    struct Context: Decodable {
        var cluster: String
        var user: String?
        var namespace: String?
    }

    var clusters: [NamedCluster]?
    var users: [NamedUser]?
    var contexts: [NamedContext]?
    var currentContext: String?

    enum CodingKeys: String, CodingKey {
        case clusters, users, contexts
        case currentContext = "current-context"
    }
}
