import SecretsStoreCore
import Logging
import NIOHTTP1

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A Key Vault request that failed, with Key Vault's error code and message. Never contains a token.
package struct KeyVaultFailure: Error, Equatable, CustomStringConvertible {
    package enum Kind: Sendable, Equatable {
        case notFound, forbidden, throttled, unavailable, invalidResponse, authentication, deadline
    }
    package var kind: Kind
    package var message: String
    package var description: String { message }
}

/// Key Vault data-plane reads (`api-version=7.4`) for one vault and one identity.
///
/// Sends the first request with a token for the cloud's Key Vault resource instead of an unauthenticated
/// probe; a 401 challenge is still honoured (its resource is checked against the vault host unless an
/// endpoint override is in use) and the request resent once with a token for the challenged resource.
/// 408, 429 and 5xx are retried up to 3 times, waiting as `Retry-After` (or `retry-after-ms`) asks, else
/// (2^n − 1) × 800 ms, but never past `deadline`.
package struct KeyVaultClient: Sendable {
    package static let apiVersion = "7.4"

    let http: AzureHTTP
    let tokens: TokenProvider
    let identity: AzureIdentity
    let tenantID: String
    let authorityHost: String
    /// Base URL without a trailing slash.
    let vaultURL: String
    let resource: String
    let verifyChallengeResource: Bool
    let deadline: ContinuousClock.Instant?
    let logger: Logger
    let onResponse: @Sendable (Int) -> Void

    /// GETs `path` (e.g. `/secrets/name/`) and returns the JSON body, or `url` when it is absolute (`nextLink`).
    package func get(_ pathOrURL: String) async throws(KeyVaultFailure) -> [UInt8] {
        var url = pathOrURL.hasPrefix("https://") || pathOrURL.hasPrefix("http://") ? pathOrURL : vaultURL + pathOrURL
        if !url.contains("api-version=") { url += (url.contains("?") ? "&" : "?") + "api-version=\(Self.apiVersion)" }
        var resource = self.resource
        var challenged = false
        var attempt = 0
        while true {
            let token: String
            do {
                token = try await tokens.token(for: identity, tenantID: tenantID, authorityHost: authorityHost, resource: resource)
            } catch {
                throw KeyVaultFailure(kind: error.kind == .refused ? .authentication : .unavailable, message: error.message)
            }
            let response: AzureHTTPResponse
            do {
                response = try await http.send(
                    .GET,
                    url,
                    headers: [("Accept", "application/json"), ("Authorization", "Bearer \(token)")],
                    timeout: remaining() ?? .seconds(60)
                )
            } catch {
                if let delay = retryDelay(attempt: attempt, headers: nil) {
                    attempt += 1
                    try await wait(delay, reason: "GET \(url): \(error)", kind: .unavailable)
                    continue
                }
                throw KeyVaultFailure(kind: .unavailable, message: "GET \(url): \(error)")
            }
            onResponse(response.status)
            logger.debug("key vault request", metadata: ["http.url": "\(url)", "http.status": "\(response.status)"])
            switch response.status {
            case 200..<300:
                return response.body
            case 401 where !challenged:
                challenged = true
                tokens.forget(identity, tenantID: tenantID, authorityHost: authorityHost, resource: resource)
                resource = try challengeResource(response.headers, url: url) ?? resource
                continue
            case 408, 429, 500...599:
                if let delay = retryDelay(attempt: attempt, headers: response.headers) {
                    attempt += 1
                    try await wait(
                        delay,
                        reason: Self.describe(response, url: url),
                        kind: response.status == 429 ? .throttled : .unavailable
                    )
                    continue
                }
                throw KeyVaultFailure(kind: response.status == 429 ? .throttled : .unavailable, message: Self.describe(response, url: url))
            case 404:
                throw KeyVaultFailure(kind: .notFound, message: Self.describe(response, url: url))
            default:
                throw KeyVaultFailure(kind: .forbidden, message: Self.describe(response, url: url))
            }
        }
    }

    private func remaining() -> Duration? {
        deadline.map { $0 - .now }
    }

    /// The delay before retry `attempt + 1`, or `nil` when no retry is left.
    private func retryDelay(attempt: Int, headers: HTTPHeaders?) -> Duration? {
        guard attempt < 3 else { return nil }
        if let headers {
            for name in ["retry-after-ms", "x-ms-retry-after-ms"] {
                if let text = headers.first(name: name), let millis = Int64(text) { return .milliseconds(millis) }
            }
            if let text = headers.first(name: "Retry-After"), let seconds = Int64(text.trimmingWhitespace()) {
                return .seconds(seconds)
            }
        }
        return .milliseconds(((1 << (attempt + 1)) - 1) * 800)
    }

    /// Sleeps before a retry, or fails with `kind` (throttled for 429, unavailable for 408/5xx) when the wait
    /// would outlast the request.
    private func wait(_ delay: Duration, reason: String, kind: KeyVaultFailure.Kind) async throws(KeyVaultFailure) {
        if let remaining = remaining(), delay >= remaining {
            throw KeyVaultFailure(
                kind: kind,
                message: "\(reason); retrying after \(delay) would pass the request deadline"
            )
        }
        if delay > .seconds(60) {
            throw KeyVaultFailure(kind: kind, message: "\(reason); Key Vault asked to wait \(delay)")
        }
        logger.debug("retrying key vault request", metadata: ["retry.delay": "\(delay)"])
        do {
            try await Task.sleep(for: delay)
        } catch {
            throw KeyVaultFailure(kind: .deadline, message: "\(reason); cancelled while waiting to retry")
        }
    }

    /// The resource a 401 challenge names (`resource=` or `scope=`), checked against the vault host.
    private func challengeResource(_ headers: HTTPHeaders, url: String) throws(KeyVaultFailure) -> String? {
        guard let header = headers.first(name: "WWW-Authenticate") else { return nil }
        var parameters: [String: String] = [:]
        for part in header.dropFirst(header.hasPrefix("Bearer") ? 6 : 0).split(separator: ",") {
            let pair = part.split(separator: "=", maxSplits: 1).map { String($0).trimmingWhitespace() }
            if pair.count == 2 { parameters[pair[0].lowercased()] = pair[1].trimmingCharacters(quotes: true) }
        }
        guard var resource = parameters["resource"] ?? parameters["scope"] else { return nil }
        if resource.hasSuffix("/.default") { resource.removeLast("/.default".count) }
        if resource.hasSuffix("/") { resource.removeLast() }
        if verifyChallengeResource {
            let resourceHost = resource.split(separator: "/").dropFirst().first.map(String.init) ?? resource
            let vaultHost = vaultURL.split(separator: "/").dropFirst().first.map(String.init) ?? vaultURL
            guard vaultHost.lowercased().hasSuffix("." + resourceHost.lowercased()) else {
                throw KeyVaultFailure(
                    kind: .authentication,
                    message: "challenge resource \"\(resource)\" doesn't match the requested domain"
                )
            }
        }
        return resource
    }

    /// `GET <url>: <status> <code>: <message>` from a Key Vault error body.
    static func describe(_ response: AzureHTTPResponse, url: String) -> String {
        struct Body: Decodable {
            struct Detail: Decodable {
                var code: String?
                var message: String?
            }
            var error: Detail?
        }
        let detail = (try? JSONDecoder().decode(Body.self, from: Data(response.body)))?.error
        let path = url.split(separator: "?").first.map(String.init) ?? url
        return "GET \(path): RESPONSE \(response.status): ERROR CODE: \(detail?.code ?? "-"): \(detail?.message ?? "no error body")"
    }
}

extension String {
    fileprivate func trimmingCharacters(quotes: Bool) -> String {
        var text = self
        if text.hasPrefix("\"") { text.removeFirst() }
        if text.hasSuffix("\"") { text.removeLast() }
        return text
    }
}
