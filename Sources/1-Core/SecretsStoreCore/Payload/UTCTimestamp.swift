/// Formats seconds since the Unix epoch as `YYYY_MM_DD_HH_MM_SS` in UTC, the layout of the writer's
/// timestamped directory names, without pulling in a calendar library.
package enum UTCTimestamp {
    /// `epochSeconds` as `YYYY_MM_DD_HH_MM_SS` in UTC (proleptic Gregorian), each field zero-padded.
    package static func format(epochSeconds: Int64) -> String {
        let days = epochSeconds >= 0 ? epochSeconds / 86_400 : (epochSeconds - 86_399) / 86_400
        let secondsOfDay = epochSeconds - days * 86_400
        let (year, month, day) = civilDate(daysSinceEpoch: days)
        let hour = secondsOfDay / 3600
        let minute = (secondsOfDay % 3600) / 60
        let second = secondsOfDay % 60
        return "\(pad(year, 4))_\(pad(month, 2))_\(pad(day, 2))_\(pad(hour, 2))_\(pad(minute, 2))_\(pad(second, 2))"
    }

    /// Proleptic Gregorian year, month (1–12) and day (1–31) of a day count since 1970-01-01.
    private static func civilDate(daysSinceEpoch: Int64) -> (Int64, Int64, Int64) {
        let shifted = daysSinceEpoch + 719_468
        let era = (shifted >= 0 ? shifted : shifted - 146_096) / 146_097
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        return (year, month, day)
    }

    private static func pad(_ value: Int64, _ width: Int) -> String {
        let digits = String(value)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
}

extension UTCTimestamp {
    /// `YYYY-MM-DDTHH:MM:SS.mmmZ` for log lines.
    package static func iso8601(nanosecondsSinceEpoch: Int64) -> String {
        let seconds = nanosecondsSinceEpoch / 1_000_000_000
        let millis = (nanosecondsSinceEpoch / 1_000_000) % 1000
        let parts = format(epochSeconds: seconds).split(separator: "_")
        let millisText = String(millis)
        return "\(parts[0])-\(parts[1])-\(parts[2])T\(parts[3]):\(parts[4]):\(parts[5])."
            + String(repeating: "0", count: 3 - millisText.count) + millisText + "Z"
    }
}

extension UTCTimestamp {
    /// `YYYY-MM-DDTHH:MM:SSZ` (RFC 3339, seconds): Kubernetes' `metav1.Time`.
    package static func rfc3339(epochSeconds: Int64) -> String {
        let parts = format(epochSeconds: epochSeconds).split(separator: "_")
        return "\(parts[0])-\(parts[1])-\(parts[2])T\(parts[3]):\(parts[4]):\(parts[5])Z"
    }

    /// `YYYY-MM-DDTHH:MM:SS.ffffffZ` (RFC 3339, microseconds): Kubernetes' `metav1.MicroTime`.
    package static func rfc3339Micro(nanosecondsSinceEpoch: Int64) -> String {
        let seconds = nanosecondsSinceEpoch / 1_000_000_000
        let micros = String((nanosecondsSinceEpoch / 1_000) % 1_000_000)
        let whole = rfc3339(epochSeconds: seconds).dropLast()
        return whole + "." + String(repeating: "0", count: 6 - micros.count) + micros + "Z"
    }
}
