import SecretsStoreObservability
import Logging
import SecretsStoreCoreTesting
import SecretsStoreApplication

/// Capture in the driver's own line format.
extension LogCapture {
    /// A logger at `level` whose lines are rendered exactly as the driver writes them to standard error
    /// (``LineLogHandler`` in `format`), so leak tests check the very bytes an operator would see.
    package func logger(level: Logger.Level = .trace, format: LineLogHandler.Format) -> Logger {
        Logger(label: "test") { [self] label in
            LineLogHandler(label: label, format: format, level: level) { [self] line in append(line) }
        }
    }
}
