import Synchronization

/// A monotonic clock a test moves by hand, for the publisher's `monotonicNow` seam. It starts at 1000 s so
/// that "an interval ago" is never before zero.
package final class ManualClock: Sendable {
    private let now = Mutex<Duration>(.seconds(1000))

    /// A clock at 1000 s.
    package init() {}

    /// Moves the clock forward by `duration`.
    package func advance(by duration: Duration) { now.withLock { $0 += duration } }

    /// The reading function to hand to the code under test.
    package var read: @Sendable () -> Duration { { [self] in now.withLock { $0 } } }
}
