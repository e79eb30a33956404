import SecretsStoreCore
import Testing

@Suite("RetryPolicy: attempts, backoff schedules, server hints and the deadline")
struct RetryPolicyTests {
    /// The waits the policy names after each failed attempt until it gives up, with no hint and no deadline.
    static func schedule(_ policy: RetryPolicy) -> [Duration] {
        var delays: [Duration] = []
        var attempt = 1
        while case .retry(let delay) = policy.decision(afterAttempt: attempt) {
            delays.append(delay)
            attempt += 1
        }
        return delays
    }

    @Test("Key Vault's schedule: 3 retries, (2^n − 1) × 800 ms, then attempts are exhausted")
    func powersOfTwoMinusOne() {
        let policy = RetryPolicy(maxAttempts: 4, backoff: .powersOfTwoMinusOne(unit: .milliseconds(800)), maxDelay: .seconds(60))
        #expect(Self.schedule(policy) == [.milliseconds(800), .milliseconds(2400), .milliseconds(5600)])
        #expect(policy.decision(afterAttempt: 4) == .giveUp(.attemptsExhausted))
    }

    @Test("the IMDS schedule: 3 retries doubling from 400 ms (200 ms × 2^attempt)")
    func doubling() {
        let policy = RetryPolicy(maxAttempts: 4, backoff: .doubling(first: .milliseconds(400)))
        #expect(Self.schedule(policy) == [.milliseconds(400), .milliseconds(800), .milliseconds(1600)])
        for attempt in 1...3 {
            #expect(policy.backoffDelay(beforeRetry: attempt) == .milliseconds(200 * (1 << attempt)))
        }
    }

    @Test("conflicting writes: 5 attempts in all, retried at once")
    func conflictingWrites() {
        let policy = RetryPolicy.conflictingWrites
        #expect(policy.maxAttempts == 5)
        #expect(Self.schedule(policy) == [.zero, .zero, .zero, .zero])
        #expect(policy.decision(afterAttempt: 5) == .giveUp(.attemptsExhausted))
    }

    @Test("one attempt means never retry")
    func singleAttempt() {
        #expect(RetryPolicy(maxAttempts: 1, backoff: .doubling(first: .seconds(1))).decision(afterAttempt: 1) == .giveUp(.attemptsExhausted))
    }

    @Test("a server's suggested wait replaces the schedule, longer or shorter")
    func suggestedDelayWins() {
        let policy = RetryPolicy(maxAttempts: 4, backoff: .powersOfTwoMinusOne(unit: .milliseconds(800)))
        #expect(policy.decision(afterAttempt: 1, suggestedDelay: .seconds(5)) == .retry(after: .seconds(5)))
        #expect(policy.decision(afterAttempt: 3, suggestedDelay: .zero) == .retry(after: .zero))
        // No attempts left: a hint does not buy another one.
        #expect(policy.decision(afterAttempt: 4, suggestedDelay: .milliseconds(1)) == .giveUp(.attemptsExhausted))
    }

    @Test("never waits past the deadline: a wait that reaches it gives up, a shorter one is allowed")
    func deadline() {
        let policy = RetryPolicy(maxAttempts: 4, backoff: .powersOfTwoMinusOne(unit: .milliseconds(800)))
        #expect(policy.decision(afterAttempt: 1, remaining: .seconds(1)) == .retry(after: .milliseconds(800)))
        #expect(policy.decision(afterAttempt: 1, remaining: .milliseconds(800)) == .giveUp(.wouldPassDeadline(delay: .milliseconds(800))))
        #expect(policy.decision(afterAttempt: 2, remaining: .seconds(2)) == .giveUp(.wouldPassDeadline(delay: .milliseconds(2400))))
        #expect(
            policy.decision(afterAttempt: 1, suggestedDelay: .seconds(5), remaining: .seconds(2))
                == .giveUp(.wouldPassDeadline(delay: .seconds(5)))
        )
        // A deadline already passed leaves no room even for an immediate retry.
        #expect(RetryPolicy.conflictingWrites.decision(afterAttempt: 1, remaining: .seconds(-1)) == .giveUp(.wouldPassDeadline(delay: .zero)))
        #expect(RetryPolicy.conflictingWrites.decision(afterAttempt: 1, remaining: nil) == .retry(after: .zero))
    }

    @Test("a wait over maxDelay gives up; exactly maxDelay is still waited")
    func maxDelay() {
        let policy = RetryPolicy(maxAttempts: 4, backoff: .none, maxDelay: .seconds(60))
        #expect(policy.decision(afterAttempt: 1, suggestedDelay: .seconds(61)) == .giveUp(.delayTooLong(.seconds(61))))
        #expect(policy.decision(afterAttempt: 1, suggestedDelay: .seconds(60)) == .retry(after: .seconds(60)))
        #expect(RetryPolicy(maxAttempts: 4).decision(afterAttempt: 1, suggestedDelay: .seconds(3600)) == .retry(after: .seconds(3600)))
    }

    @Test("checked in order: attempts, then the deadline, then maxDelay")
    func order() {
        let policy = RetryPolicy(maxAttempts: 2, backoff: .none, maxDelay: .seconds(1))
        #expect(policy.decision(afterAttempt: 2, suggestedDelay: .seconds(10), remaining: .zero) == .giveUp(.attemptsExhausted))
        #expect(policy.decision(afterAttempt: 1, suggestedDelay: .seconds(10), remaining: .seconds(5)) == .giveUp(.wouldPassDeadline(delay: .seconds(10))))
        #expect(policy.decision(afterAttempt: 1, suggestedDelay: .seconds(10), remaining: .seconds(20)) == .giveUp(.delayTooLong(.seconds(10))))
    }

    @Test("the schedule cannot overflow for absurd attempt numbers")
    func noOverflow() {
        let doubling = RetryPolicy(maxAttempts: .max, backoff: .doubling(first: .nanoseconds(1)))
        #expect(doubling.backoffDelay(beforeRetry: 1_000) == .nanoseconds(1 << 30))
        let azure = RetryPolicy(maxAttempts: .max, backoff: .powersOfTwoMinusOne(unit: .nanoseconds(1)))
        #expect(azure.backoffDelay(beforeRetry: 1_000) == .nanoseconds((1 << 31) - 1))
        #expect(azure.backoffDelay(beforeRetry: 0) == .nanoseconds(1))
    }
}
