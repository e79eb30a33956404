import SecretsStoreCore

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// One secret of a vault's list (`GET {vault}/secrets`): what a selector matches on, and the `updated` that
/// tells whether a kept answer is still current. Never a value (the list has none).
package struct ListedSecret: Sendable, Equatable {
    /// The secret's name (the last segment of its id).
    package var name: String
    /// The current version's tags (empty when none).
    package var tags: [String: String]
    /// `attributes.enabled` of the current version (`true` when the list leaves it out).
    package var enabled: Bool
    /// `attributes.updated` of the current version (Unix seconds), when the list gives it.
    package var updated: Int64?
}

/// Lists a vault's secrets through a ``KeyVaultClient``: one request per page of 25
/// (`GET {vault}/secrets?maxresults=25&api-version=7.4`), following `nextLink` only while it stays on the
/// vault's scheme, host, port and path (the token is never sent anywhere else), for at most ``maxPages`` pages.
package enum SecretListing {
    /// Secrets asked per page (Key Vault's largest page).
    package static let pageSize = 25
    /// The most pages followed: 10,000 secrets.
    package static let maxPages = 400

    /// Why a list could not be had.
    package enum Failure: Error {
        /// Key Vault refused or failed a page.
        case keyVault(KeyVaultFailure)
        /// A page is not the JSON Key Vault documents.
        case decoding(String, cause: ErrorCause? = nil)
        /// A `nextLink` points at another scheme, host, port or path than the vault's.
        case foreignNextLink
        /// The list goes on past ``maxPages`` pages.
        case tooManyPages
    }

    /// Every secret of the vault `client` reads, in the list's order.
    package static func list(_ client: KeyVaultClient) async throws(Failure) -> [ListedSecret] {
        var secrets: [ListedSecret] = []
        var next = "/secrets?maxresults=\(pageSize)&api-version=\(KeyVaultClient.apiVersion)"
        var pages = 0
        while true {
            let body: [UInt8]
            do {
                body = try await client.get(next)
            } catch {
                throw .keyVault(error)
            }
            pages += 1
            let page = try Self.page(from: body)
            secrets += page.secrets
            guard let link = page.nextLink else { return secrets }
            guard isWithinVault(link, vaultURL: client.vaultURL) else { throw .foreignNextLink }
            guard pages < maxPages else { throw .tooManyPages }
            next = link
        }
    }

    /// The secrets on one page of the list and its `nextLink` (`nil` on the last page).
    package static func page(from body: [UInt8]) throws(Failure) -> (secrets: [ListedSecret], nextLink: String?) {
        struct Page: Decodable {
            struct Item: Decodable {
                struct Attributes: Decodable {
                    var enabled: Bool?
                    var updated: Int64?
                }
                var id: String?
                var tags: [String: String]?
                var attributes: Attributes?
            }
            var value: [Item]?
            var nextLink: String?
        }
        let page: Page
        do {
            page = try JSONDecoder().decode(Page.self, from: Data(body))
        } catch {
            throw .decoding("failed to list secrets: \(error)", cause: ErrorCause(error))
        }
        var secrets: [ListedSecret] = []
        for item in page.value ?? [] {
            guard let id = item.id, let name = id.split(separator: "/").last.map(String.init) else { continue }
            secrets.append(
                ListedSecret(
                    name: name,
                    tags: item.tags ?? [:],
                    enabled: item.attributes?.enabled ?? true,
                    updated: item.attributes?.updated
                )
            )
        }
        return (secrets, page.nextLink.flatMap { $0.isEmpty ? nil : $0 })
    }

    /// Whether `link` is on the same scheme, host and port as `vaultURL` (default ports made explicit, case
    /// ignored) and names the vault's list (`{vault}/secrets`, any query). The link must start with `https://` or
    /// `http://` as written, since ``KeyVaultClient/get(_:)`` takes nothing else as absolute (it would append
    /// `HTTPS://…` to the vault URL, naming another host).
    package static func isWithinVault(_ link: String, vaultURL: String) -> Bool {
        guard link.hasPrefix("https://") || link.hasPrefix("http://") else { return false }
        guard let target = Origin(link), let vault = Origin(vaultURL) else { return false }
        return target.scheme == vault.scheme && target.host == vault.host && target.port == vault.port
            && target.path == vault.path + "/secrets"
    }

    /// The scheme, host, port and path of an absolute `http(s)` URL.
    struct Origin: Equatable {
        var scheme: String
        var host: String
        var port: Int
        var path: String

        init?(_ url: String) {
            guard let separator = url.firstRange(of: "://") else { return nil }
            scheme = url[..<separator.lowerBound].lowercased()
            guard scheme == "https" || scheme == "http" else { return nil }
            let rest = url[separator.upperBound...]
            let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? rest.endIndex
            let authority = rest[..<authorityEnd]
            guard !authority.contains("@"), !authority.isEmpty else { return nil }
            var pathAndMore = rest[authorityEnd...]
            if let end = pathAndMore.firstIndex(where: { $0 == "?" || $0 == "#" }) { pathAndMore = pathAndMore[..<end] }
            path = String(pathAndMore.hasSuffix("/") ? pathAndMore.dropLast() : pathAndMore)
            let hostEnd = authority.hasPrefix("[") ? authority.firstIndex(of: "]").map { authority.index(after: $0) } : nil
            let portSeparator = authority[(hostEnd ?? authority.startIndex)...].lastIndex(of: ":")
            if let portSeparator {
                guard let number = Int(authority[authority.index(after: portSeparator)...]) else { return nil }
                port = number
                host = authority[..<portSeparator].lowercased()
            } else {
                port = scheme == "https" ? 443 : 80
                host = authority.lowercased()
            }
        }
    }
}
