import Logging

/// Publishes and unpublishes secrets volumes: the whole NodePublishVolume / NodeUnpublishVolume pipeline as a
/// sequence of small steps over the seams (Kubernetes client, provider directory, mounter, file system,
/// clock), so every step is testable without root, gRPC or a cluster.
///
/// Promises:
/// - arguments are checked before anything is touched;
/// - one operation per target path at a time (a concurrent one gets ``PublishError/operationPending(targetPath:)``);
/// - a publish that fails leaves no tmpfs it mounted, and an empty volume is never reported as published;
/// - an already-published volume is left alone unless rotation is on and its interval has passed; then the
///   provider is asked again and the files are swapped atomically, and a failure keeps the old files;
/// - unpublish is idempotent: an absent or unmounted target succeeds.
package final class NodePublisher: Sendable {
    /// Fixed facts about this driver instance.
    package struct Configuration: Sendable {
        /// `--nodeid`, written into the SecretProviderClassPodStatus label.
        package var nodeID: String
        package var rotation: RotationPolicy

        package init(nodeID: String, rotation: RotationPolicy = .disabled) {
            self.nodeID = nodeID
            self.rotation = rotation
        }
    }

    private let kubernetes: any KubernetesClient
    private let providers: any ProviderDirectory
    private let mounter: any Mounter
    private let fileSystem: any FileSystem
    private let writer: AtomicWriter
    private let monotonicNow: @Sendable () -> Duration
    private let configuration: Configuration
    private let locks = TargetLocks()
    /// The volumes this instance has published.
    package let volumes = PublishedVolumes()

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
        configuration: Configuration
    ) {
        self.kubernetes = kubernetes
        self.providers = providers
        self.mounter = mounter
        self.fileSystem = fileSystem
        self.writer = AtomicWriter(fileSystem: fileSystem, now: wallClockSeconds)
        self.monotonicNow = monotonicNow
        self.configuration = configuration
    }

    /// What a successful publish did.
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

    // MARK: - Publish

    /// Runs NodePublishVolume for `request`.
    @discardableResult
    package func publish(_ request: PublishRequest, logger: Logger) async throws(PublishError) -> PublishOutcome {
        let request = try ValidatedPublishRequest(request)
        var logger = logger
        logger[metadataKey: "csi.volume_id"] = "\(request.volumeID)"
        logger[metadataKey: "csi.target_path"] = "\(request.targetPath)"
        logger[metadataKey: "k8s.pod"] = "\(request.pod.namespace)/\(request.pod.name)"
        logger[metadataKey: "spc.name"] = "\(request.secretProviderClassName)"

        guard locks.tryLock(request.targetPath) else { throw .operationPending(targetPath: request.targetPath) }
        defer { locks.unlock(request.targetPath) }

        let mountedBefore = try prepareTarget(request.targetPath, logger: logger)
        let hasContent = mountedBefore ? try holdsPublishedContent(request.targetPath) : false
        if hasContent {
            guard isDueForRefresh(request.targetPath) else {
                logger.debug("volume already published")
                return .alreadyPublished
            }
        }

        let spc = try await loadSecretProviderClass(for: request, logger: logger)
        logger[metadataKey: "provider.name"] = "\(spc.provider)"
        let provider = try providers.provider(named: spc.provider)

        if !mountedBefore {
            try mounter.mountTmpfs(at: request.targetPath)
        }
        do {
            let changed = try await fetchAndWrite(request, spc: spc, provider: provider, logger: logger)
            if hasContent {
                logger.info("volume refreshed", metadata: ["rotation.changed": "\(changed)"])
                return .refreshed(changed: changed)
            }
            logger.info("volume published")
            return .published
        } catch {
            if hasContent {
                logger.warning("volume refresh failed; keeping the files it had", metadata: ["error": "\(error)"])
                return .refreshFailed(error)
            }
            // Compensation: the target held nothing of ours before this call, so it must hold nothing after it,
            // and kubelet's retry starts from a clean directory.
            do {
                try mounter.unmount(request.targetPath)
            } catch {
                logger.error("failed to unmount after a failed publish", metadata: ["error": "\(error)"])
            }
            logger.warning("publish failed", metadata: ["error": "\(error)"])
            throw error
        }
    }

    /// Makes sure the target directory exists and reports whether a tmpfs is mounted on it. A stale mount is
    /// cleaned up and reported as an error, so the next call starts afresh.
    private func prepareTarget(_ target: String, logger: Logger) throws(PublishError) -> Bool {
        switch try mounter.state(of: target) {
        case .mounted:
            return true
        case .directory:
            return false
        case .absent:
            do {
                try fileSystem.createDirectories(at: target, permissions: 0o750)
            } catch {
                throw .mountFailed(targetPath: target, reason: "failed to create target path: \(error.reason)")
            }
            return false
        case .corrupt(let reason):
            logger.warning("found a stale mount at the target; unmounting it", metadata: ["reason": "\(reason)"])
            try mounter.unmount(target)
            throw .mountFailed(targetPath: target, reason: "stale mount (\(reason)) was unmounted; retry")
        }
    }

    /// Whether a mounted target holds a volume this driver wrote (a `..data` link), rather than an empty tmpfs
    /// left by a process that died between mounting and writing.
    private func holdsPublishedContent(_ target: String) throws(PublishError) -> Bool {
        do {
            if try fileSystem.symbolicLinkDestination(at: target + "/" + AtomicWriter.dataLinkName) != nil {
                return true
            }
            // A provider that writes files itself leaves no `..data`; any entry counts as content then.
            return try !fileSystem.contentsOfDirectory(at: target).isEmpty
        } catch {
            throw .mountFailed(targetPath: target, reason: error.description)
        }
    }

    private func isDueForRefresh(_ target: String) -> Bool {
        guard configuration.rotation.enabled else { return false }
        guard let volume = volumes.volume(at: target) else { return true }
        return monotonicNow() - volume.fetchedAt >= configuration.rotation.interval
    }

    private func loadSecretProviderClass(
        for request: ValidatedPublishRequest,
        logger: Logger
    ) async throws(PublishError) -> SecretProviderClass {
        let namespace = request.pod.namespace
        let name = request.secretProviderClassName
        let spc: SecretProviderClass
        do {
            spc = try await kubernetes.secretProviderClass(namespace: namespace, name: name, logger: logger)
        } catch {
            throw Self.publishError(from: error, notFound: .secretProviderClassNotFound(namespace: namespace, name: name))
        }
        guard !spc.provider.isEmpty else {
            throw .secretProviderClassInvalid(namespace: namespace, name: name, reason: "provider not set")
        }
        guard ProviderRequestBuilder.isValidProviderName(spc.provider) else {
            throw .secretProviderClassInvalid(
                namespace: namespace,
                name: name,
                reason: "provider name \"\(spc.provider)\" must match ^[a-zA-Z0-9_-]{0,30}$"
            )
        }
        guard !spc.parameters.isEmpty else {
            throw .secretProviderClassInvalid(namespace: namespace, name: name, reason: "parameters not set")
        }
        return spc
    }

    /// Asks the provider for the objects, validates the answer, writes it, and records the pod status.
    /// Returns whether the files changed.
    private func fetchAndWrite(
        _ request: ValidatedPublishRequest,
        spc: SecretProviderClass,
        provider: any SecretsProvider,
        logger: Logger
    ) async throws(PublishError) -> Bool {
        let providerRequest = ProviderRequestBuilder.build(
            for: request,
            secretProviderClass: spc,
            currentObjectVersions: volumes.volume(at: request.targetPath)?.objectVersions ?? []
        )
        let response: ProviderResponse
        do {
            response = try await provider.fetch(providerRequest, logger: logger)
        } catch {
            throw .provider(name: spc.provider, error)
        }
        guard !response.objectVersions.isEmpty else {
            throw .provider(name: spc.provider, .invalidResponse("missing object versions"))
        }
        for file in response.files {
            try PayloadPath.validate(file.path)
        }
        try checkForDuplicatePaths(response.files)

        let changed: Bool
        if response.files.isEmpty {
            // A legacy provider writes into the target itself; make sure it did.
            let entries: [String]
            do {
                entries = try fileSystem.contentsOfDirectory(at: request.targetPath)
            } catch {
                throw .writeFailed(targetPath: request.targetPath, reason: error.description)
            }
            guard !entries.isEmpty else { throw .emptyVolume(provider: spc.provider) }
            changed = true
        } else {
            do {
                changed = try writer.write(response.files, to: request.targetPath) == .written
            } catch {
                throw .writeFailed(targetPath: request.targetPath, reason: error.description)
            }
        }

        let status = SecretProviderClassPodStatus(
            namespace: request.pod.namespace,
            podName: request.pod.name,
            podUID: request.pod.uid,
            nodeName: configuration.nodeID,
            secretProviderClassName: spc.name,
            targetPath: request.targetPath,
            objects: response.objectVersions
        )
        do {
            try await kubernetes.applyPodStatus(status, logger: logger)
        } catch {
            throw Self.publishError(from: error, notFound: .kubernetesFailed("\(error)"))
        }
        volumes.record(
            .init(
                pod: request.pod,
                secretProviderClassName: spc.name,
                provider: spc.provider,
                objectVersions: status.objects,
                fetchedAt: monotonicNow()
            ),
            at: request.targetPath
        )
        return changed
    }

    private func checkForDuplicatePaths(_ files: [SecretFile]) throws(PublishError) {
        var seen = Set<String>()
        for file in files where !seen.insert(file.path).inserted {
            throw .invalidPayload(path: file.path, reason: "the provider returned this path twice")
        }
        // A file may not also be a directory of another file (`a` and `a/b`).
        for file in files {
            var prefix = Substring(file.path)
            while let slash = prefix.lastIndex(of: "/") {
                prefix = prefix[..<slash]
                if seen.contains(String(prefix)) {
                    throw .invalidPayload(path: file.path, reason: "\(prefix) is both a file and a directory")
                }
            }
        }
    }

    private static func publishError(from error: any Error, notFound: PublishError) -> PublishError {
        switch error as? KubernetesClientError {
        case .notFound: return notFound
        case .forbidden(let message): return .kubernetesForbidden(message)
        case .unavailable(let message): return .kubernetesUnavailable(message)
        case .conflict(let message): return .kubernetesUnavailable("conflict: \(message)")
        case .rejected(let status, let message): return .kubernetesFailed("HTTP \(status): \(message)")
        case nil: return error is CancellationError ? .cancelled : .kubernetesUnavailable("\(error)")
        }
    }

    // MARK: - Unpublish

    /// Runs NodeUnpublishVolume: unmounts the tmpfs and removes the target directory. Idempotent.
    package func unpublish(_ request: UnpublishRequest, logger: Logger) throws(PublishError) {
        guard !request.volumeID.isEmpty else { throw .invalidRequest("Volume ID missing in request") }
        guard !request.targetPath.isEmpty else { throw .invalidRequest("Target path missing in request") }
        let target = request.targetPath
        var logger = logger
        logger[metadataKey: "csi.volume_id"] = "\(request.volumeID)"
        logger[metadataKey: "csi.target_path"] = "\(target)"

        guard locks.tryLock(target) else { throw .operationPending(targetPath: target) }
        defer { locks.unlock(target) }

        switch try mounter.state(of: target) {
        case .absent:
            volumes.forget(target)
            logger.debug("target already absent")
            return
        case .mounted, .corrupt:
            try mounter.unmount(target)
        case .directory:
            break
        }
        // Remove the directory only once nothing is mounted on it, so a failed unmount never deletes files
        // through a live mount.
        guard try mounter.state(of: target) == .directory else {
            throw .mountFailed(targetPath: target, reason: "still mounted after unmount")
        }
        do {
            try fileSystem.removeItem(at: target)
        } catch {
            throw .mountFailed(targetPath: target, reason: "failed to remove target path: \(error.reason)")
        }
        volumes.forget(target)
        logger.info("volume unpublished")
    }
}
