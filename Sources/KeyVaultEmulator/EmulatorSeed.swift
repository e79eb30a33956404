import Foundation
import Yams

/// The emulator's starting state, from YAML or JSON.
///
/// ```yaml
/// tenantID: 00000000-0000-0000-0000-000000000001   # optional; any tenant is accepted when unset
/// clients:
///   - clientID: app-1
///     secret: s3cret                               # client credentials
///   - clientID: wi-app
///     federated:                                   # workload identity (jwt-bearer assertions)
///       - subject: system:serviceaccount:default:app
///         audience: api://AzureADTokenExchange
/// managedIdentities: [system, uami-client-id]      # IMDS identities on this "node"
/// vaults:
///   kv1:
///     secrets:
///       db-pass: [{value: one}, {value: two}]      # versions, oldest first
///       web: [{pkcs12: <base64 PFX>}]              # a certificate-backed secret (kid set)
///     keys:
///       signing: [{jwk: {kty: RSA, n: ..., e: AQAB}}]
///     certificates:
///       web: [{pkcs12: <base64 PFX>}]              # creates the certificate, its secret and its key
/// ```
package struct EmulatorSeed: Codable, Sendable {
    package struct Client: Codable, Sendable {
        package struct Federation: Codable, Sendable {
            package var subject: String
            package var audience: String
            package var issuer: String?
            package init(subject: String, audience: String, issuer: String? = nil) {
                self.subject = subject
                self.audience = audience
                self.issuer = issuer
            }
        }
        package var clientID: String
        package var secret: String?
        package var federated: [Federation]?
        package init(clientID: String, secret: String? = nil, federated: [Federation]? = nil) {
            self.clientID = clientID
            self.secret = secret
            self.federated = federated
        }
    }

    package struct SecretVersion: Codable, Sendable {
        package var value: String?
        package var contentType: String?
        package var pkcs12: String?
        package var pem: String?
        package var enabled: Bool?
        package var tags: [String: String]?
        package init(value: String? = nil, contentType: String? = nil, pkcs12: String? = nil, pem: String? = nil, enabled: Bool? = nil, tags: [String: String]? = nil) {
            self.value = value
            self.contentType = contentType
            self.pkcs12 = pkcs12
            self.pem = pem
            self.enabled = enabled
            self.tags = tags
        }
    }

    package struct KeyVersion: Codable, Sendable {
        package var jwk: [String: String]
        package var enabled: Bool?
        package init(jwk: [String: String], enabled: Bool? = nil) {
            self.jwk = jwk
            self.enabled = enabled
        }
    }

    package struct CertificateVersion: Codable, Sendable {
        /// Base64 PFX without password.
        package var pkcs12: String?
        /// PEM with the private key and the chain (stored as `application/x-pem-file`).
        package var pem: String?
        package var enabled: Bool?
        package init(pkcs12: String? = nil, pem: String? = nil, enabled: Bool? = nil) {
            self.pkcs12 = pkcs12
            self.pem = pem
            self.enabled = enabled
        }
    }

    package struct Vault: Codable, Sendable {
        package var secrets: [String: [SecretVersion]]?
        package var keys: [String: [KeyVersion]]?
        package var certificates: [String: [CertificateVersion]]?
        /// Client IDs allowed to read; everyone authenticated when unset.
        package var allowedClients: [String]?
        package init(
            secrets: [String: [SecretVersion]]? = nil,
            keys: [String: [KeyVersion]]? = nil,
            certificates: [String: [CertificateVersion]]? = nil,
            allowedClients: [String]? = nil
        ) {
            self.secrets = secrets
            self.keys = keys
            self.certificates = certificates
            self.allowedClients = allowedClients
        }
    }

    package var tenantID: String?
    package var clients: [Client]?
    package var managedIdentities: [String]?
    package var vaults: [String: Vault]?

    package init(tenantID: String? = nil, clients: [Client]? = nil, managedIdentities: [String]? = nil, vaults: [String: Vault]? = nil) {
        self.tenantID = tenantID
        self.clients = clients
        self.managedIdentities = managedIdentities
        self.vaults = vaults
    }

    /// Reads a seed file (YAML, which includes JSON).
    package static func load(path: String) throws -> EmulatorSeed {
        try YAMLDecoder().decode(EmulatorSeed.self, from: String(contentsOfFile: path, encoding: .utf8))
    }
}
