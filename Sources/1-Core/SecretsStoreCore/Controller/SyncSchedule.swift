/// When each SecretProviderClass the controller keeps is next due for a sync: a pure value over a monotonic
/// time, no clock and no sleeping.
///
/// After a success the class is due again after its interval; after `n` failures in a row, after the
/// back-off `1 s × 2^(n−1)` capped at 5 min; both plus a jitter the caller draws (so a thousand classes
/// created together do not stay in step).
package struct SyncSchedule: Sendable, Equatable {
    /// The first back-off.
    package static let firstBackoff: Duration = .seconds(1)
    /// The longest back-off.
    package static let maximumBackoff: Duration = .seconds(300)

    private struct Entry: Sendable, Equatable {
        var due: Duration
        var failures: Int
    }

    private var entries: [String: Entry] = [:]

    /// An empty schedule.
    package init() {}

    /// The back-off after `failures` failures in a row.
    package static func backoff(afterFailures failures: Int) -> Duration {
        guard failures > 0 else { return .zero }
        let doublings = min(failures - 1, 20)
        return min(firstBackoff * (1 << doublings), maximumBackoff)
    }

    /// A success at `now`: due after `interval` (+ `jitter`); the failure count resets.
    package mutating func succeeded(_ key: String, now: Duration, interval: Duration, jitter: Duration = .zero) {
        entries[key] = Entry(due: now + interval + jitter, failures: 0)
    }

    /// A failure at `now`: due after the next back-off (+ `jitter`). Returns the back-off.
    @discardableResult
    package mutating func failed(_ key: String, now: Duration, jitter: Duration = .zero) -> Duration {
        let failures = (entries[key]?.failures ?? 0) + 1
        let delay = Self.backoff(afterFailures: failures)
        entries[key] = Entry(due: now + delay + jitter, failures: failures)
        return delay
    }

    /// The class is not retried on a timer (its spec is invalid: the next change of it is awaited).
    package mutating func parked(_ key: String) {
        entries.removeValue(forKey: key)
    }

    /// The class is gone or no longer syncs.
    package mutating func remove(_ key: String) {
        entries.removeValue(forKey: key)
    }

    /// Failures in a row of `key` so far.
    package func failures(of key: String) -> Int { entries[key]?.failures ?? 0 }

    /// When `key` is due, if it is scheduled.
    package func due(_ key: String) -> Duration? { entries[key]?.due }

    /// Takes every key due at `now` out of the schedule (the caller syncs them and schedules them again),
    /// earliest first.
    package mutating func takeDue(now: Duration) -> [String] {
        let due = entries.filter { $0.value.due <= now }.sorted { $0.value.due < $1.value.due }.map(\.key)
        for key in due {
            // Keep the failure count for the next back-off; move the due time out of reach until rescheduled.
            entries[key]?.due = .seconds(Int64.max / 4)
        }
        return due
    }

    /// The earliest due time, if any class is scheduled.
    package var nextDue: Duration? { entries.values.map(\.due).min() }

    /// A jitter of up to 10 % of `delay`.
    package static func jitter(for delay: Duration) -> Duration {
        let millis = delay.components.seconds * 100 + delay.components.attoseconds / 10_000_000_000_000_000
        return .milliseconds(Int64.random(in: 0...max(0, millis)))
    }
}
