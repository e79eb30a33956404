import Logging

/// Writes a validated provider answer into a mounted volume: its files, its pod status, its warnings, its
/// Secrets and its record, each a step of its own (``WriteFilesStep``, ``PodStatusStep``,
/// ``MissingObjectsWarning``, ``SecretSyncStep``, ``VolumeRecordStep``), run in that order by ``run(_:to:request:spc:logger:)``.
///
/// Before any of them, the class's templates (``ClassTemplates``) compose their files into the answer, so they
/// are written, synced and refreshed as the provider's are; and, when Secrets are synced, every Secret key's
/// template is rendered once, so that a template that cannot be rendered fails the apply before anything is
/// written (``PublishError/invalidTemplate(namespace:name:_:)``).
///
/// The order follows the upstream driver (files, then the SecretProviderClassPodStatus; its Secret sync
/// follows the status it may be owned by) with one deliberate difference: unless Secrets are synced, the pod
/// status is written after the caller has answered (``PodStatusWriter``), so it is the last step here.
///
/// Whatever the volume's previous record says decides what is written besides the files: without one (a
/// first publish) the pod status is always written; with one, only when the object versions changed or its
/// write has not landed yet. The Secrets are reconciled on every apply, first publish and every refresh.
package struct ApplyStep: Sendable {
    private let files: WriteFilesStep
    private let podStatus: PodStatusStep
    private let missingObjects: MissingObjectsWarning
    private let secrets: SecretSyncStep
    private let record: VolumeRecordStep
    private let volumes: PublishedVolumes

    /// The steps, in the order they run; `volumes` holds the records they read (the previous one) and write.
    package init(
        files: WriteFilesStep,
        podStatus: PodStatusStep,
        missingObjects: MissingObjectsWarning,
        secrets: SecretSyncStep,
        record: VolumeRecordStep,
        volumes: PublishedVolumes
    ) {
        self.files = files
        self.podStatus = podStatus
        self.missingObjects = missingObjects
        self.secrets = secrets
        self.record = record
        self.volumes = volumes
    }

    /// Applies `response` to `target`, fetched for `request` from `spc`; returns whether the files changed.
    /// A failure to write the files, or the pod status a Secret sync needs first, is thrown; by then the
    /// files may be written but nothing is recorded. A failed Secret sync is not thrown (see
    /// ``SecretSyncStep``): it is recorded as pending.
    @discardableResult
    package func run(
        _ response: ProviderResponse,
        to target: String,
        request: ValidatedPublishRequest,
        spc: SecretProviderClass,
        logger: Logger
    ) async throws(PublishError) -> Bool {
        let syncsSecrets = secrets.syncs(spc)
        let response = try Self.compose(response, spc: spc, checkingSecretKeys: syncsSecrets)
        let changed = try files.write(response, to: target, provider: spc.provider, group: request.mountGroup)
        let previous = volumes.volume(at: target)
        let status = podStatus.status(for: request, spc: spc, target: target, objects: response.objectVersions)
        let writesStatus = PodStatusStep.needsWrite(status, previous: previous)
        var statusUID = previous?.podStatusUID ?? ""
        // Secrets synced for a bare pod are owned by the pod status, so the sync needs its UID first: written
        // before the answer then. Otherwise the status is written after kubelet has its answer (the last step).
        if writesStatus, syncsSecrets {
            statusUID = try await podStatus.writeBeforeAnswer(status, logger: logger)
        }
        await missingObjects.warnIfDue(response, pod: request.pod, spc: spc, previous: previous?.objectVersions, logger: logger)
        var syncPending = previous?.secretSyncPending ?? false
        if syncsSecrets {
            syncPending = await secrets.sync(
                spc,
                pod: request.pod,
                podStatus: (status.name, statusUID),
                response: response,
                isFirstSync: previous == nil,
                volumeChanged: changed || syncPending,
                logger: logger
            )
        }
        record.record(request, spc: spc, objects: status.objects, podStatusUID: statusUID, secretSyncPending: syncPending, at: target, logger: logger)
        if writesStatus, !syncsSecrets {
            podStatus.writeAfterAnswer(status, target: target, logger: logger)
        }
        return changed
    }

    /// `response` with `spc`'s composed files added; with `checkingSecretKeys`, its Secret keys' templates
    /// rendered once too (the output is discarded; the sync renders them again).
    private static func compose(
        _ response: ProviderResponse,
        spc: SecretProviderClass,
        checkingSecretKeys: Bool
    ) throws(PublishError) -> ProviderResponse {
        do {
            let templates = try ClassTemplates(spc, includingSecretObjects: checkingSecretKeys)
            guard !templates.isEmpty else { return response }
            let composed = try templates.compose(response)
            try templates.checkSecretKeys(against: composed)
            return composed
        } catch {
            throw .invalidTemplate(namespace: spc.namespace, name: spc.name, error)
        }
    }
}
