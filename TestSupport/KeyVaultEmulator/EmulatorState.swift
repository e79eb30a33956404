import SecretsStoreHTTPServer
import Crypto
import Foundation
import NIOHTTP1
import NIOSSL
import _CryptoExtras

/// Everything the emulator holds, mutated only under its lock.
struct State {
    struct SecretVersion {
        var id: String
        var value: String
        var contentType: String?
        var kid: String?
        var enabled: Bool
        var created: Int
        var tags: [String: String]? = nil
        /// `attributes.updated`: `created` until the version's attributes, tags or content type change.
        var updated: Int

        init(id: String, value: String, contentType: String?, kid: String?, enabled: Bool, created: Int, tags: [String: String]? = nil) {
            self.id = id
            self.value = value
            self.contentType = contentType
            self.kid = kid
            self.enabled = enabled
            self.created = created
            self.tags = tags
            self.updated = created
        }
    }
    struct KeyVersion {
        var id: String
        var jwk: [String: String]
        var enabled: Bool
        var created: Int
    }
    struct CertificateVersion {
        var id: String
        var cer: [UInt8]
        var enabled: Bool
        var created: Int
    }
    struct Vault {
        var secrets: [String: [SecretVersion]] = [:]
        var keys: [String: [KeyVersion]] = [:]
        var certificates: [String: [CertificateVersion]] = [:]
        var allowedClients: Set<String>?
        /// Clients limited to these secret permissions (``EmulatorSeed/Vault/secretPermissions``).
        var secretPermissions: [String: Set<SecretPermission>] = [:]
        /// Refusals read as Azure RBAC's (`ForbiddenByRbac`) rather than access policies' (`AccessDenied`).
        var enableRbacAuthorization = false
    }
    /// The secret permissions the emulator tells apart, by their access-policy names.
    enum SecretPermission: String, CaseIterable {
        case get, list, set

        /// The Azure RBAC data action Key Vault names when a role assignment lacks this permission.
        var rbacAction: String {
            switch self {
            case .get: "Microsoft.KeyVault/vaults/secrets/getSecret/action"
            case .list: "Microsoft.KeyVault/vaults/secrets/readMetadata/action"
            case .set: "Microsoft.KeyVault/vaults/secrets/setSecret/action"
            }
        }
    }
    struct IssuedToken {
        var clientID: String
        var resource: String
        var expires: Date
    }

    var tenantID: String?
    var additionalTenantIDs: Set<String> = []
    var clients: [String: EmulatorSeed.Client] = [:]
    var managedIdentities: Set<String> = []
    /// The keys of the issuers whose service account tokens are accepted as client assertions.
    var trustedIssuers: [String: [TrustedKey]] = [:]
    var vaults: [String: Vault] = [:]
    var tokens: [String: IssuedToken] = [:]
    var counts: [String: Int] = [:]
    /// Key Vault requests by vault (lowercased; `""` without a vault segment) and operation.
    var operationCounts: [String: [KeyVaultEmulator.Operation: Int]] = [:]
    var keyVaultRequests = 0
    var tokenRequests = 0
    var faults = KeyVaultEmulator.Faults()
    var windowStart = ContinuousClock.now
    var windowCount = 0
    private var clock = 1_700_000_000

    init(seed: EmulatorSeed) throws {
        tenantID = seed.tenantID
        additionalTenantIDs = Set(seed.additionalTenantIDs ?? [])
        for client in seed.clients ?? [] { clients[client.clientID] = client }
        managedIdentities = Set(seed.managedIdentities ?? [])
        trustedIssuers = try TrustedIssuers.load(seed.issuers)
        for (name, vaultSeed) in seed.vaults ?? [:] {
            var vault = Vault()
            vault.allowedClients = vaultSeed.allowedClients.map(Set.init)
            vault.enableRbacAuthorization = vaultSeed.enableRbacAuthorization ?? false
            for (client, names) in vaultSeed.secretPermissions ?? [:] {
                vault.secretPermissions[client] = try Set(names.map { permissionName in
                    guard let permission = SecretPermission(rawValue: permissionName.lowercased()) else {
                        throw EmulatorError("vault \(name): secretPermissions of \(client): '\(permissionName)' is not one of get, list, set")
                    }
                    return permission
                })
            }
            vaults[name] = vault
            for (secret, versions) in vaultSeed.secrets ?? [:] {
                for version in versions {
                    let id = makeVersionID()
                    var value = version.value ?? ""
                    var contentType = version.contentType
                    var kid: String?
                    if let pkcs12 = version.pkcs12 {
                        value = pkcs12
                        contentType = "application/x-pkcs12"
                        kid = "keys/\(secret)/\(id)"
                    } else if let pem = version.pem {
                        value = pem
                        contentType = "application/x-pem-file"
                        kid = "keys/\(secret)/\(id)"
                    }
                    vaults[name]!.secrets[secret, default: []].append(
                        SecretVersion(id: id, value: value, contentType: contentType, kid: kid, enabled: version.enabled ?? true, created: tick(), tags: version.tags)
                    )
                }
            }
            for (key, versions) in vaultSeed.keys ?? [:] {
                for version in versions {
                    vaults[name]!.keys[key, default: []].append(
                        KeyVersion(id: makeVersionID(), jwk: version.jwk, enabled: version.enabled ?? true, created: tick())
                    )
                }
            }
            for (certificate, versions) in vaultSeed.certificates ?? [:] {
                for version in versions {
                    try addCertificate(vault: name, name: certificate, version)
                }
            }
        }
    }

    /// A certificate version makes three objects with one version id: the certificate (leaf DER), the secret
    /// (PFX or PEM, with `kid`) and the key (public JWK).
    private mutating func addCertificate(vault: String, name: String, _ seed: EmulatorSeed.CertificateVersion) throws {
        let id = makeVersionID()
        let created = tick()
        let enabled = seed.enabled ?? true
        let leaf: [UInt8]
        let key: NIOSSLPrivateKey
        let value: String
        let contentType: String
        if let pkcs12 = seed.pkcs12 {
            guard let der = Data(base64Encoded: pkcs12) else { throw EmulatorError("certificate \(name): pkcs12 is not base64") }
            let bundle = try NIOSSLPKCS12Bundle(buffer: Array(der), passphrase: [UInt8]())
            guard let first = bundle.certificateChain.first else { throw EmulatorError("certificate \(name): no certificate") }
            leaf = try first.toDERBytes()
            key = bundle.privateKey
            value = pkcs12
            contentType = "application/x-pkcs12"
        } else if let pem = seed.pem {
            let certificates = try NIOSSLCertificate.fromPEMBytes(Array(pem.utf8))
            guard let first = certificates.first else { throw EmulatorError("certificate \(name): no certificate in PEM") }
            leaf = try first.toDERBytes()
            key = try NIOSSLPrivateKey(bytes: Array(pem.utf8), format: .pem)
            value = pem
            contentType = "application/x-pem-file"
        } else {
            throw EmulatorError("certificate \(name): needs pkcs12 or pem")
        }
        vaults[vault]!.certificates[name, default: []].append(CertificateVersion(id: id, cer: leaf, enabled: enabled, created: created))
        vaults[vault]!.secrets[name, default: []].append(
            SecretVersion(id: id, value: value, contentType: contentType, kid: "keys/\(name)/\(id)", enabled: enabled, created: created)
        )
        vaults[vault]!.keys[name, default: []].append(KeyVersion(id: id, jwk: try Self.publicJWK(of: key), enabled: enabled, created: created))
    }

    static func publicJWK(of key: NIOSSLPrivateKey) throws -> [String: String] {
        let der = try key.derBytes
        if let rsa = try? _RSA.Signing.PrivateKey(unsafeDERRepresentation: der) {
            let primitives = try rsa.publicKey.getKeyPrimitives()
            return ["kty": "RSA", "n": base64URL(primitives.modulus), "e": base64URL(primitives.publicExponent)]
        }
        func ec(_ x963: Data, curve: String, size: Int) -> [String: String] {
            let point = Array(x963.dropFirst())
            return ["kty": "EC", "crv": curve, "x": base64URL(Data(point[0..<size])), "y": base64URL(Data(point[size...]))]
        }
        if let p256 = try? P256.Signing.PrivateKey(derRepresentation: der) { return ec(p256.publicKey.x963Representation, curve: "P-256", size: 32) }
        if let p384 = try? P384.Signing.PrivateKey(derRepresentation: der) { return ec(p384.publicKey.x963Representation, curve: "P-384", size: 48) }
        if let p521 = try? P521.Signing.PrivateKey(derRepresentation: der) { return ec(p521.publicKey.x963Representation, curve: "P-521", size: 66) }
        throw EmulatorError("unsupported certificate key type")
    }

    static func base64URL(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    mutating func makeVersionID() -> String {
        (0..<16).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
    }

    /// Creation times advance one second per object so version order is well defined.
    mutating func tick() -> Int {
        clock += 1
        return clock
    }

    // MARK: Responses

    static func json(_ status: Int, _ body: Any, headers: [(String, String)] = []) -> HTTPListener.Response {
        let data = (try? JSONSerialization.data(withJSONObject: body, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
        return .init(status: status, headers: [("Content-Type", "application/json; charset=utf-8")] + headers, body: Array(data))
    }

    static func entraError(_ status: Int, _ error: String, code: Int, _ description: String) -> HTTPListener.Response {
        let trace = UUID().uuidString.lowercased()
        let timestamp = ISO8601DateFormatter().string(from: Date())
        return json(
            status,
            [
                "error": error,
                "error_description": "AADSTS\(code): \(description) Trace ID: \(trace) Correlation ID: \(trace) Timestamp: \(timestamp)",
                "error_codes": [code], "timestamp": timestamp, "trace_id": trace, "correlation_id": trace,
            ]
        )
    }

    static func keyVaultError(_ status: Int, _ code: String, _ message: String, inner: String? = nil, headers: [(String, String)] = []) -> HTTPListener.Response {
        var error: [String: Any] = ["code": code, "message": message]
        if let inner { error["innererror"] = ["code": inner] }
        return json(status, ["error": error], headers: headers)
    }

    // MARK: Entra ID

    mutating func entraToken(_ request: HTTPListener.Request, tenant: String, baseURL: String) -> HTTPListener.Response {
        guard request.method == "POST" else { return Self.entraError(405, "invalid_request", code: 900561, "The endpoint only accepts POST requests.") }
        if let tenantID, tenant != tenantID, tenant != "organizations", !additionalTenantIDs.contains(tenant) {
            return Self.entraError(400, "invalid_request", code: 90002, "Tenant '\(tenant)' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.")
        }
        let form = FormFields.decode(String(decoding: request.body, as: UTF8.self))
        guard form["grant_type"] == "client_credentials" else {
            return Self.entraError(400, "unsupported_grant_type", code: 70003, "The app requested an unsupported grant type '\(form["grant_type"] ?? "")'.")
        }
        guard let clientID = form["client_id"], !clientID.isEmpty else {
            return Self.entraError(400, "invalid_request", code: 900144, "The request body must contain the following parameter: 'client_id'.")
        }
        // Entra ignores the OpenID scopes MSAL adds to every request (Go MSAL sends
        // `https://vault.azure.net/.default openid offline_access profile` for client credentials too).
        let resourceScopes = (form["scope"] ?? "").split(separator: " ").filter { !["openid", "offline_access", "profile"].contains($0) }
        guard resourceScopes.count == 1, let scope = resourceScopes.first.map(String.init), scope.hasSuffix("/.default") else {
            return Self.entraError(400, "invalid_scope", code: 1002012, "The provided value for scope \(form["scope"] ?? "") is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).")
        }
        guard let client = clients[clientID] else {
            return Self.entraError(400, "unauthorized_client", code: 700016, "Application with identifier '\(clientID)' was not found in the directory '\(tenant)'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.")
        }
        if let assertion = form["client_assertion"] {
            guard form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" else {
                return Self.entraError(400, "invalid_request", code: 50027, "Invalid client_assertion_type.")
            }
            if let refusal = checkAssertion(assertion, client: client) { return refusal }
        } else if let secret = form["client_secret"] {
            guard let expected = client.secret, expected == secret else {
                return Self.entraError(401, "invalid_client", code: 7000215, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '\(clientID)'.")
            }
        } else {
            return Self.entraError(401, "invalid_client", code: 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
        }
        return issue(clientID: clientID, resource: String(scope.dropLast("/.default".count)), imds: false)
    }

    mutating func imdsToken(_ request: HTTPListener.Request) -> HTTPListener.Response {
        guard request.headers.first(name: "Metadata")?.lowercased() == "true" else {
            return Self.json(400, ["error": "invalid_request", "error_description": "Required metadata header not specified"])
        }
        let query = FormFields.decode(request.query)
        guard let resource = query["resource"], !resource.isEmpty else {
            return Self.json(400, ["error": "invalid_request", "error_description": "Required query variable 'resource' is missing"])
        }
        let identity = query["client_id"] ?? "system"
        guard managedIdentities.contains(identity) else {
            return Self.json(400, ["error": "invalid_request", "error_description": "Identity not found"])
        }
        return issue(clientID: identity, resource: resource.hasSuffix("/") ? String(resource.dropLast()) : resource, imds: true)
    }

    private mutating func issue(clientID: String, resource: String, imds: Bool) -> HTTPListener.Response {
        let token = "emu." + makeVersionID() + makeVersionID()
        let lifetime = 3599
        let expires = Date().addingTimeInterval(TimeInterval(lifetime))
        tokens[token] = IssuedToken(clientID: clientID, resource: resource, expires: expires)
        if imds {
            let now = Int(Date().timeIntervalSince1970)
            return Self.json(200, [
                "access_token": token, "client_id": clientID, "expires_in": "\(lifetime)", "expires_on": "\(now + lifetime)",
                "ext_expires_in": "\(lifetime)", "not_before": "\(now)", "resource": resource, "token_type": "Bearer",
            ])
        }
        return Self.json(200, ["token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": token])
    }

    /// Entra's instance discovery (`GET /common/discovery/instance?api-version=1.1&authorization_endpoint=…`):
    /// the authority is known, its tenant discovery document is the OIDC metadata beside the authorize
    /// endpoint, and its host is its only alias. A missing or unparsable endpoint answers 400 as Entra does.
    static func instanceDiscovery(_ request: HTTPListener.Request) -> HTTPListener.Response {
        let query = FormFields.decode(request.query)
        guard let endpoint = query["authorization_endpoint"], let url = URL(string: endpoint), let host = url.host,
            let tenant = url.path.split(separator: "/").first
        else {
            return json(400, ["error": "invalid_instance", "error_description": "AADSTS50049: Unknown or invalid instance."])
        }
        let origin = url.port.map { "https://\(host):\($0)" } ?? "https://\(host)"
        return json(200, [
            "tenant_discovery_endpoint": "\(origin)/\(tenant)/v2.0/.well-known/openid-configuration",
            "api-version": "1.1",
            "metadata": [["preferred_network": host, "preferred_cache": host, "aliases": [host]]],
        ])
    }

    func openIDConfiguration(tenant: String, baseURL: String) -> HTTPListener.Response {
        Self.json(200, [
            "token_endpoint": "\(baseURL)/\(tenant)/oauth2/v2.0/token",
            "authorization_endpoint": "\(baseURL)/\(tenant)/oauth2/v2.0/authorize",
            "issuer": "\(baseURL)/\(tenant)/v2.0",
            "jwks_uri": "\(baseURL)/\(tenant)/discovery/v2.0/keys",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "tenant_region_scope": "NA",
        ])
    }
}

struct EmulatorError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Form and query decoding.
enum FormFields {
    static func decode(_ text: String) -> [String: String] {
        var fields: [String: String] = [:]
        for pair in text.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1).map { String($0).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String($0) }
            fields[parts[0]] = parts.count > 1 ? parts[1] : ""
        }
        return fields
    }
}
