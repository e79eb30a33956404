/// What ``eventually(_:within:every:_:)`` throws when its condition did not hold in time. Swift Testing records
/// an error thrown out of a test as an issue with this description, so a test cannot carry on past a bound that
/// was not met.
package struct EventuallyTimedOut: Error, CustomStringConvertible {
    /// What was waited for, as the caller described it.
    package let what: String
    /// How long it was waited for.
    package let limit: Duration

    package var description: String { "timed out after \(limit) waiting for \(what)" }
}

/// The one polling helper of the tests: checks `condition` every `interval` until it holds, for at most `limit`;
/// throws ``EventuallyTimedOut`` (naming `what`) when it still does not hold at the bound.
///
/// It throws rather than records an issue itself because this target is also linked by the bench and the demo,
/// which must not depend on the testing library; a test that calls it lets the error propagate (Swift Testing
/// records it), so a caller cannot silently continue.
package func eventually(
    _ what: String,
    within limit: Duration = .seconds(20),
    every interval: Duration = .milliseconds(10),
    _ condition: () async throws -> Bool
) async throws {
    let clock = ContinuousClock()
    let deadline = clock.now + limit
    while clock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: interval)
    }
    if try await condition() { return }
    throw EventuallyTimedOut(what: what, limit: limit)
}
