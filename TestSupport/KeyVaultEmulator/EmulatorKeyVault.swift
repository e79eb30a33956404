import SecretsStoreHTTPServer
import Crypto
import Foundation
import NIOHTTP1

extension State {
    /// Key Vault data plane: faults and throttling, then authentication, then the object routes.
    /// `vault` is nil for requests without a vault segment (they go to the only vault, or fail).
    ///
    /// An object name outside Key Vault's rule, or a version that is not 32 hex digits, gets Key Vault's
    /// `400 BadParameter` (`The request URI contains an invalid name: …` / `… invalid version: …`).
    mutating func keyVault(
        _ request: HTTPListener.Request,
        vault requestedVault: String?,
        rest: [String],
        baseURL: String
    ) -> HTTPListener.Response {
        let response = keyVaultUnlatched(request, vault: requestedVault, rest: rest, baseURL: baseURL)
        guard let latency = faults.latency else { return response }
        return .deferred {
            try? await Task.sleep(for: latency)
            return response
        }
    }

    private mutating func keyVaultUnlatched(
        _ request: HTTPListener.Request,
        vault requestedVault: String?,
        rest: [String],
        baseURL: String
    ) -> HTTPListener.Response {
        if let failure = faults.failNext, failure.count > 0 {
            faults.failNext = failure.count > 1 ? (failure.status, failure.count - 1) : nil
            if failure.status == 429 {
                return Self.keyVaultError(429, "Throttled", "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached", headers: [("Retry-After", "\(faults.retryAfterSeconds)")])
            }
            return Self.keyVaultError(failure.status, "InternalServerError", "An unexpected error occurred (injected).")
        }
        if let limit = faults.throttleLimit {
            let now = ContinuousClock.now
            if now - windowStart >= faults.throttleWindow {
                windowStart = now
                windowCount = 0
            }
            windowCount += 1
            if windowCount > limit {
                return Self.keyVaultError(429, "Throttled", "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached", headers: [("Retry-After", "\(faults.retryAfterSeconds)")])
            }
        }
        // Vault names are DNS labels in Azure: case-insensitive.
        let vaultName = requestedVault.map { name in vaults.keys.first { $0.lowercased() == name.lowercased() } ?? name }
            ?? (vaults.count == 1 ? vaults.keys.first! : "")
        let prefix = requestedVault.map { "\(baseURL)/\($0)" } ?? baseURL
        let query = FormFields.decode(request.query)
        guard query["api-version"] != nil else {
            return Self.keyVaultError(400, "BadParameter", "The request URI contains an invalid version: ''")
        }

        // Authentication: a bearer token this emulator issued for the Key Vault resource.
        let tenantHint = tenantID ?? "common"
        let challenge = ("WWW-Authenticate", "Bearer authorization=\"\(baseURL)/\(tenantHint)\", resource=\"\(KeyVaultEmulator.keyVaultResource)\"")
        guard let header = request.headers.first(name: "Authorization"), header.hasPrefix("Bearer ") else {
            return Self.keyVaultError(401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.", headers: [challenge])
        }
        guard let token = tokens[String(header.dropFirst(7))], token.expires > Date() else {
            return Self.keyVaultError(401, "Unauthorized", "AKV10032: Invalid issuer or expired token.", headers: [challenge])
        }
        guard token.resource == KeyVaultEmulator.keyVaultResource else {
            return Self.keyVaultError(401, "Unauthorized", "AKV10022: Invalid audience. Expected \(KeyVaultEmulator.keyVaultResource), found: \(token.resource).", headers: [challenge])
        }
        guard var vault = vaults[vaultName] else {
            return Self.keyVaultError(404, "VaultNotFound", "Vault '\(vaultName)' does not exist in this emulator.")
        }
        let collection = rest[0]
        if let allowed = vault.allowedClients, !allowed.contains(token.clientID) {
            let permission = collection == "secrets" ? "secrets get" : collection == "keys" ? "keys get" : "certificates get"
            return Self.keyVaultError(403, "Forbidden", "The user, group or application 'appid=\(token.clientID);' does not have \(permission) permission on key vault '\(vaultName);location=emulator'. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287", inner: "AccessDenied")
        }
        guard rest.count >= 2 else { return Self.keyVaultError(400, "BadParameter", "An object name is required.") }
        let name = rest[1]
        guard Self.isValidObjectName(name) else {
            return Self.keyVaultError(400, "BadParameter", "The request URI contains an invalid name: \(name.removingPercentEncoding ?? name)")
        }
        let base = "\(prefix)/\(collection)/\(name)"

        // Writes a test needs: set a secret (new version), enable/disable a version.
        if request.method == "PUT", collection == "secrets", rest.count == 2 {
            let body = (try? JSONSerialization.jsonObject(with: Data(request.body))) as? [String: Any] ?? [:]
            guard let value = body["value"] as? String else { return Self.keyVaultError(400, "BadParameter", "Property value is required.") }
            let version = SecretVersion(id: makeVersionID(), value: value, contentType: body["contentType"] as? String, kid: nil, enabled: true, created: tick())
            vault.secrets[name, default: []].append(version)
            vaults[vaultName] = vault
            return Self.json(200, secretBundle(version, base: base))
        }
        if request.method == "PATCH", collection == "secrets", rest.count == 3 {
            guard let index = vault.secrets[name]?.firstIndex(where: { $0.id == rest[2] }) else {
                return notFound(collection, "\(name)/\(rest[2])")
            }
            let body = (try? JSONSerialization.jsonObject(with: Data(request.body))) as? [String: Any] ?? [:]
            if let enabled = (body["attributes"] as? [String: Any])?["enabled"] as? Bool {
                vault.secrets[name]![index].enabled = enabled
            }
            vaults[vaultName] = vault
            return Self.json(200, secretBundle(vault.secrets[name]![index], base: base))
        }
        guard request.method == "GET" else { return Self.keyVaultError(405, "MethodNotAllowed", "The method is not allowed.") }

        // Lists of versions, paged with $skiptoken and nextLink.
        if rest.count == 3, rest[2] == "versions" {
            let items: [[String: Any]]
            switch collection {
            case "secrets": items = (vault.secrets[name] ?? []).map { properties(id: "\(base)/\($0.id)", enabled: $0.enabled, created: $0.created, extra: $0.contentType.map { ["contentType": $0] } ?? [:]) }
            case "keys": items = (vault.keys[name] ?? []).map { properties(id: "\(base)/\($0.id)", enabled: $0.enabled, created: $0.created, idKey: "kid") }
            default: items = (vault.certificates[name] ?? []).map { properties(id: "\(base)/\($0.id)", enabled: $0.enabled, created: $0.created) }
            }
            guard !items.isEmpty else { return notFound(collection, name) }
            let pageSize = min(25, Int(query["maxresults"] ?? "") ?? 25)
            let start = Int(query["$skiptoken"] ?? "") ?? 0
            let page = Array(items.dropFirst(start).prefix(pageSize))
            var body: [String: Any] = ["value": page]
            if start + pageSize < items.count {
                body["nextLink"] = "\(base)/versions?api-version=\(query["api-version"]!)&$skiptoken=\(start + pageSize)&maxresults=\(pageSize)"
            } else {
                body["nextLink"] = NSNull()
            }
            return Self.json(200, body)
        }

        let requestedVersion = rest.count >= 3 ? rest[2] : ""
        guard requestedVersion.isEmpty || Self.isValidVersion(requestedVersion) else {
            return Self.keyVaultError(
                400,
                "BadParameter",
                "The request URI contains an invalid version: \(requestedVersion.removingPercentEncoding ?? requestedVersion)"
            )
        }
        switch collection {
        case "secrets":
            guard let versions = vault.secrets[name], !versions.isEmpty else { return notFound(collection, name) }
            guard let version = requestedVersion.isEmpty ? versions.last : versions.first(where: { $0.id == requestedVersion }) else {
                return notFound(collection, "\(name)/\(requestedVersion)")
            }
            guard version.enabled else { return disabled("secret") }
            return Self.json(200, secretBundle(version, base: base))
        case "keys":
            guard let versions = vault.keys[name], !versions.isEmpty else { return notFound(collection, name) }
            guard let version = requestedVersion.isEmpty ? versions.last : versions.first(where: { $0.id == requestedVersion }) else {
                return notFound(collection, "\(name)/\(requestedVersion)")
            }
            guard version.enabled else { return disabled("key") }
            var jwk: [String: Any] = version.jwk
            jwk["kid"] = "\(base)/\(version.id)"
            jwk["key_ops"] = jwk["kty"] as? String == "RSA" ? ["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"] : ["sign", "verify"]
            return Self.json(200, ["key": jwk, "attributes": attributes(enabled: true, created: version.created)])
        default:
            guard let versions = vault.certificates[name], !versions.isEmpty else { return notFound(collection, name) }
            guard let version = requestedVersion.isEmpty ? versions.last : versions.first(where: { $0.id == requestedVersion }) else {
                return notFound(collection, "\(name)/\(requestedVersion)")
            }
            guard version.enabled else { return disabled("certificate") }
            let keyBase = "\(prefix)/keys/\(name)/\(version.id)"
            let secretBase = "\(prefix)/secrets/\(name)/\(version.id)"
            return Self.json(200, [
                "id": "\(base)/\(version.id)", "kid": keyBase, "sid": secretBase,
                "x5t": Self.base64URL(Data(Insecure.SHA1.hash(data: version.cer))),
                "cer": Data(version.cer).base64EncodedString(),
                "attributes": attributes(enabled: true, created: version.created),
            ])
        }
    }

    /// Key Vault's rule for secret, key and certificate names: 1 to 127 of `0-9`, `a-z`, `A-Z` and `-`.
    static func isValidObjectName(_ name: String) -> Bool {
        (1...127).contains(name.utf8.count) && name.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "-"):
                return true
            default:
                return false
            }
        }
    }

    /// An object version as Key Vault makes them: 32 hexadecimal digits.
    static func isValidVersion(_ version: String) -> Bool {
        version.utf8.count == 32 && version.allSatisfy(\.isHexDigit)
    }

    private func secretBundle(_ version: SecretVersion, base: String) -> [String: Any] {
        var bundle: [String: Any] = [
            "value": version.value, "id": "\(base)/\(version.id)",
            "attributes": attributes(enabled: version.enabled, created: version.created),
        ]
        if let contentType = version.contentType { bundle["contentType"] = contentType }
        if let tags = version.tags { bundle["tags"] = tags }
        if let kid = version.kid {
            let root = base.components(separatedBy: "/secrets/").first ?? base
            bundle["kid"] = "\(root)/\(kid)"
            bundle["managed"] = true
        }
        return bundle
    }

    private func attributes(enabled: Bool, created: Int) -> [String: Any] {
        ["enabled": enabled, "created": created, "updated": created, "recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90]
    }

    private func properties(id: String, enabled: Bool, created: Int, idKey: String = "id", extra: [String: Any] = [:]) -> [String: Any] {
        var item: [String: Any] = [idKey: id, "attributes": attributes(enabled: enabled, created: created)]
        item.merge(extra) { _, new in new }
        return item
    }

    private func notFound(_ collection: String, _ name: String) -> HTTPListener.Response {
        let (code, noun) = collection == "secrets" ? ("SecretNotFound", "secret") : collection == "keys" ? ("KeyNotFound", "key") : ("CertificateNotFound", "certificate")
        return Self.keyVaultError(404, code, "A \(noun) with (name/id) \(name) was not found in this key vault. If you recently deleted this \(noun) you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182")
    }

    private func disabled(_ noun: String) -> HTTPListener.Response {
        Self.keyVaultError(403, "Forbidden", "Operation get is not allowed on a disabled \(noun).", inner: "\(noun.prefix(1).uppercased() + noun.dropFirst())Disabled")
    }
}
