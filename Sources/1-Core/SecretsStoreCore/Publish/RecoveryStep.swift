import Logging

/// Restart recovery: rebuilds the volume records from this node's SecretProviderClassPodStatus objects whose
/// target is still a mounted volume written by this driver. A status whose mount is gone is left for garbage
/// collection. Recovered volumes have no request (the tokens and nodePublishSecretRef data are not stored
/// anywhere) and are refreshed once kubelet republishes them. Each class is read once per recovery, however many
/// of the recovered volumes use it: recovery runs before the driver answers Probe.
struct RecoveryStep: Sendable {
    let context: PublishContext
    /// Lists this node's pod statuses and reads their classes.
    let kubernetes: any KubernetesClient

    func run(logger: Logger) async throws(PublishError) -> [String] {
        let statuses: [SecretProviderClassPodStatus]
        do {
            statuses = try await kubernetes.podStatuses(nodeName: context.configuration.nodeID, logger: logger)
        } catch {
            throw PublishError(error)
        }
        var recovered: [String] = []
        var providers: [String: String] = [:]  // `namespace/name` → the class's provider, "" when unreadable
        for status in statuses where context.volumes.volume(at: status.targetPath) == nil {
            guard (try? await context.mountState(of: status.targetPath)) == .mounted,
                (try? context.holdsPublishedContent(status.targetPath)) == true
            else { continue }
            let classKey = "\(status.namespace)/\(status.secretProviderClassName)"
            let provider: String
            if let known = providers[classKey] {
                provider = known
            } else {
                let spc = try? await kubernetes.secretProviderClass(
                    namespace: status.namespace,
                    name: status.secretProviderClassName,
                    logger: logger
                )
                provider = spc?.provider ?? ""
                providers[classKey] = provider
            }
            context.volumes.record(
                .init(
                    request: nil,
                    pod: PodReference(namespace: status.namespace, name: status.podName, uid: status.podUID),
                    secretProviderClassName: status.secretProviderClassName,
                    provider: provider,
                    objectVersions: status.objects,
                    fetchedAt: context.monotonicNow() - context.configuration.rotation.interval,
                    podStatusUID: "",
                    secretSyncPending: false
                ),
                at: status.targetPath
            )
            recovered.append(status.targetPath)
        }
        logger.info("recovered published volumes", metadata: ["volumes.count": "\(recovered.count)"])
        return recovered
    }
}
