import Logging
import SecretsStoreCore
import ServiceLifecycle

/// The rotation loop: every `--rotation-poll-interval`, or the shortest `spec.refreshInterval` among the
/// published volumes' classes when that is shorter (``NodePublisher/rotationWait(atMost:)``, read before each
/// wait), plus up to 10 % random jitter so a fleet of nodes does not hit the store in step, it runs one
/// ``NodePublisher/rotate(logger:)`` cycle; each volume is fetched only when its own interval has passed. A
/// volume with a shorter interval published during a wait is first refreshed when that wait ends. Stops on
/// graceful shutdown.
package struct RotationService: Service {
    private let publisher: NodePublisher
    private let interval: Duration
    private let logger: Logger
    private let sleep: @Sendable (Duration) async throws -> Void

    /// - Parameters:
    ///   - interval: `--rotation-poll-interval`, the base wait between two cycles.
    ///   - sleep: how to wait between cycles (tests pass one that returns at once or on demand).
    package init(
        publisher: NodePublisher,
        interval: Duration,
        logger: Logger,
        sleep: @escaping @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) }
    ) {
        self.publisher = publisher
        self.interval = interval
        self.logger = logger
        self.sleep = sleep
    }

    /// Runs cycles until graceful shutdown or cancellation, then returns normally: a wait in progress is cut
    /// short (its `CancellationError` ends the loop rather than the group), a cycle in progress sees the
    /// cancellation.
    package func run() async throws {
        try await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                let wait = publisher.rotationWait(atMost: interval)
                let jitterMillis = Int64.random(in: 0...max(1, wait.components.seconds * 100))
                do {
                    try await sleep(wait + .milliseconds(jitterMillis))
                } catch is CancellationError {
                    return
                }
                if Task.isCancelled { return }
                let start = ContinuousClock.now
                let outcomes = await publisher.rotate(logger: logger)
                logger.info(
                    "rotation cycle finished",
                    metadata: ["rotation.volumes": "\(outcomes.count)", "rotation.duration": "\(ContinuousClock.now - start)"]
                )
            }
        }
    }
}
