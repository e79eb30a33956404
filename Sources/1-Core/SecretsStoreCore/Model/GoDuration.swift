/// Go's `time.ParseDuration` syntax (`30s`, `2m`, `1h30m`, `500ms`): `--rotation-poll-interval` today, and the
/// duration fields of Kubernetes objects written for Go controllers.
package enum GoDuration {
    /// The duration `text` spells (a sequence of decimal numbers, each with a unit `ns`, `us`/`µs`, `ms`, `s`,
    /// `m` or `h`; `0` alone is zero), or `nil` when it is not one. Negative durations are not accepted, nor
    /// (as in Go) any total beyond about 292 years, the most an Int64 of nanoseconds holds.
    package static func parse(_ text: String) -> Duration? {
        if text == "0" { return .zero }
        var rest = Substring(text)
        var total: Duration = .zero
        guard !rest.isEmpty else { return nil }
        while !rest.isEmpty {
            let number = rest.prefix(while: { $0.isNumber || $0 == "." })
            guard !number.isEmpty, let amount = Double(number) else { return nil }
            rest = rest.dropFirst(number.count)
            let unit = rest.prefix(while: { !$0.isNumber && $0 != "." })
            rest = rest.dropFirst(unit.count)
            let scale: Double
            switch unit {
            case "ns": scale = 1e-9
            case "us", "µs", "μs": scale = 1e-6
            case "ms": scale = 1e-3
            case "s": scale = 1
            case "m": scale = 60
            case "h": scale = 3600
            default: return nil
            }
            let nanoseconds = (amount * scale * 1e9).rounded()
            guard nanoseconds.isFinite, nanoseconds < Self.maxNanoseconds - total.nanosecondsValue else { return nil }
            total += .nanoseconds(Int64(nanoseconds))
        }
        return total
    }

    /// Go's limit: the largest duration in nanoseconds, as a Double for the range check.
    private static let maxNanoseconds = Double(Int64.max)
}

extension Duration {
    /// The duration in whole nanoseconds, as a Double (for range checks).
    fileprivate var nanosecondsValue: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) * 1e9 + Double(attoseconds) / 1e9
    }
}
