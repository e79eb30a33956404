import SecretsStoreCore
import Crypto
import NIOHTTP1
import Synchronization

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// An access token and when it stops being usable.
package struct AccessToken: Sendable {
    /// The bearer token; never logged or put in an error.
    package var token: String
    /// When it expires, on the monotonic clock.
    package var expiresAt: ContinuousClock.Instant
}

/// Why a token could not be had: Entra's `AADSTS…` description, or IMDS's answer. Never contains a secret.
package struct TokenFailure: Error, Equatable, CustomStringConvertible, CarriesErrorCause {
    /// Whether the identity was refused or the endpoint failed.
    package enum Kind: Sendable, Equatable {
        /// Entra or IMDS refused the identity (400/401/403 with an error body).
        case refused
        /// The endpoint could not be reached or failed (5xx, transport).
        case unavailable
    }
    /// Whether the identity was refused or the endpoint failed.
    package var kind: Kind
    /// The endpoint's error description (first line) or the transport error; never a credential.
    package var message: String
    /// The transport error (``AzureHTTP/send(_:_:headers:body:timeout:bypassProxy:)``'s) when the endpoint could
    /// not be reached; `nil` when it answered.
    package var cause: ErrorCause? = nil
    /// The message.
    package var description: String { message }
}

/// Gets access tokens for an ``AzureIdentity`` and keeps them until shortly before they expire.
///
/// The cache key includes a SHA-256 of the credential material (client secret or service account token), so a
/// pod that names another workload's client ID without its secret or token never receives that workload's
/// cached token.
package final class TokenProvider: Sendable {
    private static let refreshMargin: Duration = .seconds(300)
    /// IMDS retries (404, 410, 429, 5xx): 4 attempts, 400 ms, 800 ms and 1.6 s apart.
    package static let imdsRetryPolicy = RetryPolicy(maxAttempts: 4, backoff: .doubling(first: .milliseconds(400)))
    private let http: AzureHTTP
    private let imdsEndpoint: String
    private let cache = Mutex<[String: AccessToken]>([:])

    /// A provider sending through `http`; `imdsEndpoint` replaces `http://169.254.169.254` (emulators).
    package init(http: AzureHTTP, imdsEndpoint: String = "http://169.254.169.254") {
        self.http = http
        self.imdsEndpoint = imdsEndpoint.hasSuffix("/") ? String(imdsEndpoint.dropLast()) : imdsEndpoint
    }

    /// A token for `resource` (e.g. `https://vault.azure.net`), from the cache while it is fresh.
    package func token(
        for identity: AzureIdentity,
        tenantID: String,
        authorityHost: String,
        resource: String
    ) async throws(TokenFailure) -> String {
        let key = Self.cacheKey(identity, tenantID: tenantID, authorityHost: authorityHost, resource: resource)
        let now = ContinuousClock.now
        if let cached = cache.withLock({ $0[key] }), cached.expiresAt - Self.refreshMargin > now {
            return cached.token
        }
        let fresh: AccessToken
        switch identity {
        case .managedIdentity(let clientID):
            fresh = try await managedIdentityToken(clientID: clientID, resource: resource)
        case .servicePrincipal(let clientID, let secret):
            fresh = try await entraToken(
                authorityHost: authorityHost,
                tenantID: tenantID,
                fields: [("client_id", clientID), ("client_secret", secret)],
                scope: resource + "/.default"
            )
        case .workloadIdentity(let clientID, let assertion):
            fresh = try await entraToken(
                authorityHost: authorityHost,
                tenantID: tenantID,
                fields: [
                    ("client_id", clientID),
                    ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                    ("client_assertion", assertion),
                ],
                scope: resource + "/.default"
            )
        }
        cache.withLock { $0[key] = fresh }
        return fresh.token
    }

    /// Whether ``token(for:tenantID:authorityHost:resource:)`` would answer from the cache now, without a request.
    package func hasFreshToken(for identity: AzureIdentity, tenantID: String, authorityHost: String, resource: String) -> Bool {
        let key = Self.cacheKey(identity, tenantID: tenantID, authorityHost: authorityHost, resource: resource)
        guard let cached = cache.withLock({ $0[key] }) else { return false }
        return cached.expiresAt - Self.refreshMargin > ContinuousClock.now
    }

    /// Drops a cached token (after Key Vault rejected it).
    package func forget(_ identity: AzureIdentity, tenantID: String, authorityHost: String, resource: String) {
        _ = cache.withLock { $0.removeValue(forKey: Self.cacheKey(identity, tenantID: tenantID, authorityHost: authorityHost, resource: resource)) }
    }

    private static func cacheKey(_ identity: AzureIdentity, tenantID: String, authorityHost: String, resource: String) -> String {
        let who: String
        switch identity {
        case .managedIdentity(let clientID): who = "mi|\(clientID ?? "system")"
        case .servicePrincipal(let clientID, let secret): who = "sp|\(clientID)|\(digest(secret))"
        case .workloadIdentity(let clientID, let token): who = "wi|\(clientID)|\(digest(token))"
        }
        return "\(authorityHost)|\(tenantID)|\(who)|\(resource)"
    }

    /// The SHA-256 of `text` in lowercase hex, two digits a byte (an unpadded digit per byte, as before, could
    /// give two different digests the same text), built in one buffer: this runs on every publish.
    package static func digest(_ text: String) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var hex: [UInt8] = []
        hex.reserveCapacity(2 * SHA256.byteCount)
        for byte in SHA256.hash(data: Array(text.utf8)) {
            hex.append(digits[Int(byte >> 4)])
            hex.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: hex, as: UTF8.self)
    }

    private struct TokenBody: Decodable {
        var accessToken: String?
        var expiresIn: FlexibleInt?
        var error: String?
        var errorDescription: String?
        enum CodingKeys: String, CodingKey {
            case accessToken = "access_token"
            case expiresIn = "expires_in"
            case error
            case errorDescription = "error_description"
        }
    }

    private func entraToken(
        authorityHost: String,
        tenantID: String,
        fields: [(String, String)],
        scope: String
    ) async throws(TokenFailure) -> AccessToken {
        let url = "\(authorityHost)\(tenantID)/oauth2/v2.0/token"
        let form = FormEncoding.encode([("grant_type", "client_credentials")] + fields + [("scope", scope)])
        let response: AzureHTTPResponse
        do {
            response = try await http.send(
                .POST,
                url,
                headers: [("Content-Type", "application/x-www-form-urlencoded"), ("Accept", "application/json")],
                body: form
            )
        } catch {
            throw TokenFailure(kind: .unavailable, message: "POST \(url): \(error)", cause: ErrorCause(error))
        }
        return try Self.accessToken(from: response, url: url)
    }

    private func managedIdentityToken(clientID: String?, resource: String) async throws(TokenFailure) -> AccessToken {
        var url = "\(imdsEndpoint)/metadata/identity/oauth2/token?api-version=2018-02-01&resource=\(PercentEncoding.escape(resource))"
        if let clientID { url += "&client_id=\(PercentEncoding.escape(clientID))" }
        var attempt = 0
        while true {
            attempt += 1
            let response: AzureHTTPResponse
            do {
                // IMDS is link-local and must never be proxied (Azure's IMDS documentation; the Azure SDKs
                // bypass proxies for it), whatever HTTPS_PROXY/HTTP_PROXY/NO_PROXY say.
                response = try await http.send(.GET, url, headers: [("Metadata", "true")], timeout: .seconds(60), bypassProxy: true)
            } catch {
                throw TokenFailure(
                    kind: .unavailable,
                    message: "managed identity endpoint unreachable (GET \(url)): \(error)",
                    cause: ErrorCause(error)
                )
            }
            // IMDS retries as azidentity does: 404, 410, 429 and 5xx, a few times with growing delays.
            if [404, 410, 429].contains(response.status) || (500...599).contains(response.status),
                case .retry(let delay) = Self.imdsRetryPolicy.decision(afterAttempt: attempt)
            {
                try? await Task.sleep(for: delay)
                continue
            }
            if response.status == 400, clientID != nil {
                throw TokenFailure(
                    kind: .refused,
                    message: "managed identity \(clientID!) isn't assigned to this node (IMDS answered 400)"
                )
            }
            return try Self.accessToken(from: response, url: url)
        }
    }

    private static func accessToken(from response: AzureHTTPResponse, url: String) throws(TokenFailure) -> AccessToken {
        let body = try? JSONDecoder().decode(TokenBody.self, from: Data(response.body))
        guard (200..<300).contains(response.status) else {
            let kind: TokenFailure.Kind = (500...599).contains(response.status) || response.status == 429 ? .unavailable : .refused
            let detail = body?.errorDescription ?? body?.error ?? "HTTP \(response.status)"
            throw TokenFailure(kind: kind, message: "token request to \(url) failed (\(response.status)): \(detail.firstLine)")
        }
        guard let token = body?.accessToken, !token.isEmpty else {
            throw TokenFailure(kind: .unavailable, message: "token response from \(url) has no access_token")
        }
        let seconds = body?.expiresIn?.value ?? 3600
        return AccessToken(token: token, expiresAt: .now + .seconds(seconds))
    }
}

/// A JSON number that may arrive as a string (IMDS sends `"expires_in": "86399"`).
struct FlexibleInt: Decodable {
    var value: Int
    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let number = try? container.decode(Int.self) {
            value = number
        } else {
            let text = try container.decode(String.self)
            guard let number = Int(text) else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "not an integer")
            }
            value = number
        }
    }
}

extension String {
    /// The first line (Entra descriptions carry trace and correlation IDs on later lines).
    var firstLine: String { split(separator: "\n", maxSplits: 1).first.map(String.init) ?? self }
}
