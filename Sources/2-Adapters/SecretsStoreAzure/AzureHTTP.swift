import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import SecretsStoreCore
import SecretsStoreHTTPClient

/// One HTTP exchange with Key Vault, Entra ID or IMDS.
package struct AzureHTTPResponse: Sendable {
    /// The HTTP status code.
    package var status: Int
    /// The response headers (`Retry-After`, `WWW-Authenticate`…).
    package var headers: HTTPHeaders
    /// The whole body, at most 32 MiB.
    package var body: [UInt8]
}

/// What ``AzureHTTP`` tells its observer after every request (for metrics): never a header, a body, a query
/// string or a token.
package struct AzureHTTPExchange: Sendable, Equatable {
    /// `GET`, `POST`…
    package var method: String
    /// The request URL without its query string or fragment (`https://kv.vault.azure.net/secrets/db/`).
    package var url: String
    /// The HTTP status, or `nil` when the request failed before an answer (connect, TLS, timeout, proxy).
    package var status: Int?
    /// From sending the request to the end of the answer's body (or the failure).
    package var duration: Duration
    /// Whether the request went through a proxy.
    package var proxied: Bool

    /// An exchange record.
    package init(method: String, url: String, status: Int?, duration: Duration, proxied: Bool) {
        self.method = method
        self.url = url
        self.status = status
        self.duration = duration
        self.proxied = proxied
    }

    /// The Key Vault object the URL names: `secret`, `key` or `cert` (the SecretProviderClass `objectType`
    /// words) and the object's name; `nil` for Entra ID, IMDS and anything else.
    ///
    /// Key Vault object URLs end in `/<collection>/<name>`, `/<collection>/<name>/<version>` or
    /// `/<collection>/<name>/versions`, where the collection is `secrets`, `keys` or `certificates` and a
    /// version is 32 hexadecimal digits; an emulator's `/<vault>/` prefix is allowed before them.
    package var keyVaultObject: (type: String, name: String)? {
        guard let pathStart = url.firstRange(of: "://").flatMap({ url[$0.upperBound...].firstIndex(of: "/") }) else { return nil }
        let segments = url[pathStart...].split(separator: "/").map(String.init)
        let types = ["secrets": "secret", "keys": "key", "certificates": "cert"]
        if segments.count >= 3, let type = types[segments[segments.count - 3]],
            segments[segments.count - 1] == "versions" || Self.isVersion(segments[segments.count - 1])
        {
            return (type, segments[segments.count - 2])
        }
        if segments.count >= 2, let type = types[segments[segments.count - 2]] {
            return (type, segments[segments.count - 1])
        }
        return nil
    }

    /// A Key Vault object version: 32 hexadecimal digits.
    private static func isVersion(_ text: String) -> Bool {
        text.utf8.count == 32 && text.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) || ($0 >= 65 && $0 <= 70) }
    }
}

/// A setting ``AzureHTTP`` refuses to start with. The text names the setting, never a credential.
package struct AzureHTTPConfigurationError: Error, Equatable, CustomStringConvertible {
    /// What is wrong.
    package var message: String
    /// ``message``.
    package var description: String { message }
}

/// A request ``AzureHTTP`` refused to send because a header value has a control character other than a tab
/// (an access token with a stray byte). The text names the header, never its value.
package struct AzureHTTPHeaderError: Error, Equatable, CustomStringConvertible {
    /// The header's name (`Authorization`).
    package var name: String
    /// The refusal of header `name`.
    package init(name: String) {
        self.name = name
    }
    /// What is wrong, without the value.
    package var description: String { "the \(name) header value contains a control character; the request was not sent" }
}

/// The HTTPS client the Azure provider uses for every endpoint (Key Vault, Entra ID, IMDS).
///
/// Promises:
/// - Entra ID and Key Vault requests honour `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` as Microsoft's Go SDKs do
///   (``ProxyDecision``); requests sent with `bypassProxy` (IMDS, which must never be proxied) always go
///   direct. TLS is verified end to end, through the tunnel, with the same trust settings.
/// - Every request carries `User-Agent: secrets-store-csi-driver-swift/azure`, followed by a space and
///   ``customUserAgent`` when one is set.
/// - The observer, when given, hears of every request once it has ended (``AzureHTTPExchange``).
/// - A header value with a control character other than a tab is never sent: ``send(_:_:headers:body:timeout:bypassProxy:)``
///   throws ``AzureHTTPHeaderError``, which names the header only (AsyncHTTPClient's own refusal would quote the
///   value, a bearer token). Every other error `send` throws is a transport error that names no header or body.
///
/// Safe to share between mounts and tasks; call ``shutdown()`` once, when no request is in flight any more.
package final class AzureHTTP: Sendable {
    /// The provider's connection limits: 10 s to connect, 60 s of silence per read, idle connections kept 60 s.
    package static let timeouts = HTTPSClientTimeouts(connect: .seconds(10), read: .seconds(60), idleConnection: .seconds(60))
    /// The User-Agent every request starts with.
    package static let baseUserAgent = "secrets-store-csi-driver-swift/azure"

    private let clients: ProxyRoutingHTTPClient
    private let userAgent: String
    private let onExchange: (@Sendable (AzureHTTPExchange) -> Void)?
    /// The operator's addition to the User-Agent (`--custom-user-agent`), if any.
    package let customUserAgent: String?

    /// How requests are routed through proxies (from the environment given at construction).
    package var proxyDecision: ProxyDecision { clients.decision }

    /// The proxies in use, without credentials (`HTTPS_PROXY=http://***@proxy:3128 NO_PROXY=…`), for a
    /// start-up log line; `nil` when every request goes direct.
    package var proxySummary: String? {
        clients.decision.usesAnyProxy ? "\(clients.decision)" : nil
    }

    /// A client that trusts the system's roots plus, when given, every certificate of `extraCABundlePEM`.
    ///
    /// - Parameters:
    ///   - proxy: the proxy variables to honour; by default this process's environment, read now.
    ///   - customUserAgent: appended to the User-Agent of every request (after a space); `nil` or empty adds
    ///     nothing.
    ///   - onExchange: told of every request when it has ended (for metrics).
    /// - Throws: when the bundle does not parse as PEM; ``ProxyConfigurationError`` for an unusable proxy
    ///   variable; ``AzureHTTPConfigurationError`` for a User-Agent with control characters.
    package convenience init(
        extraCABundlePEM: [UInt8]? = nil,
        proxy: ProxyEnvironment = .process(),
        customUserAgent: String? = nil,
        onExchange: (@Sendable (AzureHTTPExchange) -> Void)? = nil
    ) throws {
        try self.init(
            tls: HTTPSClientTLS(trustRoots: .system(extraPEM: extraCABundlePEM)),
            proxy: proxy,
            customUserAgent: customUserAgent,
            onExchange: onExchange
        )
    }

    /// A client with any trust, client-certificate and verification settings and the given connection limits.
    ///
    /// - Throws: when a PEM in `tls` does not parse, and as ``init(extraCABundlePEM:proxy:customUserAgent:onExchange:)``.
    package init(
        tls: HTTPSClientTLS,
        timeouts: HTTPSClientTimeouts = AzureHTTP.timeouts,
        proxy: ProxyEnvironment = .process(),
        customUserAgent: String? = nil,
        onExchange: (@Sendable (AzureHTTPExchange) -> Void)? = nil
    ) throws {
        let custom = customUserAgent.map { String($0.drop(while: { $0 == " " })) }.flatMap { $0.isEmpty ? nil : $0 }
        if let custom, custom.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
            throw AzureHTTPConfigurationError(message: "the custom User-Agent contains a control character (a line break?)")
        }
        let decision = try ProxyDecision(environment: proxy)
        clients = try ProxyRoutingHTTPClient(tls: tls, timeouts: timeouts, decision: decision)
        self.customUserAgent = custom
        userAgent = custom.map { "\(Self.baseUserAgent) \($0)" } ?? Self.baseUserAgent
        self.onExchange = onExchange
    }

    /// Shuts the underlying clients down; later requests fail.
    package func shutdown() async throws {
        try await clients.shutdown()
    }

    /// Sends a request; transport failures throw, HTTP statuses are returned. `timeout` bounds the whole
    /// exchange (at least 1 ns, so a passed deadline fails at once instead of disabling the limit).
    ///
    /// - Parameter bypassProxy: connect directly whatever the proxy variables say (IMDS).
    package func send(
        _ method: HTTPMethod,
        _ url: String,
        headers: [(String, String)] = [],
        body: [UInt8]? = nil,
        timeout: Duration = .seconds(60),
        bypassProxy: Bool = false
    ) async throws -> AzureHTTPResponse {
        var request = HTTPClientRequest(url: url)
        request.method = method
        for (name, value) in headers {
            guard !value.unicodeScalars.contains(where: { ($0.value < 0x20 && $0 != "\t") || $0.value == 0x7F }) else {
                throw AzureHTTPHeaderError(name: name)
            }
            request.headers.add(name: name, value: value)
        }
        request.headers.add(name: "User-Agent", value: userAgent)
        if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
        let (client, proxy) = clients.client(for: url, bypassProxy: bypassProxy)
        let start = ContinuousClock.now
        var status: Int?
        defer {
            if let onExchange {
                let bare = String(url.prefix { $0 != "?" && $0 != "#" })
                onExchange(
                    AzureHTTPExchange(
                        method: method.rawValue,
                        url: bare,
                        status: status,
                        duration: ContinuousClock.now - start,
                        proxied: proxy != nil
                    )
                )
            }
        }
        let response = try await client.execute(request, timeout: max(.nanoseconds(1), TimeAmount(timeout)))
        let bytes = try await response.body.collect(upTo: 32 << 20)
        status = Int(response.status.code)
        return AzureHTTPResponse(status: Int(response.status.code), headers: response.headers, body: Array(buffer: bytes))
    }
}

/// `application/x-www-form-urlencoded` bodies (Entra ID token requests), percent-encoded with
/// ``PercentEncoding/escape(_:escapingTilde:)``.
package enum FormEncoding {
    /// `name=value` pairs joined with `&`, names and values percent-encoded, in the order given.
    package static func encode(_ fields: [(String, String)]) -> [UInt8] {
        Array(fields.map { "\(PercentEncoding.escape($0.0))=\(PercentEncoding.escape($0.1))" }.joined(separator: "&").utf8)
    }
}
