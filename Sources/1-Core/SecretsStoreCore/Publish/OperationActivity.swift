import Synchronization

/// Counts the publisher's operations (publish, unpublish, rotation cycle, recovery): how many are running and
/// how many have ended. For work that should run once things are quiet, such as handing freed heap memory back
/// to the system after a burst of publishes. Cheap enough to wrap every operation.
package final class OperationActivity: Sendable {
    /// What the counters read at one instant.
    package struct Snapshot: Sendable, Equatable {
        /// Operations begun and not yet ended.
        package var inFlight: Int
        /// Operations ended since start.
        package var completed: UInt64
    }

    private let counts = Mutex(Snapshot(inFlight: 0, completed: 0))

    package init() {}

    /// The counters now.
    package var snapshot: Snapshot { counts.withLock { $0 } }

    /// Runs `operation` counted as in flight.
    @discardableResult
    package func track<Result, Failure: Error>(
        _ operation: () async throws(Failure) -> Result
    ) async throws(Failure) -> Result {
        counts.withLock { $0.inFlight += 1 }
        defer { counts.withLock { $0.inFlight -= 1; $0.completed += 1 } }
        return try await operation()
    }

    /// Runs the synchronous `operation` counted as in flight.
    @discardableResult
    package func track<Result, Failure: Error>(_ operation: () throws(Failure) -> Result) throws(Failure) -> Result {
        counts.withLock { $0.inFlight += 1 }
        defer { counts.withLock { $0.inFlight -= 1; $0.completed += 1 } }
        return try operation()
    }
}
