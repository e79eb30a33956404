import Logging

/// The SecretProviderClassPodStatus step of applying a provider's answer: which status a volume records,
/// whether it must be written, and the two ways of writing it.
///
/// A status is written on a first publish, when the object versions changed, and while an earlier write has
/// not landed (the volume's record has no status UID yet). It is written before the caller answers only when
/// the volume's Secrets are synced (they may be owned by it, so the sync needs its UID,
/// ``writeBeforeAnswer(_:logger:)``); otherwise ``PodStatusWriter`` writes it, with retries, after the caller
/// has answered (``writeAfterAnswer(_:target:logger:)``), and its UID goes into the volume's record once it
/// landed.
package struct PodStatusStep: Sendable {
    private let kubernetes: any KubernetesClient
    private let writer: PodStatusWriter
    private let volumes: PublishedVolumes
    private let nodeID: String

    /// Writes through `kubernetes` (before the answer) or `writer` (after it), keeps landed UIDs in `volumes`,
    /// and labels statuses with `nodeID` (`--nodeid`).
    package init(kubernetes: any KubernetesClient, writer: PodStatusWriter, volumes: PublishedVolumes, nodeID: String) {
        self.kubernetes = kubernetes
        self.writer = writer
        self.volumes = volumes
        self.nodeID = nodeID
    }

    /// The status of the volume at `target` holding `objects` for `request`'s pod.
    package func status(
        for request: ValidatedPublishRequest,
        spc: SecretProviderClass,
        target: String,
        objects: [ObjectVersion]
    ) -> SecretProviderClassPodStatus {
        SecretProviderClassPodStatus(
            namespace: request.pod.namespace,
            podName: request.pod.name,
            podUID: request.pod.uid,
            nodeName: nodeID,
            secretProviderClassName: spc.name,
            targetPath: target,
            objects: objects
        )
    }

    /// Whether `status` must be written, given the volume's `previous` record: there is none (a first publish),
    /// its object versions differ, or its status write has not landed yet.
    package static func needsWrite(_ status: SecretProviderClassPodStatus, previous: PublishedVolumes.Volume?) -> Bool {
        guard let previous else { return true }
        return previous.objectVersions != status.objects || previous.podStatusUID.isEmpty
    }

    /// Writes `status` now, before the caller answers; returns its UID. A failure fails the caller.
    package func writeBeforeAnswer(_ status: SecretProviderClassPodStatus, logger: Logger) async throws(PublishError) -> String {
        do {
            return try await kubernetes.applyPodStatus(status, logger: logger)
        } catch {
            throw PublishError(error)
        }
    }

    /// Hands `status` to the ``PodStatusWriter`` and returns at once. Once the write landed, its UID goes into
    /// the record of the volume at `target` if that still holds the status's objects (a newer status is on its
    /// way otherwise).
    package func writeAfterAnswer(_ status: SecretProviderClassPodStatus, target: String, logger: Logger) {
        let objects = status.objects
        writer.submit(status, target: target, logger: logger) { [volumes] uid in
            volumes.update(target) { volume in
                if volume.objectVersions == objects { volume.podStatusUID = uid }
            }
        }
    }
}
