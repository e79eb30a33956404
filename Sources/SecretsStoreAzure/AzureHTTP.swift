import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import NIOSSL

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// One HTTP exchange with Key Vault, Entra ID or IMDS.
package struct AzureHTTPResponse: Sendable {
    package var status: Int
    package var headers: HTTPHeaders
    package var body: [UInt8]
}

/// The HTTPS client the Azure provider uses for every endpoint: system roots plus an optional extra CA bundle.
package final class AzureHTTP: Sendable {
    private let client: HTTPClient

    package init(extraCABundlePEM: [UInt8]? = nil) throws {
        var tls = TLSConfiguration.makeClientConfiguration()
        if let pem = extraCABundlePEM {
            tls.additionalTrustRoots = [.certificates(try NIOSSLCertificate.fromPEMBytes(pem))]
        }
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
        configuration.timeout = .init(connect: .seconds(10), read: .seconds(60))
        configuration.connectionPool = .init(idleTimeout: .seconds(60))
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    package func shutdown() async throws {
        try await client.shutdown()
    }

    /// Sends a request; transport failures throw, HTTP statuses are returned.
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
        let (seconds, attoseconds) = timeout.components
        let response = try await client.execute(
            request,
            timeout: .nanoseconds(max(1, seconds * 1_000_000_000 + attoseconds / 1_000_000_000))
        )
        let bytes = try await response.body.collect(upTo: 32 << 20)
        return AzureHTTPResponse(status: Int(response.status.code), headers: response.headers, body: Array(buffer: bytes))
    }
}

/// Percent-encoding for `application/x-www-form-urlencoded` bodies and query values.
package enum FormEncoding {
    package static func encode(_ fields: [(String, String)]) -> [UInt8] {
        Array(fields.map { "\(escape($0.0))=\(escape($0.1))" }.joined(separator: "&").utf8)
    }

    package static func escape(_ value: String) -> String {
        var result = ""
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"):
                result.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = String(byte, radix: 16, uppercase: true)
                result += "%" + (hex.count == 1 ? "0" : "") + hex
            }
        }
        return result
    }

    /// Decodes a form body or query string into its fields (last value wins).
    package static func decode(_ text: String) -> [String: String] {
        var fields: [String: String] = [:]
        for pair in text.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
            let key = unescape(parts[0])
            fields[key] = parts.count > 1 ? unescape(parts[1]) : ""
        }
        return fields
    }

    private static func unescape(_ text: String) -> String {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8).makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%"), let high = iterator.next(), let low = iterator.next(),
                let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16)
            {
                bytes.append(value)
            } else {
                bytes.append(byte == UInt8(ascii: "+") ? UInt8(ascii: " ") : byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
