import Logging

/// The last in-line step of applying a provider's answer: remembers the volume in ``PublishedVolumes`` (the
/// request to fetch again with, the objects it holds, when they were fetched, its pod status UID, whether a
/// Secret sync is pending) together with its class's refresh interval.
package struct VolumeRecordStep: Sendable {
    private let volumes: PublishedVolumes
    private let rotation: RotationPolicy
    private let monotonicNow: @Sendable () -> Duration

    /// Records into `volumes`, stamped with `monotonicNow`; `rotation` (`--enable-secret-rotation`,
    /// `--rotation-poll-interval`) decides whether a class's `spec.refreshInterval` is read.
    package init(volumes: PublishedVolumes, rotation: RotationPolicy, monotonicNow: @escaping @Sendable () -> Duration) {
        self.volumes = volumes
        self.rotation = rotation
        self.monotonicNow = monotonicNow
    }

    /// Records the volume at `target`, just fetched for `request` from `spc`, holding `objects` (sorted by id),
    /// replacing any earlier record.
    package func record(
        _ request: ValidatedPublishRequest,
        spc: SecretProviderClass,
        objects: [ObjectVersion],
        podStatusUID: String,
        secretSyncPending: Bool,
        at target: String,
        logger: Logger
    ) {
        volumes.record(
            .init(
                request: request,
                pod: request.pod,
                secretProviderClassName: spc.name,
                provider: spc.provider,
                objectVersions: objects,
                fetchedAt: monotonicNow(),
                podStatusUID: podStatusUID,
                secretSyncPending: secretSyncPending,
                refreshInterval: refreshInterval(of: spc, logger: logger)
            ),
            at: target
        )
    }

    /// The class's `spec.refreshInterval` for its mounted volumes; `nil` (the rotation interval applies) when
    /// it has none or, with a warning naming the field, when it is invalid. Not read with rotation off.
    package func refreshInterval(of spc: SecretProviderClass, logger: Logger) -> Duration? {
        guard rotation.enabled else { return nil }
        do {
            return try spc.refreshIntervalDuration()
        } catch {
            logger.warning(
                "ignoring invalid spec.refreshInterval; using the rotation poll interval",
                metadata: [
                    "k8s.secretproviderclass": "\(spc.namespace)/\(spc.name)", "spc.field": "\(error.field)", "error": "\(error.message)",
                    "rotation.interval": "\(rotation.interval)",
                ]
            )
            return nil
        }
    }
}
