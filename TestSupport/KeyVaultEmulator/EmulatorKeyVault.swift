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
    ///
    /// `GET <vault>/secrets` is Key Vault's "Get Secrets": a page of `SecretItem`s (`id` without a version, the
    /// current version's `attributes`, `tags`, `contentType`, `managed` for certificate-backed secrets) in a
    /// stable order (names compared case-insensitively), at most `maxresults` (1 to 25, default 25) a page,
    /// and `nextLink` (an absolute URL carrying an opaque `$skiptoken` and the `maxresults` asked for) or
    /// `null` on the last page. The token marks the next name, so secrets added or deleted between pages
    /// neither repeat nor skip the others. An identity limited to secret `get`
    /// (``EmulatorSeed/Vault/secretPermissions``) is refused the list with 403 `Forbidden`.
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
        if let refusal = authorizationRefusal(vault, vaultName: vaultName, clientID: token.clientID, method: request.method, rest: rest) {
            return refusal
        }
        if collection == "secrets", rest.count == 1 {
            guard request.method == "GET" else { return Self.keyVaultError(405, "MethodNotAllowed", "The method is not allowed.") }
            return listSecrets(vault, query: query, prefix: prefix)
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
            let enabled = (body["attributes"] as? [String: Any])?["enabled"] as? Bool ?? true
            let version = SecretVersion(
                id: makeVersionID(), value: value, contentType: body["contentType"] as? String, kid: nil, enabled: enabled,
                created: tick(), tags: body["tags"] as? [String: String]
            )
            vault.secrets[name, default: []].append(version)
            vaults[vaultName] = vault
            return Self.json(200, secretBundle(version, base: base))
        }
        if request.method == "PATCH", collection == "secrets", rest.count == 2 || rest.count == 3 {
            // Without a version (`PATCH /secrets/<name>/`, as SDKs send it), the current version.
            let requested = rest.count == 3 ? rest[2] : nil
            guard let index = requested.map({ id in vault.secrets[name]?.firstIndex { $0.id == id } }) ?? vault.secrets[name]?.indices.last else {
                return notFound(collection, requested.map { "\(name)/\($0)" } ?? name)
            }
            let body = (try? JSONSerialization.jsonObject(with: Data(request.body))) as? [String: Any] ?? [:]
            if let enabled = (body["attributes"] as? [String: Any])?["enabled"] as? Bool {
                vault.secrets[name]![index].enabled = enabled
            }
            if let tags = body["tags"] as? [String: String] {
                vault.secrets[name]![index].tags = tags
            }
            if let contentType = body["contentType"] as? String {
                vault.secrets[name]![index].contentType = contentType
            }
            vault.secrets[name]![index].updated = tick()
            vaults[vaultName] = vault
            return Self.json(200, secretBundle(vault.secrets[name]![index], base: base))
        }
        guard request.method == "GET" else { return Self.keyVaultError(405, "MethodNotAllowed", "The method is not allowed.") }

        // Lists of versions, paged with $skiptoken and nextLink.
        if rest.count == 3, rest[2] == "versions" {
            let items: [[String: Any]]
            switch collection {
            case "secrets": items = (vault.secrets[name] ?? []).map { secretItem($0, id: "\(base)/\($0.id)") }
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
            "attributes": attributes(enabled: version.enabled, created: version.created, updated: version.updated),
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

    private func attributes(enabled: Bool, created: Int, updated: Int? = nil) -> [String: Any] {
        ["enabled": enabled, "created": created, "updated": updated ?? created, "recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90]
    }

    /// A `SecretItem` as Key Vault lists it: no value and no `kid`; `managed` for a certificate's secret.
    private func secretItem(_ version: SecretVersion, id: String) -> [String: Any] {
        var item: [String: Any] = ["id": id, "attributes": attributes(enabled: version.enabled, created: version.created, updated: version.updated)]
        if let contentType = version.contentType { item["contentType"] = contentType }
        if let tags = version.tags { item["tags"] = tags }
        if version.kid != nil { item["managed"] = true }
        return item
    }

    private func properties(id: String, enabled: Bool, created: Int, idKey: String = "id") -> [String: Any] {
        [idKey: id, "attributes": attributes(enabled: enabled, created: created)]
    }

    private func notFound(_ collection: String, _ name: String) -> HTTPListener.Response {
        let (code, noun) = collection == "secrets" ? ("SecretNotFound", "secret") : collection == "keys" ? ("KeyNotFound", "key") : ("CertificateNotFound", "certificate")
        return Self.keyVaultError(404, code, "A \(noun) with (name/id) \(name) was not found in this key vault. If you recently deleted this \(noun) you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182")
    }

    /// The 403 Key Vault answers when the caller may not do this, or `nil`. A client outside the vault's
    /// ``Vault/allowedClients`` is refused everything (unless ``Vault/secretPermissions`` names it, for
    /// secrets); a client named in ``Vault/secretPermissions`` is refused the secret operations outside its
    /// permissions. The body is access policies' (`AccessDenied`) or, in an RBAC vault, Azure RBAC's
    /// (`ForbiddenByRbac`), with Key Vault's texts.
    private func authorizationRefusal(_ vault: Vault, vaultName: String, clientID: String, method: String, rest: [String]) -> HTTPListener.Response? {
        let collection = rest[0]
        let limits = collection == "secrets" ? vault.secretPermissions[clientID] : nil
        let needed: SecretPermission
        if method != "GET" {
            needed = .set
        } else if rest.count == 1 || (rest.count == 3 && rest[2] == "versions") {
            needed = .list
        } else {
            needed = .get
        }
        let resource = "/" + rest.prefix(2).joined(separator: "/")
        if let allowed = vault.allowedClients, !allowed.contains(clientID), limits == nil {
            let action = collection == "secrets" ? SecretPermission.get.rbacAction : "Microsoft.KeyVault/vaults/\(collection)/read"
            return forbidden(vault, vaultName: vaultName, clientID: clientID, permission: "\(collection) get", action: action, resource: resource)
        }
        guard let limits, !limits.contains(needed) else { return nil }
        return forbidden(vault, vaultName: vaultName, clientID: clientID, permission: "secrets \(needed.rawValue)", action: needed.rbacAction, resource: resource)
    }

    private func forbidden(_ vault: Vault, vaultName: String, clientID: String, permission: String, action: String, resource: String) -> HTTPListener.Response {
        guard vault.enableRbacAuthorization else {
            return Self.keyVaultError(403, "Forbidden", "The user, group or application 'appid=\(clientID);' does not have \(permission) permission on key vault '\(vaultName);location=emulator'. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287", inner: "AccessDenied")
        }
        let issuer = "https://sts.windows.net/\(tenantID ?? "common")/"
        let scope = "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/emulator/providers/microsoft.keyvault/vaults/\(vaultName)\(resource)".lowercased()
        let message = [
            "Caller is not authorized to perform action on resource.",
            "If role assignments, deny assignments or role definitions were changed recently, please observe propagation time.",
            "Caller: appid=\(clientID);iss=\(issuer)",
            "Action: '\(action)'",
            "Resource: '\(scope)'",
            "Assignment: (not found)",
            "DenyAssignmentId: null",
            "DecisionReason: 'DeniedWithNoValidRBAC' ",
            "Vault: \(vaultName);location=emulator",
            "",
        ].joined(separator: "\r\n")
        return Self.keyVaultError(403, "Forbidden", message, inner: "ForbiddenByRbac")
    }

    /// Key Vault's page limit for lists (`maxresults` 1 to 25; 25 when unset).
    static let listPageLimit = 25

    /// One page of "Get Secrets" (see ``keyVault(_:vault:rest:baseURL:)``).
    private func listSecrets(_ vault: Vault, query: [String: String], prefix: String) -> HTTPListener.Response {
        var pageSize = Self.listPageLimit
        if let asked = query["maxresults"] {
            guard let size = Int(asked), (1...Self.listPageLimit).contains(size) else {
                return Self.keyVaultError(400, "BadParameter", "The value of maxresults is invalid: '\(asked)'. It must be an integer from 1 to \(Self.listPageLimit).")
            }
            pageSize = size
        }
        let names = vault.secrets.filter { !$0.value.isEmpty }.keys.sorted(by: SecretListToken.precedes)
        var start = names.startIndex
        if let token = query["$skiptoken"] {
            guard let next = SecretListToken.nextName(from: token) else {
                return Self.keyVaultError(400, "BadParameter", "The skip token is invalid.")
            }
            start = names.firstIndex { !SecretListToken.precedes($0, next) } ?? names.endIndex
        }
        let end = min(start + pageSize, names.endIndex)
        let items = names[start..<end].map { name in secretItem(vault.secrets[name]!.last!, id: "\(prefix)/secrets/\(name)") }
        var body: [String: Any] = ["value": items, "nextLink": NSNull()]
        if end < names.endIndex {
            let apiVersion = query["api-version"]!.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(["-", "."])) ?? ""
            var next = "\(prefix)/secrets?api-version=\(apiVersion)&$skiptoken=\(SecretListToken.make(nextName: names[end]))"
            if query["maxresults"] != nil { next += "&maxresults=\(pageSize)" }
            body["nextLink"] = next
        }
        return Self.json(200, body)
    }

    private func disabled(_ noun: String) -> HTTPListener.Response {
        Self.keyVaultError(403, "Forbidden", "Operation get is not allowed on a disabled \(noun).", inner: "\(noun.prefix(1).uppercased() + noun.dropFirst())Disabled")
    }
}

/// The `$skiptoken` of a secret list's `nextLink`, shaped as Key Vault's (base64url JSON with a `NextMarker`
/// naming the next secret): opaque to clients, checked strictly when it comes back.
enum SecretListToken {
    /// The list's order: names compared case-insensitively (Key Vault's names are), then exactly.
    static func precedes(_ first: String, _ second: String) -> Bool {
        let (a, b) = (first.uppercased(), second.uppercased())
        return a != b ? a < b : first < second
    }

    static func make(nextName: String) -> String {
        let key = "secret/\(nextName)"
        let marker = "\(padded(key.utf8.count))!\(key)!000028!9999-12-31T23:59:59.9999999Z!"
        let encodedMarker = Data(marker.utf8).base64EncodedString()
        let json = #"{"NextMarker":"2!\#(encodedMarker.utf8.count)!\#(encodedMarker)","TargetLocation":0}"#
        return State.base64URL(Data(json.utf8))
    }

    /// The name `make(nextName:)` was given, or `nil` for anything it did not make.
    static func nextName(from token: String) -> String? {
        var text = token.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while text.utf8.count % 4 != 0 { text += "=" }
        guard let json = Data(base64Encoded: text),
            let object = (try? JSONSerialization.jsonObject(with: json)) as? [String: Any], object.count == 2,
            (object["TargetLocation"] as? Int) == 0, let nextMarker = object["NextMarker"] as? String
        else { return nil }
        let parts = nextMarker.split(separator: "!", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "2", Int(parts[1]) == parts[2].utf8.count,
            let markerData = Data(base64Encoded: String(parts[2])), let marker = String(data: markerData, encoding: .utf8)
        else { return nil }
        let fields = marker.split(separator: "!", omittingEmptySubsequences: false)
        guard fields.count == 5, fields[4].isEmpty, fields[0].utf8.count == 6, Int(fields[0]) == fields[1].utf8.count,
            fields[2] == "000028", fields[3] == "9999-12-31T23:59:59.9999999Z", fields[1].hasPrefix("secret/")
        else { return nil }
        let name = String(fields[1].dropFirst("secret/".count))
        return State.isValidObjectName(name) ? name : nil
    }

    private static func padded(_ number: Int) -> String {
        let digits = String(number)
        return String(repeating: "0", count: max(0, 6 - digits.count)) + digits
    }
}
