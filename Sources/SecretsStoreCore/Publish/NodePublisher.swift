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
        /// `--enable-secret-sync`: mirror `secretObjects` into Kubernetes Secrets.
        package var syncSecrets: Bool

        package init(nodeID: String, rotation: RotationPolicy = .disabled, syncSecrets: Bool = false) {
            self.nodeID = nodeID
            self.rotation = rotation
            self.syncSecrets = syncSecrets
        }
    }

    private let kubernetes: any KubernetesClient
    private let providers: any ProviderDirectory
    private let mounter: any Mounter
    private let fileSystem: any FileSystem
    private let writer: AtomicWriter
    private let monotonicNow: @Sendable () -> Duration
    private let configuration: Configuration
    private let metrics: any DriverMetrics
    private let syncer: SecretSyncer
    private let locks = TargetLocks()
    /// First-publish fetches in flight, shared by requests with the same fetch key.
    package let sharedFetches = SharedFetches()
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
        configuration: Configuration,
        metrics: any DriverMetrics = NoMetrics()
    ) {
        self.metrics = metrics
        self.syncer = SecretSyncer(kubernetes: kubernetes)
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

        let mountedBefore: Bool
        let hasContent: Bool
        do {
            mountedBefore = try prepareTarget(request.targetPath, logger: logger)
            hasContent = mountedBefore ? try holdsPublishedContent(request.targetPath) : false
        } catch {
            metrics.publishFailed(provider: "", errorType: ErrorType(error))
            throw error
        }
        if hasContent, volumes.volume(at: request.targetPath) != nil {
            // A republish: keep kubelet's fresh tokens and secrets for the rotation loop.
            volumes.update(request.targetPath) { $0.request = request }
            let volume = volumes.volume(at: request.targetPath)!
            guard isDueForRefresh(request.targetPath) else {
                logger.debug("volume already published")
                metrics.published(provider: volume.provider)
                return .alreadyPublished
            }
            let outcome = await refresh([request.targetPath], lockHeld: true, logger: logger)
            metrics.published(provider: volume.provider)
            return outcome[request.targetPath] ?? .alreadyPublished
        }
        if hasContent, !configuration.rotation.enabled {
            logger.debug("volume already published")
            return .alreadyPublished
        }

        var providerName = ""
        do throws(PublishError) {
            let spc = try await loadSecretProviderClass(
                namespace: request.pod.namespace,
                name: request.secretProviderClassName,
                logger: logger
            )
            providerName = spc.provider
            logger[metadataKey: "provider.name"] = "\(spc.provider)"
            let provider = try providers.provider(named: spc.provider)
            if !mountedBefore {
                try mounter.mountTmpfs(at: request.targetPath)
            }
            do throws(PublishError) {
                // Pods that start together (a Deployment scaling up on this node) and would send the provider the
                // same request share one fetch.
                let key = Self.fetchKey(for: request, secretProviderClassName: spc.name, provider: spc.provider)
                let response = try await sharedFetches.share(key) { [self, logger] () async throws(PublishError) -> ProviderResponse in
                    try await fetch(request, spc: spc, provider: provider, currentVersions: [], logger: logger)
                }
                try await apply(response, to: request.targetPath, request: request, spc: spc, firstPublish: true, logger: logger)
            } catch {
                // Compensation: the target held nothing of ours before this call, so it must hold nothing after
                // it, and kubelet's retry starts from a clean directory. A volume that already had content (one
                // published before a driver restart) keeps it.
                if !hasContent {
                    do {
                        try mounter.unmount(request.targetPath)
                    } catch {
                        logger.error("failed to unmount after a failed publish", metadata: ["error": "\(error)"])
                    }
                }
                throw error
            }
            logger.info("volume published")
            metrics.published(provider: spc.provider)
            return .published
        } catch {
            logger.warning("publish failed", metadata: ["error": "\(error)"])
            metrics.publishFailed(provider: providerName, errorType: ErrorType(error))
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
        namespace: String,
        name: String,
        logger: Logger
    ) async throws(PublishError) -> SecretProviderClass {
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

    /// Asks the provider for the objects and validates the answer before anything is written.
    private func fetch(
        _ request: ValidatedPublishRequest,
        spc: SecretProviderClass,
        provider: any SecretsProvider,
        currentVersions: [ObjectVersion],
        logger: Logger
    ) async throws(PublishError) -> ProviderResponse {
        let providerRequest = ProviderRequestBuilder.build(
            for: request,
            secretProviderClass: spc,
            currentObjectVersions: currentVersions
        )
        let start = ContinuousClock.now
        let response: ProviderResponse
        do {
            response = try await provider.fetch(providerRequest, logger: logger)
        } catch {
            throw .provider(name: spc.provider, error)
        }
        metrics.providerFetched(provider: spc.provider, duration: ContinuousClock.now - start)
        try Self.validate(response, providerName: spc.provider)
        return response
    }

    /// Accepts a provider's answer only if it is safe to write: it names at least one object version, every file
    /// path passes ``PayloadPath/validate(_:)``, and no path repeats or is also the directory of another path.
    package static func validate(_ response: ProviderResponse, providerName: String) throws(PublishError) {
        guard !response.objectVersions.isEmpty else {
            throw .provider(name: providerName, .invalidResponse("missing object versions"))
        }
        for file in response.files {
            try PayloadPath.validate(file.path)
        }
        try checkForDuplicatePaths(response.files)
    }

    /// Writes a validated answer into a mounted target, records the pod status, remembers the volume, and
    /// syncs its Secrets. Returns whether the files changed.
    @discardableResult
    private func apply(
        _ response: ProviderResponse,
        to target: String,
        request: ValidatedPublishRequest,
        spc: SecretProviderClass,
        firstPublish: Bool,
        logger: Logger
    ) async throws(PublishError) -> Bool {
        let changed: Bool
        if response.files.isEmpty {
            // A legacy provider writes into the target itself; make sure it did.
            let entries: [String]
            do {
                entries = try fileSystem.contentsOfDirectory(at: target)
            } catch {
                throw .writeFailed(targetPath: target, reason: error.description)
            }
            guard !entries.isEmpty else { throw .emptyVolume(provider: spc.provider) }
            changed = true
        } else {
            do {
                changed = try writer.write(response.files, to: target) == .written
            } catch {
                throw .writeFailed(targetPath: target, reason: error.description)
            }
        }

        let status = SecretProviderClassPodStatus(
            namespace: request.pod.namespace,
            podName: request.pod.name,
            podUID: request.pod.uid,
            nodeName: configuration.nodeID,
            secretProviderClassName: spc.name,
            targetPath: target,
            objects: response.objectVersions
        )
        let previous = volumes.volume(at: target)
        var statusUID = previous?.podStatusUID ?? ""
        if firstPublish || previous?.objectVersions != status.objects || statusUID.isEmpty {
            do {
                statusUID = try await kubernetes.applyPodStatus(status, logger: logger)
            } catch {
                throw Self.publishError(from: error, notFound: .kubernetesFailed("\(error)"))
            }
        }
        var syncPending = previous?.secretSyncPending ?? false
        if configuration.syncSecrets, !spc.secretObjects.isEmpty, firstPublish || changed || syncPending {
            let start = ContinuousClock.now
            let failures = await syncer.sync(
                spc,
                pod: request.pod,
                podStatus: (status.name, statusUID),
                files: response.files,
                logger: logger
            )
            syncPending = !failures.isEmpty
            for failure in failures {
                let reason = firstPublish ? PodEvent.failedToCreateSecret : PodEvent.secretRotationFailed
                await event(.init(pod: request.pod, kind: .warning, reason: reason, message: failure.message), logger: logger)
            }
            if failures.isEmpty {
                metrics.secretSynced(provider: spc.provider, duration: ContinuousClock.now - start)
                if !firstPublish {
                    await event(
                        .init(pod: request.pod, kind: .normal, reason: PodEvent.secretRotationComplete,
                              message: "successfully rotated K8s secrets for spc \(spc.namespace)/\(spc.name)"),
                        logger: logger
                    )
                }
            }
        }
        volumes.record(
            .init(
                request: request,
                pod: request.pod,
                secretProviderClassName: spc.name,
                provider: spc.provider,
                objectVersions: status.objects,
                fetchedAt: monotonicNow(),
                podStatusUID: statusUID,
                secretSyncPending: syncPending
            ),
            at: target
        )
        return changed
    }

    private func event(_ event: PodEvent, logger: Logger) async {
        do {
            try await kubernetes.recordEvent(event, logger: logger)
        } catch {
            logger.debug("failed to record event", metadata: ["event.reason": "\(event.reason)", "error": "\(error)"])
        }
    }

    // MARK: - Rotation

    /// What to fetch once for several volumes: volumes with the same key would send the provider the same
    /// request but for pod-specific attributes, so one answer serves them all.
    package static func fetchKey(for volume: PublishedVolumes.Volume) -> String? {
        guard let request = volume.request else { return nil }
        return fetchKey(for: request, secretProviderClassName: volume.secretProviderClassName, provider: volume.provider)
    }

    /// The fetch key of one request (see ``fetchKey(for:)``).
    package static func fetchKey(
        for request: ValidatedPublishRequest,
        secretProviderClassName: String,
        provider: String
    ) -> String {
        let podSpecific: Set<String> = [
            VolumeContextKey.podName, VolumeContextKey.podUID, VolumeContextKey.serviceAccountTokens, VolumeContextKey.ephemeral,
        ]
        let context = request.volumeContext.filter { !podSpecific.contains($0.key) }.sorted { $0.key < $1.key }
        let secrets = request.secrets.filter { $0.key != VolumeContextKey.serviceAccountTokens }.sorted { $0.key < $1.key }
        var hasher = FNV1a()
        for (key, value) in context { hasher.add(key); hasher.add(value) }
        hasher.add("|")
        for (key, value) in secrets { hasher.add(key); hasher.add(value) }
        return "\(request.pod.namespace)/\(secretProviderClassName)|\(provider)|\(request.pod.serviceAccountName)|\(hasher.value)"
    }

    /// One rotation cycle: every volume due for a fetch is fetched again, one provider call per group of
    /// volumes that would make the same request. Volumes whose publish is in flight are skipped this cycle.
    @discardableResult
    package func rotate(logger: Logger) async -> [String: PublishOutcome] {
        let due = volumes.all.filter { isDueForRefresh($0.key) && $0.value.request != nil }
        return await refresh(Array(due.keys), lockHeld: false, logger: logger)
    }

    /// Fetches again for `targets`, grouped by ``fetchKey(for:)``.
    private func refresh(_ targets: [String], lockHeld: Bool, logger: Logger) async -> [String: PublishOutcome] {
        var groups: [String: [String]] = [:]
        for target in targets.sorted() {
            guard let volume = volumes.volume(at: target), let key = Self.fetchKey(for: volume) else { continue }
            groups[key, default: []].append(target)
        }
        var outcomes: [String: PublishOutcome] = [:]
        for (_, group) in groups.sorted(by: { $0.key < $1.key }) {
            outcomes.merge(await refreshGroup(group, lockHeld: lockHeld, logger: logger)) { _, new in new }
        }
        return outcomes
    }

    private func refreshGroup(_ group: [String], lockHeld: Bool, logger: Logger) async -> [String: PublishOutcome] {
        var locked: [String] = []
        for target in group where lockHeld || locks.tryLock(target) {
            locked.append(target)
        }
        defer {
            if !lockHeld { for target in locked { locks.unlock(target) } }
        }
        guard let lead = locked.first, let leadVolume = volumes.volume(at: lead), let leadRequest = leadVolume.request else {
            return [:]
        }
        let start = ContinuousClock.now
        var outcomes: [String: PublishOutcome] = [:]
        do {
            let spc = try await loadSecretProviderClass(
                namespace: leadRequest.pod.namespace,
                name: leadVolume.secretProviderClassName,
                logger: logger
            )
            let provider = try providers.provider(named: spc.provider)
            let response = try await fetch(
                leadRequest,
                spc: spc,
                provider: provider,
                currentVersions: leadVolume.objectVersions,
                logger: logger
            )
            for target in locked {
                guard let volume = volumes.volume(at: target), let request = volume.request else { continue }
                do {
                    let changed = try await apply(response, to: target, request: request, spc: spc, firstPublish: false, logger: logger)
                    if volume.objectVersions != response.objectVersions.sorted(by: { $0.id < $1.id }) || changed {
                        await event(
                            .init(pod: volume.pod, kind: .normal, reason: PodEvent.mountRotationComplete,
                                  message: "successfully rotated mounted contents for spc \(spc.namespace)/\(spc.name)"),
                            logger: logger
                        )
                    }
                    metrics.rotated(provider: spc.provider, changed: changed, duration: ContinuousClock.now - start)
                    outcomes[target] = .refreshed(changed: changed)
                } catch {
                    outcomes[target] = await rotationFailed(target, volume: volume, error: error, logger: logger)
                }
            }
        } catch {
            for target in locked {
                guard let volume = volumes.volume(at: target) else { continue }
                outcomes[target] = await rotationFailed(target, volume: volume, error: error, logger: logger)
            }
        }
        return outcomes
    }

    /// A failed refresh keeps the old files: kubelet removes a volume whose republish fails
    /// (kubernetes/kubernetes#121271), so the failure goes to an event and the metrics instead.
    private func rotationFailed(
        _ target: String,
        volume: PublishedVolumes.Volume,
        error: PublishError,
        logger: Logger
    ) async -> PublishOutcome {
        logger.warning("volume refresh failed; keeping the files it had", metadata: ["csi.target_path": "\(target)", "error": "\(error)"])
        metrics.rotationFailed(provider: volume.provider, errorType: ErrorType(error))
        // Try again next cycle rather than at once.
        volumes.update(target) { $0.fetchedAt = monotonicNow() }
        await event(
            .init(pod: volume.pod, kind: .warning, reason: PodEvent.mountRotationFailed,
                  message: "failed to rotate mounted contents for spc \(volume.pod.namespace)/\(volume.secretProviderClassName): \(error)"),
            logger: logger
        )
        return .refreshFailed(error)
    }

    // MARK: - Restart recovery

    /// Rebuilds the volume records from this node's SecretProviderClassPodStatus objects whose target is still
    /// a mounted volume written by this driver. A status whose mount is gone is left for garbage collection.
    /// Recovered volumes are refreshed once kubelet republishes them (which brings the tokens and secrets back).
    @discardableResult
    package func recover(logger: Logger) async throws -> [String] {
        let statuses = try await kubernetes.podStatuses(nodeName: configuration.nodeID, logger: logger)
        var recovered: [String] = []
        for status in statuses where volumes.volume(at: status.targetPath) == nil {
            guard (try? mounter.state(of: status.targetPath)) == .mounted,
                (try? holdsPublishedContent(status.targetPath)) == true
            else { continue }
            let spc = try? await kubernetes.secretProviderClass(namespace: status.namespace, name: status.secretProviderClassName, logger: logger)
            volumes.record(
                .init(
                    request: nil,
                    pod: PodReference(namespace: status.namespace, name: status.podName, uid: status.podUID),
                    secretProviderClassName: status.secretProviderClassName,
                    provider: spc?.provider ?? "",
                    objectVersions: status.objects,
                    fetchedAt: monotonicNow() - configuration.rotation.interval,
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

    private static func checkForDuplicatePaths(_ files: [SecretFile]) throws(PublishError) {
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
        do {
            try unpublishVolume(request, logger: logger)
            metrics.unpublished()
        } catch {
            metrics.unpublishFailed()
            throw error
        }
    }

    private func unpublishVolume(_ request: UnpublishRequest, logger: Logger) throws(PublishError) {
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

/// A small, stable string hash (FNV-1a, 64 bit) for grouping keys; not for security.
struct FNV1a {
    private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    mutating func add(_ text: String) {
        for byte in text.utf8 {
            value ^= UInt64(byte)
            value = value &* 0x100_0000_01b3
        }
        value ^= 0xff
        value = value &* 0x100_0000_01b3
    }
}
