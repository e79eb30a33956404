import Logging

/// Publishes, refreshes, recovers and unpublishes secrets volumes: the NodePublishVolume / NodeUnpublishVolume
/// pipeline and the rotation loop's cycle, over the seams (Kubernetes client, provider directory, mounter,
/// file system, clocks), so every step is testable without root, gRPC or a cluster.
///
/// Each operation is its own step type (``PublishStep``, ``RefreshStep``, ``RecoveryStep``,
/// ``UnpublishStep``), built once here over the state they all share (``PublishContext``) and given only the
/// other collaborators it uses; what a publish does with a target is decided by the pure
/// ``PublishDecision/decide(_:)``, and writing a fetched answer into a volume is ``ApplyStep``'s steps in
/// order. The records, locks and fetches stay inside: callers read a volume's record, never change it.
///
/// Promises:
/// - arguments are checked before anything is touched;
/// - one operation per target path at a time (a concurrent one gets ``PublishError/operationPending(targetPath:)``);
/// - a publish that fails, or is cancelled, leaves no tmpfs it mounted, and an empty volume is never reported
///   as published;
/// - an already-published volume is left alone unless rotation is on and its interval has passed (its class's
///   valid `spec.refreshInterval`, else `--rotation-poll-interval`; the class as read at the last fetch); then
///   the provider is asked again and the files are swapped atomically, and a failure keeps the old files;
/// - with ``Configuration/restartOnRotation``, a refresh that changed a volume's files restarts the pod's
///   opted-in workload once for all nodes (``RolloutTrigger``); without it no workload is read or written;
/// - unpublish is idempotent: an absent or unmounted target succeeds;
/// - a volume's SecretProviderClassPodStatus is written after the publish answered (retried until it lands,
///   see ``PodStatusWriter``), except when the class syncs Secrets, which may be owned by it.
package final class NodePublisher: Sendable {
    /// Fixed facts about this driver instance.
    package struct Configuration: Sendable {
        /// `--nodeid`, written into the SecretProviderClassPodStatus label.
        package var nodeID: String
        /// `--enable-secret-rotation` and `--rotation-poll-interval`.
        package var rotation: RotationPolicy
        /// `--enable-secret-sync`: mirror `secretObjects` into Kubernetes Secrets.
        package var syncSecrets: Bool
        /// `--enable-rotation-restart`: after a refresh changed a volume's files, restart the pod's Deployment,
        /// StatefulSet or DaemonSet when it opted in (``RolloutTrigger``). Off: no workload is ever read.
        package var restartOnRotation: Bool

        /// A configuration; rotation, sync and restart on rotation off unless given.
        package init(nodeID: String, rotation: RotationPolicy = .disabled, syncSecrets: Bool = false, restartOnRotation: Bool = false) {
            self.nodeID = nodeID
            self.rotation = rotation
            self.syncSecrets = syncSecrets
            self.restartOnRotation = restartOnRotation
        }
    }

    /// What a successful publish or refresh did.
    package enum PublishOutcome: Sendable, Equatable {
        /// The volume was mounted and written for the first time.
        case published
        /// The volume was already published and not due for a fetch; nothing was done.
        case alreadyPublished
        /// The volume was fetched again; `changed` tells whether the files were swapped.
        case refreshed(changed: Bool)
        /// A re-fetch failed; the old files stay and the failure is reported here, not to kubelet
        /// (kubelet removes a volume whose republish fails, kubernetes/kubernetes#121271).
        case refreshFailed(PublishError)
    }

    private let publishStep: PublishStep
    private let refreshStep: RefreshStep
    private let recoveryStep: RecoveryStep
    private let unpublishStep: UnpublishStep
    private let volumes: PublishedVolumes
    private let sharedFetches: SharedFetches
    /// The operations running and ended (publish, unpublish, rotation cycle, recovery).
    package let activity = OperationActivity()
    /// The pod status writes that run after kubelet has its answer: background work that the driver's service
    /// group drains at shutdown (``PodStatusWriter/shutdown(drainingFor:)``) and tests wait for.
    package let podStatusWrites: PodStatusWriter

    /// - Parameters:
    ///   - monotonicNow: a monotonic instant, for the rotation gate.
    ///   - wallClockSeconds: seconds since the Unix epoch, for the writer's directory names.
    package init(
        kubernetes: any KubernetesClient,
        providers: any ProviderDirectory,
        mounter: any Mounter,
        fileSystem: any FileSystem,
        monotonicNow: @escaping @Sendable () -> Duration,
        wallClockSeconds: @escaping @Sendable () -> Int64,
        configuration: Configuration,
        metrics: any DriverMetrics = NoMetrics()
    ) {
        let volumes = PublishedVolumes()
        let podStatusWrites = PodStatusWriter(kubernetes: kubernetes)
        let sharedFetches = SharedFetches()
        let context = PublishContext(
            mounter: mounter,
            fileSystem: fileSystem,
            monotonicNow: monotonicNow,
            configuration: configuration,
            metrics: metrics,
            locks: TargetLocks(),
            volumes: volumes
        )
        let events = PodEventRecorder(kubernetes: kubernetes)
        let source = ProviderFetch(kubernetes: kubernetes, providers: providers, metrics: metrics)
        let apply = ApplyStep(
            files: WriteFilesStep(writer: AtomicWriter(fileSystem: fileSystem, now: wallClockSeconds), fileSystem: fileSystem),
            podStatus: PodStatusStep(kubernetes: kubernetes, writer: podStatusWrites, volumes: volumes, nodeID: configuration.nodeID),
            missingObjects: MissingObjectsWarning(events: events),
            secrets: SecretSyncStep(enabled: configuration.syncSecrets, syncer: SecretSyncer(kubernetes: kubernetes), events: events, metrics: metrics),
            record: VolumeRecordStep(volumes: volumes, rotation: configuration.rotation, monotonicNow: monotonicNow),
            volumes: volumes
        )
        let refreshStep = RefreshStep(
            context: context, source: source, apply: apply, events: events, rollouts: RolloutTrigger(kubernetes: kubernetes)
        )
        self.publishStep = PublishStep(context: context, source: source, sharedFetches: sharedFetches, apply: apply, refresh: refreshStep)
        self.refreshStep = refreshStep
        self.recoveryStep = RecoveryStep(context: context, kubernetes: kubernetes)
        self.unpublishStep = UnpublishStep(context: context, podStatuses: podStatusWrites)
        self.volumes = volumes
        self.sharedFetches = sharedFetches
        self.podStatusWrites = podStatusWrites
    }

    /// The record of the volume published at `target` (a copy), or `nil`.
    package func volume(at target: String) -> PublishedVolumes.Volume? {
        volumes.volume(at: target)
    }

    /// The target paths of every volume this instance has published or recovered.
    package var publishedTargets: [String] { volumes.targets }

    /// How many first publishes so far were served by a provider fetch another publish had started.
    package var joinedFetchCount: Int { sharedFetches.joinedCount }

    /// Runs NodePublishVolume for `request`. Honours the calling task's cancellation: a cancelled publish
    /// stops its provider and Kubernetes calls, undoes a tmpfs it mounted and throws ``PublishError/cancelled``.
    @discardableResult
    package func publish(_ request: PublishRequest, logger: Logger) async throws(PublishError) -> PublishOutcome {
        try await activity.track { () async throws(PublishError) in try await publishStep.run(request, logger: logger) }
    }

    /// One rotation cycle: every volume due for a fetch is fetched again, one provider call per group of
    /// volumes that would make the same request. Volumes whose publish is in flight are skipped this cycle.
    @discardableResult
    package func rotate(logger: Logger) async -> [String: PublishOutcome] {
        await activity.track { await refreshStep.rotate(logger: logger) }
    }

    /// How long the rotation loop may wait before its next cycle so that no volume waits much past its
    /// interval: the smaller of `interval` (`--rotation-poll-interval`) and the shortest class
    /// `spec.refreshInterval` among the published volumes.
    package func rotationWait(atMost interval: Duration) -> Duration {
        min(interval, volumes.shortestRefreshInterval ?? interval)
    }

    /// Rebuilds the volume records from this node's SecretProviderClassPodStatus objects whose target is still
    /// a mounted volume written by this driver; returns their target paths.
    @discardableResult
    package func recover(logger: Logger) async throws(PublishError) -> [String] {
        try await activity.track { () async throws(PublishError) in try await recoveryStep.run(logger: logger) }
    }

    /// Runs NodeUnpublishVolume: unmounts the tmpfs and removes the target directory. Idempotent.
    package func unpublish(_ request: UnpublishRequest, logger: Logger) async throws(PublishError) {
        try await activity.track { () async throws(PublishError) in try await unpublishStep.run(request, logger: logger) }
    }

    /// Accepts a provider's answer only if it is safe to write (see ``ProviderResponseValidation``).
    package static func validate(_ response: ProviderResponse, providerName: String) throws(PublishError) {
        try ProviderResponseValidation.validate(response, providerName: providerName)
    }
}
