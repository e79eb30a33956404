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

/// The HTTPS client the Azure provider uses for every endpoint (Key Vault, Entra ID, IMDS).
///
/// Safe to share between mounts and tasks; call ``shutdown()`` once, when no request is in flight any more.
package final class AzureHTTP: Sendable {
    /// The provider's connection limits: 10 s to connect, 60 s of silence per read, idle connections kept 60 s.
    package static let timeouts = HTTPSClientTimeouts(connect: .seconds(10), read: .seconds(60), idleConnection: .seconds(60))

    private let client: HTTPClient

    /// A client that trusts the system's roots plus, when given, every certificate of `extraCABundlePEM`.
    /// Throws when the bundle does not parse as PEM.
    package convenience init(extraCABundlePEM: [UInt8]? = nil) throws {
        try self.init(tls: HTTPSClientTLS(trustRoots: .system(extraPEM: extraCABundlePEM)))
    }

    /// A client with any trust, client-certificate and verification settings and the given connection limits.
    /// Throws when a PEM in `tls` does not parse.
    package init(tls: HTTPSClientTLS, timeouts: HTTPSClientTimeouts = AzureHTTP.timeouts) throws {
        client = try HTTPClient.make(tls: tls, timeouts: timeouts)
    }

    /// Shuts the underlying client down; later requests fail.
    package func shutdown() async throws {
        try await client.shutdown()
    }

    /// Sends a request; transport failures throw, HTTP statuses are returned. `timeout` bounds the whole
    /// exchange (at least 1 ns, so a passed deadline fails at once instead of disabling the limit).
    package func send(
        _ method: HTTPMethod,
        _ url: String,
        headers: [(String, String)] = [],
        body: [UInt8]? = nil,
        timeout: Duration = .seconds(60)
    ) async throws -> AzureHTTPResponse {
        var request = HTTPClientRequest(url: url)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        request.headers.add(name: "User-Agent", value: "secrets-store-csi-driver-swift/azure")
        if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
        let response = try await client.execute(request, timeout: max(.nanoseconds(1), TimeAmount(timeout)))
        let bytes = try await response.body.collect(upTo: 32 << 20)
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
