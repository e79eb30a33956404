import SecretsStoreAzure

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension FuzzTarget {
    /// A page of Key Vault's secret list (`GET {vault}/secrets`) through ``SecretListing/page(from:)``, and its
    /// `nextLink` through ``SecretListing/isWithinVault(_:vaultURL:)`` for several vault URLs.
    ///
    /// Properties: a page never yields more secrets than it lists; the secrets are exactly the listed items whose
    /// id has a non-empty last element, in order, each named by that element (never empty, never with a `/`),
    /// with the item's tags, `enabled` (`true` when absent) and `updated`; the next link is the page's, never
    /// empty. A next link accepted for a vault is, once made into the URL ``KeyVaultClient/get(_:)`` requests,
    /// on the vault's scheme, host and port and names its list path, as Foundation's `URL` parses it (or `URL`
    /// refuses it, so no request goes out); a link that is the vault's list URL with any query is accepted.
    package static let secretList = FuzzTarget(
        name: "secret-list",
        summary: "Key Vault secret-list pages through SecretListing.page and the nextLink check isWithinVault",
        seeds: SecretListSeeds.pages.map { Array($0.utf8) },
        regressions: SecretListSeeds.regressions.map { Array($0.utf8) },
        dictionary: SecretListSeeds.tokens.map { Array($0.utf8) },
        maxInputLength: 32 * 1024,
        check: checkSecretListPage
    )

    private static func checkSecretListPage(_ bytes: [UInt8]) -> FuzzOutcome {
        let name = "secret-list"
        let page: (secrets: [ListedSecret], nextLink: String?)
        do {
            page = try SecretListing.page(from: bytes)
        } catch {
            let message = SecretListSeeds.describe(error)
            require(!message.isEmpty, "a page was refused with an empty message", target: name, input: bytes)
            return .rejected(message)
        }
        guard let oracle = try? JSONDecoder().decode(SecretListSeeds.PageOracle.self, from: Data(bytes)) else {
            require(false, "a page was accepted that the oracle cannot decode", target: name, input: bytes)
            return .accepted
        }
        let items = oracle.value ?? []
        require(page.secrets.count <= items.count, "a page yielded \(page.secrets.count) of \(items.count) items", target: name, input: bytes)

        let expected = items.compactMap { item -> SecretListSeeds.Listed? in
            guard let id = item.id, let secretName = SecretListSeeds.lastElement(of: id) else { return nil }
            return SecretListSeeds.Listed(
                name: secretName,
                tags: item.tags ?? [:],
                enabled: item.attributes?.enabled ?? true,
                updated: item.attributes?.updated
            )
        }
        let yielded = page.secrets.map { SecretListSeeds.Listed(name: $0.name, tags: $0.tags, enabled: $0.enabled, updated: $0.updated) }
        for secret in page.secrets {
            require(!secret.name.isEmpty, "a secret with an empty name", target: name, input: bytes)
            require(!secret.name.contains("/"), "the name \(secret.name.debugDescription) has a '/'", target: name, input: bytes)
        }
        require(
            yielded == expected,
            "the page yielded \(page.secrets.map(\.name)) where the ids' last elements are \(expected.map(\.name))",
            target: name,
            input: bytes
        )

        let link = oracle.nextLink.flatMap { $0.isEmpty ? nil : $0 }
        require(page.nextLink == link, "the next link \(page.nextLink.debugDescription) is not the page's \(link.debugDescription)", target: name, input: bytes)
        if let link {
            for vault in SecretListSeeds.vaults {
                checkNextLink(link, vault: vault, input: bytes)
            }
        }
        return .accepted
    }

    /// The next-link properties for one vault URL; `vault` is an origin with an optional path, no trailing `/`.
    private static func checkNextLink(_ link: String, vault: String, input bytes: [UInt8]) {
        let name = "secret-list"
        let accepted = SecretListing.isWithinVault(link, vaultURL: vault)
        let listURL = vault + "/secrets"
        if link.hasPrefix(listURL) {
            let rest = link.dropFirst(listURL.count)
            if rest.isEmpty || rest.first == "?" || rest.first == "#" || rest == "/" {
                require(accepted, "the vault's own list link \(link.debugDescription) was refused for \(vault)", target: name, input: bytes)
            }
        }
        guard accepted else { return }
        // What KeyVaultClient.get requests: the link as is when it starts with `https://` or `http://`, else
        // appended to the vault URL.
        let requested = link.hasPrefix("https://") || link.hasPrefix("http://") ? link : vault + link
        guard let url = URL(string: requested) else { return }  // no request goes out
        guard let expected = URL(string: vault), let expectedScheme = expected.scheme?.lowercased(), let expectedHost = expected.host?.lowercased()
        else {
            preconditionFailure("the fuzz target's vault URL \(vault) must parse")
        }
        func defaultPort(_ scheme: String) -> Int { scheme == "https" ? 443 : 80 }
        let scheme = url.scheme?.lowercased() ?? ""
        var path = url.path(percentEncoded: true)
        if path.hasSuffix("/") { path.removeLast() }
        require(
            scheme == expectedScheme && url.host(percentEncoded: true)?.lowercased() == expectedHost
                && (url.port ?? defaultPort(scheme)) == (expected.port ?? defaultPort(expectedScheme))
                && url.user == nil && url.password == nil
                && path == expected.path(percentEncoded: true) + "/secrets",
            "the next link \(link.debugDescription) was accepted for \(vault), but the request would go to "
                + "\(scheme)://\(url.host(percentEncoded: true) ?? "?"):\(url.port.map(String.init) ?? "-")\(path)",
            target: name,
            input: bytes
        )
    }
}

/// Realistic pages of a vault's secret list (api-version 7.4) and the vault URLs their links are checked against.
enum SecretListSeeds {
    /// The page as the properties read it, decoded independently of ``SecretListing``.
    struct PageOracle: Decodable {
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

    /// A listed secret as the properties expect it.
    struct Listed: Equatable {
        var name: String
        var tags: [String: String]
        var enabled: Bool
        var updated: Int64?
    }

    /// A cloud vault, an emulator on a port, and a vault behind a path.
    static let vaults = ["https://kv-fuzz-01.vault.azure.net", "http://127.0.0.1:8443", "https://localhost:9443/kv"]

    /// The id's last non-empty `/`-separated element, or `nil` when it has none.
    static func lastElement(of id: String) -> String? {
        var trimmed = Substring(id)
        while trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        let element = trimmed.lastIndex(of: "/").map { trimmed[trimmed.index(after: $0)...] } ?? trimmed
        return element.isEmpty ? nil : String(element)
    }

    static func describe(_ error: SecretListing.Failure) -> String {
        switch error {
        case .keyVault(let failure): failure.message
        case .decoding(let message, _): message
        case .foreignNextLink: "foreign next link"
        case .tooManyPages: "too many pages"
        }
    }

    static let skipToken =
        "eyJOZXh0TWFya2VyIjoiMiExMDQhTURBd01ESTRJWE5sWTNKbGRDOUJVRWt0UzBWWkx6SWhNREF3TURJNElUazVPVGt0TVRJdE16RlVNak02TlRrNk5Ua3VPVGs1T1RrNU9Wb2gifQ"

    static func item(_ vault: String, _ secret: String, enabled: Bool = true, updated: Int = 1_700_000_001, tags: String? = nil) -> String {
        let tagText = tags.map { #","tags":\#($0)"# } ?? ""
        return #"{"id":"\#(vault)/secrets/\#(secret)","attributes":{"enabled":\#(enabled),"created":1700000000,"updated":\#(updated),"recoveryLevel":"Recoverable+Purgeable","recoverableDays":90}\#(tagText)}"#
    }

    static let pages: [String] = [
        // A first page of a cloud vault, with a next page.
        #"{"value":[\#(item(vaults[0], "db-pass", tags: #"{"app":"web","env":"prod"}"#)),\#(item(vaults[0], "api-key", enabled: false)),\#(item(vaults[0], "web", tags: #"{"file-encoding":"utf-8"}"#).dropLast()),"contentType":"application/x-pkcs12","managed":true}],"nextLink":"\#(vaults[0])/secrets?api-version=7.4&$skiptoken=\#(skipToken)&maxresults=25"}"#,
        // The last page of an emulator's list.
        #"{"value":[\#(item(vaults[1], "one")),\#(item(vaults[1], "two", updated: 1_700_000_500, tags: "{}"))],"nextLink":null}"#,
        // A vault behind a path; its next link with the port explicit and an upper-case host.
        #"{"value":[\#(item(vaults[2], "team-a-db", tags: #"{"team":"a"}"#))],"nextLink":"https://LOCALHOST:9443/kv/secrets?$skiptoken=\#(skipToken)&maxresults=25"}"#,
        // An empty page that still has a next one, and an item without an id.
        #"{"value":[],"nextLink":"\#(vaults[1])/secrets?api-version=7.4&$skiptoken=abc"}"#,
        #"{"value":[{"attributes":{"enabled":true}},\#(item(vaults[0], "kept"))]}"#,
    ]

    /// Inputs that once broke a property.
    static let regressions: [String] = [
        // An upper-case scheme was accepted, and KeyVaultClient.get appended it to the vault URL (another host).
        #"{"value":[],"nextLink":"HTTPS://kv-fuzz-01.vault.azure.net/secrets?api-version=7.4&$skiptoken=abc"}"#,
        #"{"value":[],"nextLink":"Http://127.0.0.1:8443/secrets"}"#,
    ]

    static let tokens: [String] = [
        "\"value\"", "\"id\"", "\"tags\"", "\"attributes\"", "\"enabled\"", "\"updated\"", "\"nextLink\"", "null", "true",
        "false", "\"\"", "{}", "[]", "https://", "http://", "HTTPS://", "Http://", "kv-fuzz-01.vault.azure.net",
        "127.0.0.1", "localhost", ":443", ":80", ":8443", ":9443", ":", "/secrets", "/secrets/", "/kv", "?", "#", "@",
        "%2F", "%73", "\\", "/", "//", "..", "[::1]", "evil.example",
    ]
}
