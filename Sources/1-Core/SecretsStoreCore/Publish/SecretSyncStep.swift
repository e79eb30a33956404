import Logging

/// The Secret-sync step of applying a provider's answer (`--enable-secret-sync`): reconciles the volume's
/// `secretObjects` Secrets with ``SecretSyncer`` and reports the outcome as pod events and the sync metric.
///
/// Promises:
/// - with the flag off, or a class without `secretObjects`, nothing is synced (``syncs(_:)`` is `false`);
/// - a failure never fails the caller: it is an event per failed Secret (`FailedToCreateSecret` on the first
///   sync, `SecretRotationFailed` after) and the sync stays pending, so the next refresh tries again;
/// - success is the sync metric, and after the first sync also a `SecretRotationComplete` event, only when
///   something happened: it is the first sync, the volume's files changed or an earlier sync had failed
///   (`volumeChanged`), or a Secret had to be written (deleted, edited, or its `secretObjects` entry changed).
///   A refresh that finds every Secret as desired records nothing.
package struct SecretSyncStep: Sendable {
    private let enabled: Bool
    private let syncer: SecretSyncer
    private let events: PodEventRecorder
    private let metrics: any DriverMetrics

    /// Syncs when `enabled` (`--enable-secret-sync`) through `syncer`, reporting to `events` and `metrics`.
    package init(enabled: Bool, syncer: SecretSyncer, events: PodEventRecorder, metrics: any DriverMetrics) {
        self.enabled = enabled
        self.syncer = syncer
        self.events = events
        self.metrics = metrics
    }

    /// Whether volumes of `spc` have Secrets to sync.
    package func syncs(_ spc: SecretProviderClass) -> Bool {
        enabled && !spc.secretObjects.isEmpty
    }

    /// Reconciles the Secrets of `pod`'s volume of `spc` with `response`; returns whether a sync is still
    /// pending (some Secret failed). `podStatus` owns the Secrets of a bare pod.
    package func sync(
        _ spc: SecretProviderClass,
        pod: PodReference,
        podStatus: (name: String, uid: String),
        response: ProviderResponse,
        isFirstSync: Bool,
        volumeChanged: Bool,
        logger: Logger
    ) async -> Bool {
        let start = ContinuousClock.now
        let outcome = await syncer.reconcile(
            spc,
            pod: pod,
            podStatus: podStatus,
            files: response.files,
            missing: response.missingOptionalObjects,
            certificateParts: response.certificateParts,
            logger: logger
        )
        for failure in outcome.failures {
            let reason = isFirstSync ? PodEvent.failedToCreateSecret : PodEvent.secretRotationFailed
            await events.record(.init(pod: pod, kind: .warning, reason: reason, message: failure.message), logger: logger)
        }
        guard outcome.failures.isEmpty else { return true }
        guard isFirstSync || volumeChanged || !outcome.written.isEmpty else { return false }
        metrics.secretSynced(provider: spc.provider, duration: ContinuousClock.now - start)
        if !isFirstSync {
            if !volumeChanged {
                logger.info("restored synced secrets", metadata: ["k8s.secrets": "\(outcome.written.joined(separator: ","))"])
            }
            await events.record(
                .init(pod: pod, kind: .normal, reason: PodEvent.secretRotationComplete,
                      message: "successfully rotated K8s secrets for spc \(spc.namespace)/\(spc.name)"),
                logger: logger
            )
        }
        return false
    }
}
