import SecretsStoreCore
import Logging
import NIOHTTP1

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A Key Vault request that failed, with Key Vault's error code and message. Never contains a token.
package struct KeyVaultFailure: Error, Equatable, CustomStringConvertible, CarriesErrorCause {
    /// What went wrong, as the provider maps it to a ``ProviderFailure``.
    package enum Kind: Sendable, Equatable {
        /// 404: the vault has no such object or version.
        case notFound
        /// 401 after the challenge retry, or 403: the identity may not read the object.
        case forbidden
        /// 429, and no retry fitted in the deadline.
        case throttled
        /// 408, 5xx or a transport failure, and no retry fitted in the deadline.
        case unavailable
        /// The answer was not what Key Vault documents (an unexpected status outside 4xx/5xx).
        case invalidResponse
        /// No token could be had for the identity, or a 401 challenge named a resource of another domain.
        case authentication
        /// The request was cancelled while waiting to retry.
        case deadline
        /// 400 or another 4xx not listed above: Key Vault refused the request itself (a malformed object
        /// name or version, an unsupported parameter).
        case rejected
    }
    /// What went wrong.
    package var kind: Kind
    /// `GET <path>: RESPONSE <status>: ERROR CODE: <code>: <message>`, or the transport or token failure.
    package var message: String
    /// Key Vault's error code (`SecretNotFound`, `Forbidden`…) when its answer carried one.
    package var code: String? = nil
    /// The transport error behind an unreachable Key Vault, Entra ID or IMDS; `nil` when an answer came.
    package var cause: ErrorCause? = nil
    /// The message.
    package var description: String { message }

    /// The codes of a 404 that means "no such object or version" (not, say, a wrong URL).
    package static let objectNotFoundCodes: Set<String> = ["SecretNotFound", "KeyNotFound", "CertificateNotFound"]
}

/// Key Vault data-plane reads (`api-version=7.4`) for one vault and one identity.
///
/// Sends the first request with a token for the cloud's Key Vault resource instead of an unauthenticated
/// probe; a 401 challenge is still honoured (its resource is checked against the vault host unless an
/// endpoint override is in use) and the request resent once with a token for the challenged resource.
/// 408, 429, 5xx and transport failures are retried as ``retryPolicy`` says: up to 3 times, waiting as
/// `retry-after-ms`, `x-ms-retry-after-ms` or `Retry-After` asks, else (2^n − 1) × 800 ms, but never past
/// `deadline` and never longer than 60 s.
///
/// Every other status fails at once: 404 as ``KeyVaultFailure/Kind/notFound``; 401 (after the challenge) and
/// 403 as ``KeyVaultFailure/Kind/forbidden``; 400 and any other 4xx as ``KeyVaultFailure/Kind/rejected``, with
/// Key Vault's error code and message; anything else as ``KeyVaultFailure/Kind/invalidResponse``. No status
/// becomes "forbidden" by default.
package struct KeyVaultClient: Sendable {
    /// The data-plane API version every request carries.
    package static let apiVersion = "7.4"
    /// Key Vault's retries: 4 attempts, (2^n − 1) × 800 ms apart unless the server suggests a wait; a wait over
    /// 60 s gives up (as the Azure SDK does).
    package static let retryPolicy = RetryPolicy(
        maxAttempts: 4,
        backoff: .powersOfTwoMinusOne(unit: .milliseconds(800)),
        maxDelay: .seconds(60)
    )

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

    /// Whether a token for this client's identity, tenant and resource is cached and fresh (no Entra ID or IMDS
    /// request before the first GET).
    var hasFreshToken: Bool {
        tokens.hasFreshToken(for: identity, tenantID: tenantID, authorityHost: authorityHost, resource: resource)
    }

    /// GETs `path` (e.g. `/secrets/name/`) and returns the JSON body, or `url` when it is absolute (`nextLink`).
    package func get(_ pathOrURL: String) async throws(KeyVaultFailure) -> [UInt8] {
        var url = pathOrURL.hasPrefix("https://") || pathOrURL.hasPrefix("http://") ? pathOrURL : vaultURL + pathOrURL
        if !url.contains("api-version=") { url += (url.contains("?") ? "&" : "?") + "api-version=\(Self.apiVersion)" }
        var resource = self.resource
        var challenged = false
        var retries = 0
        while true {
            let token: String
            do {
                token = try await tokens.token(for: identity, tenantID: tenantID, authorityHost: authorityHost, resource: resource)
            } catch {
                throw KeyVaultFailure(kind: error.kind == .refused ? .authentication : .unavailable, message: error.message, cause: error.cause)
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
                retries += 1
                try await waitToRetry(afterAttempt: retries, suggestedDelay: nil, reason: "GET \(url): \(error)", kind: .unavailable, cause: ErrorCause(error))
                continue
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
                retries += 1
                try await waitToRetry(
                    afterAttempt: retries,
                    suggestedDelay: Self.suggestedDelay(response.headers),
                    reason: Self.describe(response, url: url),
                    kind: response.status == 429 ? .throttled : .unavailable
                )
                continue
            case 404:
                throw KeyVaultFailure(kind: .notFound, message: Self.describe(response, url: url), code: Self.errorCode(response))
            case 401, 403:
                throw KeyVaultFailure(kind: .forbidden, message: Self.describe(response, url: url))
            case 400..<500:
                throw KeyVaultFailure(kind: .rejected, message: Self.describe(response, url: url))
            default:
                throw KeyVaultFailure(kind: .invalidResponse, message: Self.describe(response, url: url))
            }
        }
    }

    private func remaining() -> Duration? {
        deadline.map { $0 - .now }
    }

    /// The wait Key Vault asks for: `retry-after-ms`, then `x-ms-retry-after-ms` (milliseconds), then
    /// `Retry-After` (whole seconds); `nil` when none is set or parses.
    static func suggestedDelay(_ headers: HTTPHeaders) -> Duration? {
        for name in ["retry-after-ms", "x-ms-retry-after-ms"] {
            if let text = headers.first(name: name), let millis = Int64(text) { return .milliseconds(millis) }
        }
        if let text = headers.first(name: "Retry-After"), let seconds = Int64(text.trimmingWhitespace()) {
            return .seconds(seconds)
        }
        return nil
    }

    /// Sleeps before retry number `attempt`, or fails with `kind` (throttled for 429, unavailable for 408/5xx
    /// and transport failures) when no retry is left, the wait would outlast the request, or Key Vault asked
    /// for more than 60 s. Cancellation while waiting fails as ``KeyVaultFailure/Kind/deadline``. The failure
    /// carries `cause`, the transport error of the last attempt (`nil` when Key Vault answered).
    private func waitToRetry(
        afterAttempt attempt: Int,
        suggestedDelay: Duration?,
        reason: String,
        kind: KeyVaultFailure.Kind,
        cause: ErrorCause? = nil
    ) async throws(KeyVaultFailure) {
        let delay: Duration
        switch Self.retryPolicy.decision(afterAttempt: attempt, suggestedDelay: suggestedDelay, remaining: remaining()) {
        case .retry(let after):
            delay = after
        case .giveUp(.attemptsExhausted):
            throw KeyVaultFailure(kind: kind, message: reason, cause: cause)
        case .giveUp(.wouldPassDeadline(let delay)):
            throw KeyVaultFailure(kind: kind, message: "\(reason); retrying after \(delay) would pass the request deadline", cause: cause)
        case .giveUp(.delayTooLong(let delay)):
            throw KeyVaultFailure(kind: kind, message: "\(reason); Key Vault asked to wait \(delay)", cause: cause)
        }
        logger.debug("retrying key vault request", metadata: ["retry.delay": "\(delay)"])
        do {
            try await Task.sleep(for: delay)
        } catch {
            throw KeyVaultFailure(kind: .deadline, message: "\(reason); cancelled while waiting to retry", cause: cause)
        }
    }

    /// The resource a 401 challenge names (`resource=` or `scope=`), checked against the vault host.
    private func challengeResource(_ headers: HTTPHeaders, url: String) throws(KeyVaultFailure) -> String? {
        guard let header = headers.first(name: "WWW-Authenticate") else { return nil }
        var parameters: [String: String] = [:]
        for part in header.dropFirst(header.hasPrefix("Bearer") ? 6 : 0).split(separator: ",") {
            let pair = part.split(separator: "=", maxSplits: 1).map { String($0).trimmingWhitespace() }
            if pair.count == 2 { parameters[pair[0].lowercased()] = pair[1].trimming(["\""]) }
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

    /// The `error.code` of a Key Vault error body, if it is one.
    static func errorCode(_ response: AzureHTTPResponse) -> String? {
        struct Body: Decodable {
            struct Detail: Decodable { var code: String? }
            var error: Detail?
        }
        return (try? JSONDecoder().decode(Body.self, from: Data(response.body)))?.error?.code
    }

    /// `GET <path>: RESPONSE <status>: ERROR CODE: <code>: <message>` from a Key Vault error body (`<path>`
    /// without the query; `-` and `no error body` when the body is not Key Vault's error JSON).
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
