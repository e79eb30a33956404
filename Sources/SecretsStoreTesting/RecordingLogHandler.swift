import Logging
import SecretsStoreCore
import Synchronization

/// Captures every log line, rendered exactly as the driver renders them (text or JSON), so tests can grep the
/// output for secrets.
package final class LogCapture: Sendable {
    private let lines = Mutex<[String]>([])

    package init() {}

    package var all: [String] { lines.withLock { $0 } }

    /// Forgets the lines captured so far (long runs that measure memory).
    package func removeAll() { lines.withLock { $0.removeAll() } }

    /// A logger at `level` that writes into this capture.
    package func logger(level: Logger.Level = .trace, format: LineLogHandler.Format = .text) -> Logger {
        Logger(label: "test") { label in
            LineLogHandler(label: label, format: format, level: level) { [self] line in
                lines.withLock { $0.append(line) }
            }
        }
    }
}
