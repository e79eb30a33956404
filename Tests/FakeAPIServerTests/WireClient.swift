import Foundation
import SecretsStoreCoreTesting
import SecretsStoreTesting

#if canImport(Glibc)
import Glibc
#endif

/// One request on a fresh connection (`Connection: close`).
func call(_ method: String, _ path: String, port: Int, body: String = "", contentType: String = "application/json") async throws -> TestResponse {
    try await blocking {
        let socket = try LoopbackSocket(port: port)
        try socket.send(
            "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: \(contentType)\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
        )
        return try socket.readResponse()
    }
}

/// The JSON object of a response body.
func jsonObject(_ response: TestResponse) -> [String: Any] {
    (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any] ?? [:]
}

/// JSON text of `value`.
func jsonText(_ value: Any) -> String {
    String(decoding: (try? JSONSerialization.data(withJSONObject: value)) ?? Data(), as: UTF8.self)
}

/// An open watch: the raw bytes received so far, parsed into event lines on demand.
final class WatchConnection {
    private let socket: LoopbackSocket
    private(set) var received: [UInt8] = []

    init(port: Int, path: String) async throws {
        socket = try LoopbackSocket(port: port)
        try socket.send("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    }

    var text: String { String(decoding: received, as: UTF8.self) }

    /// The event lines (`{"object":…,"type":…}`) received so far.
    var events: [[String: Any]] {
        // Split on LF bytes: in a Swift String, CR LF is one Character and would not split on "\n".
        received.split(separator: 10).compactMap { line in
            let trimmed = String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard trimmed.hasPrefix("{") else { return nil }
            return (try? JSONSerialization.jsonObject(with: Data(trimmed.utf8))) as? [String: Any]
        }
    }

    var types: [String] { events.compactMap { $0["type"] as? String } }

    /// Receives until `condition` holds; throws (naming `what`) if it does not within 20 s.
    func receive(_ what: String, until condition: (WatchConnection) -> Bool) async throws {
        try await eventually(what) {
            while case .data(let bytes) = socket.receiveNow() { received += bytes }
            return condition(self)
        }
    }
}
