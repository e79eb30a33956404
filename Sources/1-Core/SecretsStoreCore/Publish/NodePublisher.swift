import Logging

/// Publishes, refreshes, recovers and unpublishes secrets volumes: the NodePublishVolume / NodeUnpublishVolume
/// pipeline and the rotation loop's cycle, over the seams (Kubernetes client, provider directory, mounter,
/// file system, clocks), so every step is testable without root, gRPC or a cluster.
///
/// Each operation is its own step type (``PublishStep``, ``RefreshStep``, ``RecoveryStep``,
/// ``UnpublishStep``) over one shared ``PublishContext``; what a publish does with a target is decided by the
/// pure ``PublishDecision/decide(_:)``.
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

    private let context: PublishContext
    /// The operations running and ended (publish, unpublish, rotation cycle, recovery).
    package let activity = OperationActivity()

    /// First-publish fetches in flight, shared by requests with the same fetch key.
    package var sharedFetches: SharedFetches { context.sharedFetches }
    /// The volumes this instance has published.
    package var volumes: PublishedVolumes { context.volumes }
    /// The pod status writes that run after kubelet has its answer.
    package var podStatusWrites: PodStatusWriter { context.podStatuses }

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
        context = PublishContext(
            kubernetes: kubernetes,
            providers: providers,
            mounter: mounter,
            fileSystem: fileSystem,
            writer: AtomicWriter(fileSystem: fileSystem, now: wallClockSeconds),
            monotonicNow: monotonicNow,
            configuration: configuration,
            metrics: metrics
        )
    }

    /// Runs NodePublishVolume for `request`. Honours the calling task's cancellation: a cancelled publish
    /// stops its provider and Kubernetes calls, undoes a tmpfs it mounted and throws ``PublishError/cancelled``.
    @discardableResult
    package func publish(_ request: PublishRequest, logger: Logger) async throws(PublishError) -> PublishOutcome {
        try await activity.track { () async throws(PublishError) in try await PublishStep(context: context).run(request, logger: logger) }
    }

    /// One rotation cycle: every volume due for a fetch is fetched again, one provider call per group of
    /// volumes that would make the same request. Volumes whose publish is in flight are skipped this cycle.
    @discardableResult
    package func rotate(logger: Logger) async -> [String: PublishOutcome] {
        await activity.track { await RefreshStep(context: context).rotate(logger: logger) }
    }

    /// How long the rotation loop may wait before its next cycle so that no volume waits much past its
    /// interval: the smaller of `interval` (`--rotation-poll-interval`) and the shortest class
    /// `spec.refreshInterval` among the published volumes.
    package func rotationWait(atMost interval: Duration) -> Duration {
        min(interval, context.volumes.shortestRefreshInterval ?? interval)
    }

    /// Rebuilds the volume records from this node's SecretProviderClassPodStatus objects whose target is still
    /// a mounted volume written by this driver; returns their target paths.
    @discardableResult
    package func recover(logger: Logger) async throws(PublishError) -> [String] {
        try await activity.track { () async throws(PublishError) in try await RecoveryStep(context: context).run(logger: logger) }
    }

    /// Runs NodeUnpublishVolume: unmounts the tmpfs and removes the target directory. Idempotent.
    package func unpublish(_ request: UnpublishRequest, logger: Logger) throws(PublishError) {
        try activity.track { () throws(PublishError) in try UnpublishStep(context: context).run(request, logger: logger) }
    }

    /// Accepts a provider's answer only if it is safe to write (see ``ProviderResponseValidation``).
    package static func validate(_ response: ProviderResponse, providerName: String) throws(PublishError) {
        try ProviderResponseValidation.validate(response, providerName: providerName)
    }

    /// The fetch key of a published volume (see ``FetchKey``).
    package static func fetchKey(for volume: PublishedVolumes.Volume) -> String? {
        FetchKey.of(volume)
    }
}
