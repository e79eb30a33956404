import Logging
import SecretsStoreCore

#if canImport(Glibc)
import Glibc
#endif

/// A log handler that writes one line per record to standard error: `key=value` text by default, one JSON
/// object per line with `--log-format-json`. Lines are written with a single `write(2)` so concurrent records
/// never interleave.
package struct LineLogHandler: LogHandler {
    /// How a record is rendered.
    package enum Format: Sendable {
        /// `<time> <LEVEL> <message> key=value ...`, values quoted when they hold spaces, quotes or `=`.
        case text
        /// `{"ts":…,"level":…,"msg":…,"key":"value",…}`.
        case json
    }

    /// Metadata attached to every record of this handler's logger.
    package var metadata: Logger.Metadata = [:]
    /// The least severe level written.
    package var logLevel: Logger.Level
    private let label: String
    private let format: Format
    private let sink: @Sendable (String) -> Void

    /// - Parameter sink: where each rendered line goes (standard error unless a test captures it).
    package init(
        label: String,
        format: Format,
        level: Logger.Level,
        sink: @escaping @Sendable (String) -> Void = LineLogHandler.standardError
    ) {
        self.label = label
        self.format = format
        self.logLevel = level
        self.sink = sink
    }

    /// Writes a line and its newline to file descriptor 2 in one `write(2)`.
    package static let standardError: @Sendable (String) -> Void = { line in
        var bytes = Array(line.utf8)
        bytes.append(UInt8(ascii: "\n"))
        _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    }

    /// One metadata value of this handler.
    package subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// Renders `event` with this handler's metadata (the event's own values win) and hands it to the sink.
    package func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        sink(Self.format(level: event.level, message: "\(event.message)", metadata: merged, format: format))
    }

    /// Renders one record. Keys are sorted so lines are stable.
    package static func format(
        level: Logger.Level,
        message: String,
        metadata: Logger.Metadata,
        format: Format
    ) -> String {
        let time = UTCTimestamp.iso8601(nanosecondsSinceEpoch: currentTimeNanoseconds())
        let keys = metadata.keys.sorted()
        switch format {
        case .text:
            var line = "\(time) \(level.rawValue.uppercased()) \(message)"
            for key in keys { line += " \(key)=\(quoted(String(describing: metadata[key]!)))" }
            return line
        case .json:
            var line = "{\"ts\":\(jsonString(time)),\"level\":\(jsonString(level.rawValue)),\"msg\":\(jsonString(message))"
            for key in keys { line += ",\(jsonString(key)):\(jsonString(String(describing: metadata[key]!)))" }
            return line + "}"
        }
    }

    private static func currentTimeNanoseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
    }

    private static func quoted(_ value: String) -> String {
        value.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" || $0.isNewline }) || value.isEmpty
            ? jsonString(value) : value
    }

    /// A JSON string literal for `value`.
    package static func jsonString(_ value: String) -> String {
        var result = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                result += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
    }
}
