import Foundation
import Yams

/// The emulator's starting state, from YAML or JSON.
///
/// ```yaml
/// tenantID: 00000000-0000-0000-0000-000000000001   # optional; any tenant is accepted when unset
/// issuers:                                         # service account token issuers trusted, with their keys;
///   - issuer: https://kubernetes.default.svc       # when unset, only the built-in test issuer
///     publicKeyFile: sa.pub                        # (ServiceAccountToken.testIssuer) is trusted
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
///   kv2:
///     secrets:
///       db-host: [{value: db.internal, tags: {env: prod, team: web}}]   # tags belong to a version
///     secretPermissions:                           # clients limited to these secret permissions
///       reader-app: [get]                          # may read secrets, not list them (403 on GET /secrets)
///     enableRbacAuthorization: true                # refusals read as Azure RBAC's (ForbiddenByRbac)
/// ```
package struct EmulatorSeed: Codable, Sendable {
    /// An issuer of service account tokens and the RSA public keys its tokens are signed with. Entra finds an
    /// issuer's keys by OIDC discovery (`<issuer>/.well-known/openid-configuration`, then its `jwks_uri`); the
    /// emulator is told them instead: the API server's `--service-account-key-file` public key, for a cluster.
    package struct Issuer: Codable, Sendable {
        /// The `iss` its tokens carry, compared exactly (`https://kubernetes.default.svc`).
        package var issuer: String
        /// A PEM file of its RSA keys, one or more blocks: `PUBLIC KEY` (what `openssl rsa -pubout` writes),
        /// `RSA PUBLIC KEY` or `CERTIFICATE`; a private key (`PRIVATE KEY`, `RSA PRIVATE KEY`) stands for its
        /// public half, as in the API server's `--service-account-key-file`. Relative paths are from the seed
        /// file's directory.
        package var publicKeyFile: String?
        /// The same PEM, inline.
        package var publicKeyPEM: String?
        /// An issuer; at least one of `publicKeyFile` and `publicKeyPEM` is needed.
        package init(issuer: String, publicKeyFile: String? = nil, publicKeyPEM: String? = nil) {
            self.issuer = issuer
            self.publicKeyFile = publicKeyFile
            self.publicKeyPEM = publicKeyPEM
        }
        /// The built-in test issuer (``ServiceAccountToken/testIssuer``) and its test-only key: trusted when a
        /// seed names no issuers; a seed naming issuers lists it to keep accepting the tokens of
        /// ``ServiceAccountToken/make(subject:audience:issuer:expiresIn:validFrom:key:)``.
        package static var builtInTest: Issuer {
            Issuer(issuer: ServiceAccountToken.testIssuer, publicKeyPEM: ServiceAccountToken.testPublicKeyPEM)
        }
    }

    /// An Entra ID application: a client secret, federated credentials, or both.
    package struct Client: Codable, Sendable {
        /// A federated identity credential: assertions with this subject and audience (and issuer, when set)
        /// are accepted, once signed by a trusted issuer's key (``EmulatorSeed/issuers``) and within their
        /// `nbf`/`exp`.
        package struct Federation: Codable, Sendable {
            /// The assertion's `sub` (`system:serviceaccount:<ns>:<sa>`).
            package var subject: String
            /// An `aud` the assertion must carry (`api://AzureADTokenExchange`).
            package var audience: String
            /// The `iss` the assertion must carry; any trusted issuer when `nil`.
            package var issuer: String?
            /// A federated credential.
            package init(subject: String, audience: String, issuer: String? = nil) {
                self.subject = subject
                self.audience = audience
                self.issuer = issuer
            }
        }
        /// The application's client ID.
        package var clientID: String
        /// Its client secret; `nil` refuses client-secret requests.
        package var secret: String?
        /// Its federated credentials; `nil` refuses assertions.
        package var federated: [Federation]?
        /// An application.
        package init(clientID: String, secret: String? = nil, federated: [Federation]? = nil) {
            self.clientID = clientID
            self.secret = secret
            self.federated = federated
        }
    }

    /// One version of a secret: a plain value, or a certificate-backed value (PKCS#12 base64 or PEM, which
    /// sets `kid` and the content type).
    package struct SecretVersion: Codable, Sendable {
        /// The plain value.
        package var value: String?
        /// The content type of a plain value.
        package var contentType: String?
        /// A base64 PFX without password: a certificate-backed secret (`application/x-pkcs12`).
        package var pkcs12: String?
        /// PEM key and chain: a certificate-backed secret (`application/x-pem-file`).
        package var pem: String?
        /// `false` makes reads of this version fail with 403 (as Key Vault does); enabled when `nil`.
        package var enabled: Bool?
        /// The version's tags, returned with the bundle and, for the current (newest) version, in the vault's
        /// secret list.
        package var tags: [String: String]?
        /// A secret version.
        package init(value: String? = nil, contentType: String? = nil, pkcs12: String? = nil, pem: String? = nil, enabled: Bool? = nil, tags: [String: String]? = nil) {
            self.value = value
            self.contentType = contentType
            self.pkcs12 = pkcs12
            self.pem = pem
            self.enabled = enabled
            self.tags = tags
        }
    }

    /// One version of a key: its public JWK.
    package struct KeyVersion: Codable, Sendable {
        /// The public JSON Web Key (`kty`, `n`/`e` or `crv`/`x`/`y`).
        package var jwk: [String: String]
        /// `false` makes reads of this version fail with 403; enabled when `nil`.
        package var enabled: Bool?
        /// A key version.
        package init(jwk: [String: String], enabled: Bool? = nil) {
            self.jwk = jwk
            self.enabled = enabled
        }
    }

    /// One version of a certificate; makes the certificate, its secret and its key with one version id.
    package struct CertificateVersion: Codable, Sendable {
        /// Base64 PFX without password.
        package var pkcs12: String?
        /// PEM with the private key and the chain (stored as `application/x-pem-file`).
        package var pem: String?
        /// `false` disables the certificate, its secret and its key; enabled when `nil`.
        package var enabled: Bool?
        /// A certificate version; one of `pkcs12` and `pem` is required.
        package init(pkcs12: String? = nil, pem: String? = nil, enabled: Bool? = nil) {
            self.pkcs12 = pkcs12
            self.pem = pem
            self.enabled = enabled
        }
    }

    /// One vault's objects, by name; each list holds versions oldest first.
    package struct Vault: Codable, Sendable {
        /// Secrets by name.
        package var secrets: [String: [SecretVersion]]?
        /// Keys by name.
        package var keys: [String: [KeyVersion]]?
        /// Certificates by name.
        package var certificates: [String: [CertificateVersion]]?
        /// Client IDs allowed to read; everyone authenticated when unset.
        package var allowedClients: [String]?
        /// Clients whose secret operations are limited to these permissions, by client ID, with the names of
        /// an access policy's secret permissions: `get` (read a secret or a version), `list` (the vault's secret
        /// list and a secret's version list), `set` (new versions, property updates). A client named here may
        /// use secrets even when ``allowedClients`` leaves it out; an operation outside its permissions is
        /// refused with 403 `Forbidden`, as Key Vault refuses it. `[get]` is the real-world split of an
        /// identity that may read the secrets it is told about but not list the vault (an access policy with
        /// `get` only, or an RBAC role assignment without `secrets/readMetadata/action`).
        package var secretPermissions: [String: [String]]?
        /// `true`: the vault uses the Azure RBAC permission model (ARM's `enableRbacAuthorization`), and refusals
        /// read as RBAC's (`Caller is not authorized…`, inner code `ForbiddenByRbac`); otherwise as access
        /// policies' (`… does not have secrets list permission…`, inner code `AccessDenied`).
        package var enableRbacAuthorization: Bool?
        /// A vault.
        package init(
            secrets: [String: [SecretVersion]]? = nil,
            keys: [String: [KeyVersion]]? = nil,
            certificates: [String: [CertificateVersion]]? = nil,
            allowedClients: [String]? = nil,
            secretPermissions: [String: [String]]? = nil,
            enableRbacAuthorization: Bool? = nil
        ) {
            self.secrets = secrets
            self.keys = keys
            self.certificates = certificates
            self.allowedClients = allowedClients
            self.secretPermissions = secretPermissions
            self.enableRbacAuthorization = enableRbacAuthorization
        }
    }

    /// The issuers whose service account tokens are accepted as assertions, with their keys. `nil`: the
    /// built-in test issuer only (``Issuer/builtInTest``); `[]`: none, every assertion is refused.
    package var issuers: [Issuer]?
    /// The tenant accepted (with ``additionalTenantIDs``); any when `nil`.
    package var tenantID: String?
    /// More tenants whose token requests are accepted besides ``tenantID`` (a SecretProviderClass reading
    /// vaults of several tenants); the same clients exist in each.
    package var additionalTenantIDs: [String]?
    /// Entra ID applications.
    package var clients: [Client]?
    /// Client IDs IMDS issues tokens for (`system` for the system-assigned identity).
    package var managedIdentities: [String]?
    /// Vaults by name.
    package var vaults: [String: Vault]?

    /// A seed.
    package init(
        tenantID: String? = nil,
        additionalTenantIDs: [String]? = nil,
        clients: [Client]? = nil,
        managedIdentities: [String]? = nil,
        vaults: [String: Vault]? = nil,
        issuers: [Issuer]? = nil
    ) {
        self.issuers = issuers
        self.tenantID = tenantID
        self.additionalTenantIDs = additionalTenantIDs
        self.clients = clients
        self.managedIdentities = managedIdentities
        self.vaults = vaults
    }

    /// Reads a seed file (YAML, which includes JSON); relative `publicKeyFile`s become relative to its directory.
    package static func load(path: String) throws -> EmulatorSeed {
        var seed = try YAMLDecoder().decode(EmulatorSeed.self, from: String(contentsOfFile: path, encoding: .utf8))
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent()
        seed.issuers = seed.issuers?.map { issuer in
            var issuer = issuer
            if let file = issuer.publicKeyFile, !file.hasPrefix("/") {
                issuer.publicKeyFile = directory.appendingPathComponent(file).path
            }
            return issuer
        }
        return seed
    }
}
