import SecretsStoreCore

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Splits a watch response body, which arrives in chunks cut anywhere, into its newline-terminated lines.
///
/// Memory is bounded: a line longer than ``maximumLineBytes`` fails with
/// ``KubernetesClientError/unavailable(_:)`` instead of growing the buffer.
package struct WatchLineBuffer: Sendable {
    /// The longest event line accepted by default: 16 MiB.
    package static let defaultMaximumLineBytes = 16 << 20

    /// The longest line accepted, without its newline.
    package let maximumLineBytes: Int
    private var pending: [UInt8] = []

    /// An empty buffer accepting lines up to `maximumLineBytes`.
    package init(maximumLineBytes: Int = Self.defaultMaximumLineBytes) {
        self.maximumLineBytes = maximumLineBytes
    }

    /// Adds `chunk` and returns every line it completes, in order, without newlines; blank lines are dropped.
    package mutating func append<Bytes: Collection<UInt8>>(_ chunk: Bytes) throws(KubernetesClientError) -> [[UInt8]] {
        var lines: [[UInt8]] = []
        var rest = chunk[...]
        while let newline = rest.firstIndex(of: UInt8(ascii: "\n")) {
            let part = rest[..<newline]
            try checkLength(adding: part.count)
            pending.append(contentsOf: part)
            if let line = takePending() { lines.append(line) }
            rest = rest[rest.index(after: newline)...]
        }
        try checkLength(adding: rest.count)
        pending.append(contentsOf: rest)
        return lines
    }

    /// The unterminated last line, if the body ended without a newline after it; the buffer is empty after.
    package mutating func finish() -> [UInt8]? {
        takePending()
    }

    private mutating func takePending() -> [UInt8]? {
        defer { pending = [] }
        let isBlank = pending.allSatisfy { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\r") || $0 == UInt8(ascii: "\t") }
        return isBlank ? nil : pending
    }

    private func checkLength(adding count: Int) throws(KubernetesClientError) {
        guard pending.count + count <= maximumLineBytes else {
            throw .unavailable("watch event longer than \(maximumLineBytes) bytes; the stream was abandoned")
        }
    }
}

/// Decodes one watch event line, `{"type": …, "object": …}`, into a ``WatchEvent``.
///
/// `ADDED`, `MODIFIED` and `DELETED` carry the object decoded as `Wire` and turned into the domain value
/// (events whose object has no domain value are skipped); `BOOKMARK` carries only the resourceVersion; `ERROR`
/// carries a `Status` and throws ``KubernetesClientError/rejected(status:message:)`` with its code (410 when
/// the resourceVersion is too old). Unknown types are skipped. Error messages never quote the line: a Secret's
/// data may be in it.
package struct WatchEventDecoder<Wire: Decodable, Object: Sendable>: Sendable {
    private let domainValue: @Sendable (Wire) -> Object?

    /// A decoder turning each object into its domain value with `domainValue`.
    package init(domainValue: @escaping @Sendable (Wire) -> Object?) {
        self.domainValue = domainValue
    }

    /// The event on `line`; `nil` for an event to skip.
    package func decode(_ line: [UInt8]) throws(KubernetesClientError) -> WatchEvent<Object>? {
        let envelope: WatchEnvelope<Wire>
        do {
            envelope = try JSONDecoder().decode(WatchEnvelope<Wire>.self, from: Data(line))
        } catch {
            throw .rejected(status: 200, message: "unexpected watch event (\(line.count) bytes): \(Self.describe(error))")
        }
        switch envelope.payload {
        case .added(let wire): return domainValue(wire).map { .added($0) }
        case .modified(let wire): return domainValue(wire).map { .modified($0) }
        case .deleted(let wire): return domainValue(wire).map { .deleted($0) }
        case .bookmark(let resourceVersion): return .bookmark(resourceVersion: resourceVersion)
        case .error(let status):
            throw .rejected(status: status.code ?? 500, message: status.message ?? "watch failed (\(status.reason ?? "no reason"))")
        case .unknown:
            return nil
        }
    }

    /// What went wrong, by coding path: decoding errors name fields, never values.
    private static func describe(_ error: any Error) -> String {
        guard let error = error as? DecodingError else { return "not JSON" }
        switch error {
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .keyNotFound(_, let context), .dataCorrupted(let context):
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            if case .keyNotFound(let key, _) = error { return "missing \(path.isEmpty ? "" : path + ".")\(key.stringValue)" }
            return path.isEmpty ? "not a JSON object" : "bad value at \(path)"
        @unknown default:
            return "not decodable"
        }
    }
}

/// `{"type": …, "object": …}` with the object decoded according to the type.
private struct WatchEnvelope<Wire: Decodable>: Decodable {
    enum Payload {
        case added(Wire), modified(Wire), deleted(Wire)
        case bookmark(String)
        case error(Resources.Status)
        case unknown
    }

    /// A BOOKMARK's object: only its resourceVersion is meaningful.
    private struct Bookmark: Decodable {
        var metadata: Resources.ObjectMeta
    }

    private enum CodingKeys: String, CodingKey {
        case type, object
    }

    let payload: Payload

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        switch try container.decode(String.self, forKey: .type) {
        case "ADDED": payload = .added(try container.decode(Wire.self, forKey: .object))
        case "MODIFIED": payload = .modified(try container.decode(Wire.self, forKey: .object))
        case "DELETED": payload = .deleted(try container.decode(Wire.self, forKey: .object))
        case "BOOKMARK":
            let bookmark = try container.decode(Bookmark.self, forKey: .object)
            guard let resourceVersion = bookmark.metadata.resourceVersion, !resourceVersion.isEmpty else {
                throw DecodingError.dataCorrupted(
                    .init(codingPath: [CodingKeys.object], debugDescription: "a bookmark without metadata.resourceVersion")
                )
            }
            payload = .bookmark(resourceVersion)
        case "ERROR": payload = .error(try container.decode(Resources.Status.self, forKey: .object))
        default: payload = .unknown
        }
    }
}
