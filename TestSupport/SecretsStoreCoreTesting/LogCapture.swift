import Logging
import Synchronization

/// Captures every log record as one line of text, so tests can look for messages and check that no secret
/// appears in any line.
///
/// ``logger(level:)`` renders `LEVEL message key=value ...` (keys sorted, handler and record metadata merged);
/// a renderer of the test's choice can add lines with ``append(_:)`` (SecretsStoreTesting adds one that renders
/// exactly as the driver's log handler does).
package final class LogCapture: Sendable {
    private let lines = Mutex<[String]>([])

    /// An empty capture.
    package init() {}

    /// The lines captured so far, in order.
    package var all: [String] { lines.withLock { $0 } }

    /// Forgets the lines captured so far (long runs that measure memory).
    package func removeAll() { lines.withLock { $0.removeAll() } }

    /// Adds one rendered line.
    package func append(_ line: String) { lines.withLock { $0.append(line) } }

    /// A logger at `level` that writes into this capture.
    package func logger(level: Logger.Level = .trace) -> Logger {
        Logger(label: "test") { [self] _ in CapturingLogHandler(level: level, capture: self) }
    }
}

/// The handler behind ``LogCapture/logger(level:)``.
struct CapturingLogHandler: LogHandler {
    /// Metadata set on the logger.
    var metadata: Logger.Metadata = [:]
    /// The least severe level captured.
    var logLevel: Logger.Level
    /// Where lines go.
    let capture: LogCapture

    /// A handler at `level` writing into `capture`.
    init(level: Logger.Level, capture: LogCapture) {
        self.logLevel = level
        self.capture = capture
    }

    /// One metadata value.
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// Renders and captures one record.
    func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        var line = "\(event.level.rawValue.uppercased()) \(event.message)"
        for key in merged.keys.sorted() { line += " \(key)=\(merged[key]!)" }
        capture.append(line)
    }
}
