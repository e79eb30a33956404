import Logging

/// NodeUnpublishVolume: unmounts the tmpfs and removes the target directory. Idempotent: an absent target or
/// a plain directory succeeds. The directory is removed only once nothing is mounted on it, so a failed
/// unmount never deletes files through a live mount.
struct UnpublishStep: Sendable {
    let context: PublishContext
    /// The pending pod status writes; the target's is cancelled.
    let podStatuses: PodStatusWriter

    func run(_ request: UnpublishRequest, logger: Logger) async throws(PublishError) {
        do {
            try await unpublish(request, logger: logger)
            context.metrics.unpublished()
        } catch {
            context.metrics.unpublishFailed()
            throw error
        }
    }

    private func unpublish(_ request: UnpublishRequest, logger: Logger) async throws(PublishError) {
        guard !request.volumeID.isEmpty else { throw .invalidRequest("Volume ID missing in request") }
        guard !request.targetPath.isEmpty else { throw .invalidRequest("Target path missing in request") }
        let target = request.targetPath
        var logger = logger
        logger[metadataKey: "csi.volume_id"] = "\(request.volumeID)"
        logger[metadataKey: "csi.target_path"] = "\(target)"

        guard context.locks.tryLock(target) else { throw .operationPending(targetPath: target) }
        defer { context.locks.unlock(target) }
        podStatuses.cancel(target)

        switch try await context.mountState(of: target) {
        case .absent:
            context.volumes.forget(target)
            logger.debug("target already absent")
            return
        case .mounted, .corrupt:
            try await context.unmount(target)
        case .directory:
            break
        }
        guard try await context.mountState(of: target) == .directory else {
            throw .mountFailed(targetPath: target, reason: "still mounted after unmount")
        }
        do {
            try context.fileSystem.removeItem(at: target)
        } catch {
            throw PublishError(error, target: target, during: .removingDirectory)
        }
        context.volumes.forget(target)
        logger.info("volume unpublished")
    }
}
