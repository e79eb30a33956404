import Logging

/// NodePublishVolume: validates the request, takes the target's lock, observes the target, and carries out
/// what ``PublishDecision/decide(_:)`` returns.
struct PublishStep: Sendable {
    let context: PublishContext
    /// The class, its provider and the provider's answer.
    let source: ProviderFetch
    /// First-publish fetches in flight, shared by requests with the same ``FetchKey``.
    let sharedFetches: SharedFetches
    /// Writes a fetched answer into the volume.
    let apply: ApplyStep
    /// Fetches again for a published volume whose refresh is due.
    let refresh: RefreshStep

    func run(_ request: PublishRequest, logger: Logger) async throws(PublishError) -> NodePublisher.PublishOutcome {
        let request = try ValidatedPublishRequest(request)
        var logger = logger
        logger[metadataKey: "csi.volume_id"] = "\(request.volumeID)"
        logger[metadataKey: "csi.target_path"] = "\(request.targetPath)"
        logger[metadataKey: "k8s.pod"] = "\(request.pod.namespace)/\(request.pod.name)"
        logger[metadataKey: "spc.name"] = "\(request.secretProviderClassName)"

        let target = request.targetPath
        guard context.locks.tryLock(target) else { throw .operationPending(targetPath: target) }
        defer { context.locks.unlock(target) }

        let action: PublishAction
        do {
            action = PublishDecision.decide(try await observe(target))
        } catch {
            context.metrics.publishFailed(provider: "", errorType: ErrorType(error))
            throw error
        }
        switch action {
        case .cleanStaleMount(let reason):
            logger.warning("found a stale mount at the target; unmounting it", metadata: ["reason": "\(reason)"])
            let failure: PublishError
            do {
                try await context.unmount(target)
                failure = .mountFailed(targetPath: target, reason: "stale mount (\(reason)) was unmounted; retry")
            } catch {
                failure = error
            }
            context.metrics.publishFailed(provider: "", errorType: ErrorType(failure))
            throw failure
        case .keepPublished(let rememberRequest):
            logger.debug("volume already published")
            if rememberRequest, let volume = remember(request) {
                context.metrics.published(provider: volume.provider)
            }
            return .alreadyPublished
        case .refresh:
            let volume = remember(request)
            let outcome = await refresh.refreshLocked([target], logger: logger)[target]
            context.metrics.published(provider: volume?.provider ?? "")
            return outcome ?? .alreadyPublished
        case .fill(let plan):
            return try await fill(target, request: request, plan: plan, logger: logger)
        }
    }

    /// What is at the target now: the only I/O before the decision.
    private func observe(_ target: String) async throws(PublishError) -> PublishObservation {
        let state = try await context.mountState(of: target)
        let holdsContent = state == .mounted ? try context.holdsPublishedContent(target) : false
        return PublishObservation(
            mountState: state,
            holdsContent: holdsContent,
            isKnownVolume: context.volumes.volume(at: target) != nil,
            rotationEnabled: context.configuration.rotation.enabled,
            refreshDue: context.isDueForRefresh(target)
        )
    }

    /// Keeps kubelet's fresh tokens and secrets for the rotation loop; returns the updated record.
    private func remember(_ request: ValidatedPublishRequest) -> PublishedVolumes.Volume? {
        context.volumes.update(request.targetPath) { $0.request = request }
        return context.volumes.volume(at: request.targetPath)
    }

    /// Mounts (as the plan says), fetches through the shared fetches, writes, and on any failure or
    /// cancellation undoes what the plan says.
    private func fill(
        _ target: String,
        request: ValidatedPublishRequest,
        plan: FillPlan,
        logger: Logger
    ) async throws(PublishError) -> NodePublisher.PublishOutcome {
        var logger = logger
        var providerName = ""
        do throws(PublishError) {
            if plan.createDirectory {
                do {
                    try context.fileSystem.createDirectories(at: target, permissions: 0o750)
                } catch {
                    throw PublishError(error, target: target, during: .creatingDirectory)
                }
            }
            let spc = try await source.loadSecretProviderClass(
                namespace: request.pod.namespace,
                name: request.secretProviderClassName,
                logger: logger
            )
            providerName = spc.provider
            logger[metadataKey: "provider.name"] = "\(spc.provider)"
            let provider = try source.provider(named: spc.provider)
            try Self.checkNotCancelled()
            if plan.mount {
                try await context.mountTmpfs(at: target, group: request.mountGroup)
            }
            do throws(PublishError) {
                // Pods that start together (a Deployment scaling up on this node) and would send the provider the
                // same request share one fetch; each keeps its own cancellation.
                let key = FetchKey.of(request, secretProviderClassName: spc.name, provider: spc.provider)
                let response = try await sharedFetches.share(key) { [source, logger] () async throws(PublishError) -> ProviderResponse in
                    try await source.fetch(request, spc: spc, provider: provider, currentVersions: [], logger: logger)
                }
                try Self.checkNotCancelled()
                try await apply.run(response, to: target, request: request, spc: spc, logger: logger)
            } catch {
                if plan.unmountOnFailure {
                    do {
                        try await context.unmount(target)
                    } catch {
                        logger.error("failed to unmount after a failed publish", metadata: ["error": "\(error)"])
                    }
                }
                throw error
            }
            logger.info("volume published")
            context.metrics.published(provider: spc.provider)
            return .published
        } catch {
            logger.warning("publish failed", metadata: ["error": "\(error)"].addingCause(of: error))
            context.metrics.publishFailed(provider: providerName, errorType: ErrorType(error))
            throw error
        }
    }

    private static func checkNotCancelled() throws(PublishError) {
        if Task.isCancelled { throw .cancelled }
    }
}
