import SecretsStoreCore

/// The provider's side of selectors (`objectNameRegex`, `objectTags`): the entries of a request become what
/// is fetched — each entry naming one object as it is, each selector as the secrets its vault's list matches.
extension AzureKeyVaultProvider {
    /// One thing to fetch: an entry naming one object, or one secret a selector matched.
    struct FetchUnit {
        /// The entry, or for a match the selector's entry naming the matched secret (its `filePermission`,
        /// `objectFormat`, `objectEncoding`, vault and tenant).
        var object: KeyVaultObject
        /// The client of the object's vault and tenant.
        var client: KeyVaultClient
        /// For a match: what the list said of it, and the cache scope of the client's vault and identity.
        var match: Match?
    }

    /// A secret a selector matched.
    struct Match {
        /// The entry index of the selector.
        var entry: Int
        /// The list's `attributes.updated` of its current version.
        var updated: Int64?
        /// The ``SelectedSecretCache`` scope: vault URL, tenant and identity.
        var scope: String
    }

    /// The units of `parameters.objects` (with `clients[i]` the client of entry `i`), in the entries' order: a
    /// selector's matches in its vault's list order. Each vault a selector reads is listed once (selectors of
    /// one vault and tenant share the list), before anything is fetched.
    ///
    /// Throws when a list fails (a 403: the identity needs the list permission on secrets), when the selectors
    /// match more than `maxSelectedObjects` secrets in all, or when a matched secret's file is also another
    /// entry's file (or another selector's match).
    func fetchUnits(_ parameters: AzureMountParameters, clients: [KeyVaultClient]) async throws(ProviderFailure) -> [FetchUnit] {
        let selectorEntries = parameters.objects.indices.filter { parameters.objects[$0].selector != nil }
        guard !selectorEntries.isEmpty else {
            return zip(parameters.objects, clients).map { FetchUnit(object: $0, client: $1, match: nil) }
        }
        // One list per vault and tenant.
        var lists: [String: [ListedSecret]] = [:]
        for entry in selectorEntries {
            let client = clients[entry]
            let key = Self.listKey(client)
            guard lists[key] == nil else { continue }
            do {
                lists[key] = try await SecretListing.list(client)
            } catch {
                throw Self.listingFailure(error, entry: entry, vault: parameters.vaultName(of: parameters.objects[entry]))
            }
        }
        // Matches, counted before any GET.
        var matches: [Int: [ListedSecret]] = [:]
        for entry in selectorEntries {
            let selector = parameters.objects[entry].selector!
            guard let matcher = selector.matcher() else { continue }
            matches[entry] = (lists[Self.listKey(clients[entry])] ?? []).filter {
                $0.enabled && matcher.matches(name: $0.name, tags: $0.tags)
            }
        }
        let total = matches.values.reduce(0) { $0 + $1.count }
        if total > parameters.maxSelectedObjects {
            let entries = selectorEntries.map { "objects[\($0)]" }.joined(separator: ", ")
            throw .misconfigured(
                "failed to mount objects, error: the selectors (\(entries)) match \(total) secrets, more than maxSelectedObjects (\(parameters.maxSelectedObjects)): narrow objectNameRegex or objectTags, or raise maxSelectedObjects (at most \(AzureMountParameters.maxSelectedObjectsRange.upperBound))"
            )
        }
        // Every file name once: a match may not be another entry's file or another selector's match.
        var writers: [String: Int] = [:]
        for (index, object) in parameters.objects.enumerated() where object.selector == nil {
            for name in AzureMountParameters.fixedFileNames(of: object) where writers[name] == nil { writers[name] = index }
        }
        for entry in selectorEntries {
            for secret in matches[entry] ?? [] {
                if let other = writers[secret.name] {
                    throw .misconfigured(
                        "failed to mount objects, error: objects[\(entry)] (a selector) matches secret \(secret.name), whose file objects[\(other)] also writes: narrow objectNameRegex or objectTags"
                    )
                }
                writers[secret.name] = entry
            }
        }
        // The units, and the cache told what each selector matches now.
        var units: [FetchUnit] = []
        for (index, object) in parameters.objects.enumerated() {
            guard let selector = object.selector else {
                units.append(FetchUnit(object: object, client: clients[index], match: nil))
                continue
            }
            let scope = Self.cacheScope(clients[index], identity: parameters.identity)
            let selected = matches[index] ?? []
            selectedSecrets.recordMatches(selector: selector.identity, scope: scope, names: Set(selected.map(\.name)))
            for secret in selected {
                var matched = object
                matched.selector = nil
                matched.name = secret.name
                matched.optional = false
                units.append(FetchUnit(object: matched, client: clients[index], match: Match(entry: index, updated: secret.updated, scope: scope)))
            }
        }
        return units
    }

    /// The current version of a matched secret: the kept answer when the list shows the `updated` it was
    /// fetched at, else a GET (kept for the next refresh).
    func matchedSecretBody(_ object: KeyVaultObject, match: Match, client: KeyVaultClient) async throws(FetchError) -> [UInt8] {
        if let updated = match.updated, let kept = selectedSecrets.body(scope: match.scope, name: object.name, updated: updated) {
            return kept
        }
        do {
            let body = try await client.get("/secrets/\(PercentEncoding.escape(object.name))/")
            if let updated = match.updated { selectedSecrets.store(scope: match.scope, name: object.name, updated: updated, body: body) }
            return body
        } catch {
            if error.kind == .notFound { selectedSecrets.forget(scope: match.scope, name: object.name) }
            throw .keyVault(error)
        }
    }

    /// Selectors of one vault and tenant share a list.
    private static func listKey(_ client: KeyVaultClient) -> String {
        "\(client.vaultURL.lowercased())|\(client.tenantID)"
    }

    /// The cache scope of a client: its vault URL, tenant, authority and identity (never a credential).
    private static func cacheScope(_ client: KeyVaultClient, identity: AzureIdentity) -> String {
        let who: String
        switch identity {
        case .workloadIdentity(let clientID, _): who = "workload:\(clientID)"
        case .servicePrincipal(let clientID, _): who = "principal:\(clientID)"
        case .managedIdentity(let clientID): who = "managed:\(clientID ?? "")"
        }
        return [client.vaultURL.lowercased(), client.tenantID, client.authorityHost, who].map { "\($0.utf8.count):\($0)" }.joined()
    }

    /// The failure of the list a selector needs, naming the selector's entry and vault.
    static func listingFailure(_ error: SecretListing.Failure, entry: Int, vault: String) -> ProviderFailure {
        let prefix = "failed to mount objects, error: objects[\(entry)] (a selector): listing the secrets of vault \(vault) failed: "
        switch error {
        case .keyVault(let failure):
            let message = prefix + failure.message
            switch failure.kind {
            case .forbidden:
                return .permissionDenied(
                    prefix + "the identity needs the list permission on secrets (an access policy's secret permission List, or an Azure RBAC role with Microsoft.KeyVault/vaults/secrets/readMetadata/action such as Key Vault Secrets User): "
                        + failure.message
                )
            case .notFound: return .objectNotFound(message)
            case .authentication: return .permissionDenied(message)
            case .throttled: return .throttled(message)
            case .unavailable: return .unavailable(message, cause: failure.cause)
            case .deadline: return .deadlineExceeded(message)
            case .invalidResponse: return .invalidResponse(message, cause: failure.cause)
            case .rejected: return .rejected(message)
            }
        case .decoding(let detail, let cause):
            return .invalidResponse(prefix + detail, cause: cause)
        case .foreignNextLink:
            return .invalidResponse(prefix + "Key Vault's nextLink points away from the vault's list (another scheme, host, port or path); it was not followed")
        case .tooManyPages:
            return .misconfigured(
                prefix + "the list goes on past \(SecretListing.maxPages) pages (\(SecretListing.maxPages * SecretListing.pageSize) secrets); list the objects by name, or keep the selected secrets in a smaller vault"
            )
        }
    }
}
