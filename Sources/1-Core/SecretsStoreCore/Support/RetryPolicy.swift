/// How many times to try an operation and how long to wait before each retry.
///
/// A pure value: it never sleeps and never reads a clock. After each failed attempt the caller asks
/// ``decision(afterAttempt:suggestedDelay:remaining:)`` and either waits the delay it names and tries again, or
/// gives up with the reason it names. Which failures are worth retrying stays the caller's call.
///
/// ```swift
/// var attempt = 0
/// while true {
///     attempt += 1
///     do {
///         return try await operation()
///     } catch {
///         guard isTransient(error), case .retry(let delay) = policy.decision(afterAttempt: attempt) else { throw error }
///         try await Task.sleep(for: delay)
///     }
/// }
/// ```
package struct RetryPolicy: Sendable, Equatable {
    /// The wait before each retry when the server suggests none. Retry `n` is the `n`-th retry (1 for the first).
    package enum Backoff: Sendable, Equatable {
        /// Retry at once.
        case none
        /// `first` before retry 1, then twice the previous wait: `first × 2^(n−1)` before retry `n`.
        case doubling(first: Duration)
        /// `(2^n − 1) × unit` before retry `n`: 1, 3, 7, 15… units (Azure SDK's schedule, without its jitter).
        case powersOfTwoMinusOne(unit: Duration)
    }

    /// What to do after a failed attempt.
    package enum Decision: Sendable, Equatable {
        /// Wait this long, then try again.
        case retry(after: Duration)
        /// Do not try again; report the last failure.
        case giveUp(GiveUpReason)
    }

    /// Why ``decision(afterAttempt:suggestedDelay:remaining:)`` said to give up.
    package enum GiveUpReason: Sendable, Equatable {
        /// ``maxAttempts`` attempts have been made.
        case attemptsExhausted
        /// Waiting `delay` would end at or after the deadline, so the retry could not finish in time.
        case wouldPassDeadline(delay: Duration)
        /// The wait (usually a server's suggestion) is longer than ``maxDelay``.
        case delayTooLong(Duration)
    }

    /// Attempts in all, the first one included; 1 means never retry.
    package var maxAttempts: Int
    /// The wait before each retry when no server suggestion is given.
    package var backoff: Backoff
    /// A wait longer than this ends retrying instead of being waited out; `nil` for no limit.
    package var maxDelay: Duration?

    /// - Parameters:
    ///   - maxAttempts: attempts in all, the first one included.
    ///   - backoff: the wait before each retry when the server suggests none.
    ///   - maxDelay: a longer wait gives up instead; `nil` for no limit.
    package init(maxAttempts: Int, backoff: Backoff = .none, maxDelay: Duration? = nil) {
        self.maxAttempts = maxAttempts
        self.backoff = backoff
        self.maxDelay = maxDelay
    }

    /// Optimistic-concurrency writes (a Kubernetes `409 Conflict` on a stale resourceVersion): read the object
    /// again and retry at once, 5 attempts in all.
    package static let conflictingWrites = RetryPolicy(maxAttempts: 5)

    /// The scheduled wait before retry `retry` (1 for the first retry), ignoring any server suggestion. The
    /// exponent stops growing after 30 doublings so the arithmetic cannot overflow.
    package func backoffDelay(beforeRetry retry: Int) -> Duration {
        let exponent = min(max(retry, 1), 31)
        switch backoff {
        case .none:
            return .zero
        case .doubling(let first):
            return first * (1 << (exponent - 1))
        case .powersOfTwoMinusOne(let unit):
            return unit * ((1 << exponent) - 1)
        }
    }

    /// What to do after attempt number `attempt` (1 after the first attempt) failed in a retryable way.
    ///
    /// Checked in this order: attempts left, then the deadline, then ``maxDelay``.
    ///
    /// - Parameters:
    ///   - attempt: attempts made so far, the one that just failed included.
    ///   - suggestedDelay: the wait the server asked for (`Retry-After` and the like); used instead of the
    ///     backoff schedule when given.
    ///   - remaining: time left until the caller's deadline, `nil` when there is none. A wait at least this long
    ///     gives up: the policy never waits past the deadline.
    package func decision(afterAttempt attempt: Int, suggestedDelay: Duration? = nil, remaining: Duration? = nil) -> Decision {
        guard attempt < maxAttempts else { return .giveUp(.attemptsExhausted) }
        let delay = suggestedDelay ?? backoffDelay(beforeRetry: attempt)
        if let remaining, delay >= remaining { return .giveUp(.wouldPassDeadline(delay: delay)) }
        if let maxDelay, delay > maxDelay { return .giveUp(.delayTooLong(delay)) }
        return .retry(after: delay)
    }
}
