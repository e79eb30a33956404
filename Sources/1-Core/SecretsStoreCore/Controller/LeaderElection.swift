import Logging

/// Leader election over a `coordination.k8s.io/v1` Lease, with client-go's timing and semantics.
///
/// Promises:
/// - a candidate takes the Lease only when it is free (no holder) or its record has not changed for
///   `leaseDuration` as measured on the candidate's own monotonic clock since it last saw it change (so
///   clocks of different nodes never need to agree);
/// - writes are conditional on the resourceVersion read: two candidates never both win;
/// - the leader renews every `retryPeriod`; when no renewal has succeeded for `renewDeadline` it stops
///   leading (``run(logger:whileLeading:)`` cancels the leading work and waits for it) before the Lease can
///   expire for others (`renewDeadline` < `leaseDuration`);
/// - when its task is cancelled, a leader releases the Lease (empty holder, 1 s duration), so a standby
///   takes over at its next retry.
package struct LeaderElector: Sendable {
    /// Lease timings; the defaults are client-go's.
    package struct Timing: Sendable, Equatable {
        /// How long a Lease holds without renewal (15 s).
        package var leaseDuration: Duration = .seconds(15)
        /// How long a leader keeps trying to renew before it stops leading (10 s).
        package var renewDeadline: Duration = .seconds(10)
        /// How often candidates try and leaders renew (2 s).
        package var retryPeriod: Duration = .seconds(2)
        /// client-go's defaults.
        package init() {}
    }

    /// What a candidate does after reading the Lease (pure: ``decide(current:identity:now:observed:timing:wallTime:)``).
    package enum Action: Sendable, Equatable {
        /// Create the Lease holding it.
        case create(LeaseRecord)
        /// Replace the Lease read (with its resourceVersion) by this record.
        case update(LeaseRecord)
        /// Someone else holds a live Lease: wait.
        case standby
    }

    /// The last Lease record a candidate saw change, and when (monotonic).
    package struct Observation: Sendable, Equatable {
        /// The holder, renew time and transitions seen.
        package var holder: String?
        /// `spec.renewTime` seen.
        package var renewTime: String?
        /// When the candidate first saw this record.
        package var at: Duration
        /// An observation.
        package init(holder: String?, renewTime: String?, at: Duration) {
            self.holder = holder
            self.renewTime = renewTime
            self.at = at
        }
    }

    /// The candidate's next step, and the observation to keep. `wallTime` is `metav1.MicroTime` of now.
    package static func decide(
        current: LeaseRecord?,
        identity: String,
        now: Duration,
        observed: Observation?,
        timing: Timing,
        namespace: String,
        name: String,
        wallTime: String
    ) -> (Action, Observation) {
        let leaseSeconds = Int(timing.leaseDuration.components.seconds)
        guard let current else {
            let record = LeaseRecord(
                namespace: namespace, name: name, holderIdentity: identity, leaseDurationSeconds: leaseSeconds,
                acquireTime: wallTime, renewTime: wallTime, leaseTransitions: 0
            )
            return (.create(record), Observation(holder: identity, renewTime: wallTime, at: now))
        }
        // Track when the record last changed, on our own clock.
        var observation = observed ?? Observation(holder: current.holderIdentity, renewTime: current.renewTime, at: now)
        if observation.holder != current.holderIdentity || observation.renewTime != current.renewTime {
            observation = Observation(holder: current.holderIdentity, renewTime: current.renewTime, at: now)
        }
        let holder = current.holderIdentity ?? ""
        let heldByUs = holder == identity
        let recordDuration = Duration.seconds(max(current.leaseDurationSeconds, 1))
        let expired = now - observation.at >= recordDuration
        guard heldByUs || holder.isEmpty || expired else { return (.standby, observation) }
        var record = current
        record.holderIdentity = identity
        record.leaseDurationSeconds = leaseSeconds
        record.renewTime = wallTime
        if !heldByUs {
            record.acquireTime = wallTime
            record.leaseTransitions = current.leaseTransitions + 1
        }
        return (.update(record), Observation(holder: identity, renewTime: wallTime, at: now))
    }

    private let client: any ControllerKubernetesClient
    private let namespace: String
    private let name: String
    /// Who this candidate is in `spec.holderIdentity` (client-go: `<hostname>_<uuid>`).
    package let identity: String
    private let timing: Timing
    private let monotonicNow: @Sendable () -> Duration
    private let wallTime: @Sendable () -> String

    /// - Parameters:
    ///   - wallTime: now as `metav1.MicroTime` (`2026-12-01T23:00:00.123456Z`).
    package init(
        client: any ControllerKubernetesClient,
        namespace: String,
        name: String,
        identity: String,
        timing: Timing = Timing(),
        monotonicNow: @escaping @Sendable () -> Duration,
        wallTime: @escaping @Sendable () -> String
    ) {
        self.client = client
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.timing = timing
        self.monotonicNow = monotonicNow
        self.wallTime = wallTime
    }

    /// Campaigns until cancelled; runs `whileLeading` each time it becomes leader and cancels it when it
    /// stops leading. Returns after releasing the Lease when cancelled while leading.
    package func run(logger: Logger, whileLeading: @escaping @Sendable () async -> Void) async {
        var observation: Observation?
        while !Task.isCancelled {
            if await tryAcquireOrRenew(&observation, logger: logger) {
                logger.info("became leader", metadata: ["lease": "\(namespace)/\(name)", "leader.identity": "\(identity)"])
                await lead(&observation, logger: logger, whileLeading: whileLeading)
                if Task.isCancelled {
                    await release(logger: logger)
                    return
                }
                logger.warning("stopped leading: the lease could not be renewed in time", metadata: ["lease": "\(namespace)/\(name)"])
            }
            do { try await Task.sleep(for: timing.retryPeriod) } catch { return }
        }
    }

    /// Runs `whileLeading` alongside the renew loop; returns when renewing failed for `renewDeadline` or the
    /// task is cancelled, after `whileLeading` has returned.
    private func lead(_ observation: inout Observation?, logger: Logger, whileLeading: @escaping @Sendable () async -> Void) async {
        var renewed = monotonicNow()
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await whileLeading() }
            while !Task.isCancelled {
                do { try await Task.sleep(for: timing.retryPeriod) } catch { break }
                if await tryAcquireOrRenew(&observation, logger: logger) {
                    renewed = monotonicNow()
                } else if monotonicNow() - renewed >= timing.renewDeadline || observation?.holder != identity {
                    break
                }
            }
            group.cancelAll()
            await group.waitForAll()
        }
    }

    /// One read and, when allowed, one conditional write; whether this candidate holds the Lease after it.
    private func tryAcquireOrRenew(_ observation: inout Observation?, logger: Logger) async -> Bool {
        do {
            let current = try await client.lease(namespace: namespace, name: name, logger: logger)
            let (action, next) = Self.decide(
                current: current, identity: identity, now: monotonicNow(), observed: observation, timing: timing,
                namespace: namespace, name: name, wallTime: wallTime()
            )
            switch action {
            case .standby:
                observation = next
                return false
            case .create(let record):
                _ = try await client.createLease(record, logger: logger)
            case .update(let record):
                _ = try await client.updateLease(record, logger: logger)
            }
            observation = next
            return true
        } catch {
            if case .conflict = error {
                logger.debug("lease changed under us; retrying", metadata: ["lease": "\(namespace)/\(name)"])
            } else {
                logger.warning("could not read or write the lease", metadata: ["lease": "\(namespace)/\(name)", "error": "\(error)"].addingCause(of: error))
            }
            return false
        }
    }

    /// Gives the Lease up (empty holder, 1 s duration) so a standby takes over at once; best effort.
    private func release(logger: Logger) async {
        // The caller's task is cancelled; the release must still reach the API server.
        await Task.detached { [client, namespace, name, identity, wallTime] in
            guard var current = try? await client.lease(namespace: namespace, name: name, logger: logger),
                current.holderIdentity == identity
            else { return }
            current.holderIdentity = ""
            current.leaseDurationSeconds = 1
            current.renewTime = wallTime()
            if (try? await client.updateLease(current, logger: logger)) != nil {
                logger.info("released the lease", metadata: ["lease": "\(namespace)/\(name)"])
            }
        }.value
    }
}
