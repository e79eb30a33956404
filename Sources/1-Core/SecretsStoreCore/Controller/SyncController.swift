import Logging
import Synchronization

/// The sync controller: keeps the `secretObjects` Secrets of every SecretProviderClass with `spec.sync` in
/// line with the provider, without any pod.
///
/// Promises:
/// - SecretProviderClasses are watched (a ``Reflector``), not polled: a new class, or a change of its spec
///   (its `metadata.generation`), is synced at once; its own status writes do not trigger a sync;
/// - each class is fetched once per interval (`spec.refreshInterval`, else the default interval), after a
///   failure with back-off (1 s doubling to 5 min, plus jitter); an invalid spec waits for the next edit;
/// - Secrets with the managed label are watched too: one the controller keeps that is deleted or edited is
///   written back from the last good content, without asking the provider;
/// - at most `workers` classes sync at a time, and one class never twice at a time;
/// - the class's status (`Ready` condition, `lastSyncTime`, `objects`, `syncedSecrets`) is written through
///   the status subresource when it changes; events `SecretSynced` (when a Secret was written) and
///   `SecretSyncFailed` (when a failure is new or its message changed) are recorded on the class;
/// - deleting a class leaves its Secrets to the API server's garbage collector (they are owned by it);
/// - ``run(logger:)`` starts from nothing each time (a new leader lists everything) and returns when its
///   task is cancelled.
package final class SyncController: Sendable {
    /// What the controller watches and how often it refreshes.
    package struct Configuration: Sendable {
        /// Watch one namespace; `nil` for all.
        package var namespace: String?
        /// The refresh interval of classes without `spec.refreshInterval` (`--rotation-poll-interval`).
        package var defaultInterval: Duration
        /// Classes synced at the same time.
        package var workers: Int
        /// How often due refreshes and back-offs are looked for.
        package var tick: Duration

        /// A configuration.
        package init(namespace: String?, defaultInterval: Duration, workers: Int = 8, tick: Duration = .milliseconds(200)) {
            self.namespace = namespace
            self.defaultInterval = defaultInterval
            self.workers = workers
            self.tick = tick
        }
    }

    /// What the controller keeps of one class.
    private struct Tracked {
        var spc: SecretProviderClass
        /// `metadata.generation` of the last full sync tried (nil: never).
        var attemptedGeneration: Int?
        var objects: [ObjectVersion] = []
        var desired: [KubernetesSecret] = []
        var written: SecretProviderClassStatus?
        var lastFailure: String?
        var lastSyncTime: String?
    }

    private enum Work: Int, Comparable {
        case restore = 0
        case full = 1
        static func < (lhs: Work, rhs: Work) -> Bool { lhs.rawValue < rhs.rawValue }
    }

    private struct State {
        var tracked: [String: Tracked] = [:]
        var schedule = SyncSchedule()
        var pending: [String: Work] = [:]
        var inFlight: Set<String> = []
        var queue: AsyncStream<String>.Continuation?
        var fullSyncs = 0
    }

    private let kubernetes: any ControllerKubernetesClient
    private let step: SecretProviderClassSyncStep
    private let tokens: ServiceAccountTokenCache
    private let configuration: Configuration
    private let monotonicNow: @Sendable () -> Duration
    private let wallClockSeconds: @Sendable () -> Int64
    private let state = Mutex(State())

    /// - Parameters:
    ///   - wallClockSeconds: seconds since the Unix epoch, for `lastSyncTime` and `lastTransitionTime`.
    package init(
        kubernetes: any ControllerKubernetesClient,
        step: SecretProviderClassSyncStep,
        tokens: ServiceAccountTokenCache,
        configuration: Configuration,
        monotonicNow: @escaping @Sendable () -> Duration,
        wallClockSeconds: @escaping @Sendable () -> Int64
    ) {
        self.kubernetes = kubernetes
        self.step = step
        self.tokens = tokens
        self.configuration = configuration
        self.monotonicNow = monotonicNow
        self.wallClockSeconds = wallClockSeconds
    }

    /// Full syncs (provider fetches) started so far.
    package var fullSyncsStarted: Int { state.withLock { $0.fullSyncs } }

    /// The classes kept now (`namespace/name`).
    package var trackedClasses: [String] { state.withLock { Array($0.tracked.keys).sorted() } }

    /// Watches and syncs until cancelled.
    package func run(logger: Logger) async {
        let (stream, continuation) = AsyncStream<String>.makeStream()
        state.withLock { state in
            state = State()
            state.queue = continuation
        }
        let classes = Reflector(
            name: "secretproviderclasses",
            source: .secretProviderClasses(kubernetes, namespace: configuration.namespace),
            onChange: { [self] change in classChanged(change, logger: logger) }
        )
        let secrets = Reflector(
            name: "secrets",
            source: .secrets(kubernetes, namespace: configuration.namespace, labelSelector: [KubernetesSecret.managedLabel: "true"]),
            onChange: { [self] change in secretChanged(change, logger: logger) }
        )
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await classes.run(logger: logger) }
            group.addTask { await secrets.run(logger: logger) }
            group.addTask { [self] in await tickLoop() }
            group.addTask { [self] in await dispatch(stream, classes: classes, logger: logger) }
            // Everything above runs until cancelled.
            await group.waitForAll()
        }
        continuation.finish()
        state.withLock { $0.queue = nil }
    }

    // MARK: Events

    private func classChanged(_ change: Reflector<SecretProviderClass>.Change, logger: Logger) {
        switch change {
        case .upserted(let old, let new):
            let key = Self.key(new.namespace, new.name)
            guard new.sync != nil else {
                forget(key, spc: new)
                return
            }
            let needsSync = state.withLock { state -> Bool in
                var tracked = state.tracked[key] ?? Tracked(spc: new)
                tracked.spc = new
                defer { state.tracked[key] = tracked }
                guard let old, let attempted = tracked.attemptedGeneration else { return true }
                return Self.specChanged(old, new) || attempted != new.generation
            }
            if needsSync { enqueue(key, .full) }
        case .deleted(let spc):
            forget(Self.key(spc.namespace, spc.name), spc: spc)
        }
    }

    private func secretChanged(_ change: Reflector<KubernetesSecret>.Change, logger: Logger) {
        let secret: KubernetesSecret
        let deleted: Bool
        switch change {
        case .upserted(_, let new): (secret, deleted) = (new, false)
        case .deleted(let old): (secret, deleted) = (old, true)
        }
        for owner in secret.ownerReferences where owner.kind == "SecretProviderClass" {
            let key = Self.key(secret.namespace, owner.name)
            let drifted = state.withLock { state -> Bool in
                guard let tracked = state.tracked[key], let desired = tracked.desired.first(where: { $0.name == secret.name }) else {
                    return false
                }
                if deleted { return true }
                return desired.data != secret.data || desired.type != secret.type
                    || !desired.labels.allSatisfy({ secret.labels[$0.key] == $0.value })
                    || !desired.ownerReferences.allSatisfy({ owner in secret.ownerReferences.contains { $0.uid == owner.uid } })
            }
            if drifted {
                logger.info(
                    deleted ? "a synced secret was deleted; restoring it" : "a synced secret was edited; restoring it",
                    metadata: ["k8s.secret": "\(secret.namespace)/\(secret.name)", "k8s.secretproviderclass": "\(key)"]
                )
                enqueue(key, .restore)
            }
        }
    }

    private func forget(_ key: String, spc: SecretProviderClass) {
        let removed = state.withLock { state -> Tracked? in
            state.schedule.remove(key)
            state.pending.removeValue(forKey: key)
            return state.tracked.removeValue(forKey: key)
        }
        if let account = removed?.spc.sync?.serviceAccountName {
            tokens.forget(namespace: spc.namespace, serviceAccount: account)
        }
    }

    /// Whether anything the sync reads changed (for objects without a generation).
    private static func specChanged(_ old: SecretProviderClass, _ new: SecretProviderClass) -> Bool {
        old.generation != new.generation || old.provider != new.provider || old.parameters != new.parameters
            || old.secretObjects != new.secretObjects || old.sync != new.sync || old.refreshInterval != new.refreshInterval
            || old.uid != new.uid
    }

    private static func key(_ namespace: String, _ name: String) -> String { "\(namespace)/\(name)" }

    // MARK: Queue

    private func enqueue(_ key: String, _ work: Work) {
        state.withLock { state in
            if let pending = state.pending[key] {
                state.pending[key] = max(pending, work)
                return
            }
            state.pending[key] = work
            if !state.inFlight.contains(key) { state.queue?.yield(key) }
        }
    }

    private func tickLoop() async {
        while !Task.isCancelled {
            do { try await Task.sleep(for: configuration.tick) } catch { return }
            let due = state.withLock { $0.schedule.takeDue(now: monotonicNow()) }
            for key in due { enqueue(key, .full) }
        }
    }

    private func dispatch(_ stream: AsyncStream<String>, classes: Reflector<SecretProviderClass>, logger: Logger) async {
        await withTaskGroup(of: Void.self) { group in
            var running = 0
            for await key in stream {
                if Task.isCancelled { break }
                if running >= configuration.workers {
                    await group.next()
                    running -= 1
                }
                let work = state.withLock { state -> Work? in
                    guard let work = state.pending.removeValue(forKey: key) else { return nil }
                    state.inFlight.insert(key)
                    return work
                }
                guard let work else { continue }
                running += 1
                group.addTask { [self] in
                    await process(key, work, logger: logger)
                    state.withLock { state in
                        state.inFlight.remove(key)
                        if state.pending[key] != nil { state.queue?.yield(key) }
                    }
                }
            }
            group.cancelAll()
        }
    }

    // MARK: Work

    private func process(_ key: String, _ work: Work, logger: Logger) async {
        var logger = logger
        logger[metadataKey: "k8s.secretproviderclass"] = "\(key)"
        guard let tracked = state.withLock({ $0.tracked[key] }) else { return }
        if work == .restore, !tracked.desired.isEmpty {
            let (written, failure) = await step.restore(tracked.desired, of: tracked.spc, logger: logger)
            if let failure {
                logger.warning("could not restore a synced secret", metadata: ["sync.reason": "\(failure.reason.rawValue)", "error": "\(failure.message)"])
                await record(
                    key, spc: tracked.spc,
                    outcome: failure.with(objects: tracked.objects, syncedSecrets: tracked.spc.secretObjects.map(\.secretName)),
                    logger: logger
                )
            } else if !written.isEmpty {
                await event(tracked.spc, .normal, "SecretSynced", "restored secret(s) \(written.joined(separator: ", "))", logger: logger)
            }
            return
        }
        state.withLock { state in
            state.fullSyncs += 1
            state.tracked[key]?.attemptedGeneration = tracked.spc.generation
        }
        let outcome = await step.sync(tracked.spc, previous: tracked.objects, logger: logger)
        await record(key, spc: tracked.spc, outcome: outcome, logger: logger)
    }

    /// Keeps the outcome, schedules the next sync, writes the status and the events.
    private func record(_ key: String, spc: SecretProviderClass, outcome: SecretProviderClassSyncStep.Outcome, logger: Logger) async {
        let now = monotonicNow()
        let nowText = UTCTimestamp.rfc3339(epochSeconds: wallClockSeconds())
        let interval = (try? spc.refreshIntervalDuration()) ?? nil
        let update = state.withLock { state -> (status: SecretProviderClassStatus, write: Bool, newFailure: Bool)? in
            guard var tracked = state.tracked[key] else { return nil }
            if outcome.succeeded {
                let every = interval ?? configuration.defaultInterval
                state.schedule.succeeded(key, now: now, interval: every, jitter: SyncSchedule.jitter(for: every))
                tracked.objects = outcome.objects
                if !outcome.desired.isEmpty { tracked.desired = outcome.desired }
                tracked.lastSyncTime = nowText
            } else if outcome.retryable {
                let delay = SyncSchedule.backoff(afterFailures: state.schedule.failures(of: key) + 1)
                state.schedule.failed(key, now: now, jitter: SyncSchedule.jitter(for: delay))
            } else {
                state.schedule.parked(key)
            }
            let newFailure = !outcome.succeeded && tracked.lastFailure != outcome.message
            tracked.lastFailure = outcome.succeeded ? nil : outcome.message
            let previous = tracked.written?.ready
            let transition = previous?.status == (outcome.succeeded ? "True" : "False") ? previous!.lastTransitionTime : nowText
            let status = SecretProviderClassStatus(
                conditions: [
                    .init(
                        type: SecretProviderClassStatus.Condition.readyType,
                        status: outcome.succeeded ? "True" : "False",
                        reason: outcome.reason.rawValue,
                        message: outcome.message,
                        lastTransitionTime: transition,
                        observedGeneration: spc.generation
                    )
                ],
                lastSyncTime: tracked.lastSyncTime,
                objects: tracked.objects,
                syncedSecrets: outcome.syncedSecrets
            )
            let write = tracked.written != status
            if write { tracked.written = status }
            state.tracked[key] = tracked
            return (status, write, newFailure)
        }
        guard let update else { return }
        if outcome.succeeded {
            logger.info(
                "secret provider class synced",
                metadata: ["sync.written": "\(outcome.written.count)", "sync.objects": "\(outcome.objects.count)"]
            )
            if !outcome.written.isEmpty {
                await event(spc, .normal, "SecretSynced", "synced secret(s) \(outcome.written.joined(separator: ", "))", logger: logger)
            }
        } else {
            logger.warning("secret provider class sync failed", metadata: ["sync.reason": "\(outcome.reason.rawValue)", "error": "\(outcome.message)"])
            if update.newFailure {
                await event(spc, .warning, "SecretSyncFailed", "\(outcome.reason.rawValue): \(outcome.message)", logger: logger)
            }
        }
        if update.write {
            do {
                try await kubernetes.updateSecretProviderClassStatus(namespace: spc.namespace, name: spc.name, status: update.status, logger: logger)
            } catch {
                // Written again with the next outcome.
                state.withLock { $0.tracked[key]?.written = nil }
                logger.warning("could not write the secret provider class status", metadata: ["error": "\(error)"])
            }
        }
    }

    private func event(_ spc: SecretProviderClass, _ kind: PodEvent.Kind, _ reason: String, _ message: String, logger: Logger) async {
        do {
            try await kubernetes.recordEvent(
                SecretProviderClassEvent(namespace: spc.namespace, name: spc.name, uid: spc.uid, kind: kind, reason: reason, message: message),
                logger: logger
            )
        } catch {
            logger.debug("could not record an event", metadata: ["k8s.event.reason": "\(reason)", "error": "\(error)"])
        }
    }
}
