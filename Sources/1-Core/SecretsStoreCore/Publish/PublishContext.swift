import Logging

/// The seams and the per-process state that the publish, refresh, recovery and unpublish steps share, and
/// the small operations more than one step needs. Every seam error is translated into ``PublishError`` here
/// or in `PublishError+Seams.swift`, nowhere else.
struct PublishContext: Sendable {
    let kubernetes: any KubernetesClient
    let providers: any ProviderDirectory
    let mounter: any Mounter
    let fileSystem: any FileSystem
    let writer: AtomicWriter
    let monotonicNow: @Sendable () -> Duration
    let configuration: NodePublisher.Configuration
    let metrics: any DriverMetrics
    let syncer: SecretSyncer
    let locks = TargetLocks()
    let sharedFetches = SharedFetches()
    let volumes = PublishedVolumes()
    let podStatuses: PodStatusWriter

    init(
        kubernetes: any KubernetesClient,
        providers: any ProviderDirectory,
        mounter: any Mounter,
        fileSystem: any FileSystem,
        writer: AtomicWriter,
        monotonicNow: @escaping @Sendable () -> Duration,
        configuration: NodePublisher.Configuration,
        metrics: any DriverMetrics
    ) {
        self.kubernetes = kubernetes
        self.providers = providers
        self.mounter = mounter
        self.fileSystem = fileSystem
        self.writer = writer
        self.monotonicNow = monotonicNow
        self.configuration = configuration
        self.metrics = metrics
        self.syncer = SecretSyncer(kubernetes: kubernetes)
        self.podStatuses = PodStatusWriter(kubernetes: kubernetes)
    }

    // MARK: Mounts

    func mountState(of target: String) throws(PublishError) -> MountState {
        do { return try mounter.state(of: target) } catch { throw PublishError(error) }
    }

    /// Mounts the volume's tmpfs, owned by `group` (the pod's fsGroup) when there is one.
    func mountTmpfs(at target: String, group: UInt32?) throws(PublishError) {
        do { try mounter.mountTmpfs(at: target, group: group) } catch { throw PublishError(error) }
    }

    func unmount(_ target: String) throws(PublishError) {
        do { try mounter.unmount(target) } catch { throw PublishError(error) }
    }

    /// Whether a mounted target holds a volume this driver wrote (a `..data` link), rather than an empty tmpfs
    /// left by a process that died between mounting and writing.
    func holdsPublishedContent(_ target: String) throws(PublishError) -> Bool {
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

    /// Whether the volume's refresh interval (its class's `spec.refreshInterval`, else the rotation interval)
    /// has passed since the last fetch of `target` (always for an unknown one).
    func isDueForRefresh(_ target: String) -> Bool {
        guard configuration.rotation.enabled else { return false }
        guard let volume = volumes.volume(at: target) else { return true }
        return monotonicNow() - volume.fetchedAt >= (volume.refreshInterval ?? configuration.rotation.interval)
    }

    /// The class's `spec.refreshInterval` for its mounted volumes; `nil` (the rotation interval applies) when
    /// it has none or, with a warning naming the field, when it is invalid. Not read with rotation off.
    func refreshInterval(of spc: SecretProviderClass, logger: Logger) -> Duration? {
        guard configuration.rotation.enabled else { return nil }
        do {
            return try spc.refreshIntervalDuration()
        } catch {
            logger.warning(
                "ignoring invalid spec.refreshInterval; using the rotation poll interval",
                metadata: [
                    "k8s.secretproviderclass": "\(spc.namespace)/\(spc.name)", "spc.field": "\(error.field)", "error": "\(error.message)",
                    "rotation.interval": "\(configuration.rotation.interval)",
                ]
            )
            return nil
        }
    }

    // MARK: SecretProviderClass and provider

    /// Reads the SecretProviderClass and checks what the driver needs of it.
    func loadSecretProviderClass(namespace: String, name: String, logger: Logger) async throws(PublishError) -> SecretProviderClass {
        let spc: SecretProviderClass
        do {
            spc = try await kubernetes.secretProviderClass(namespace: namespace, name: name, logger: logger)
        } catch {
            throw PublishError(error, notFound: .secretProviderClassNotFound(namespace: namespace, name: name))
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
    func fetch(
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
            throw Task.isCancelled ? .cancelled : .provider(name: spc.provider, error)
        }
        metrics.providerFetched(provider: spc.provider, duration: ContinuousClock.now - start)
        try ProviderResponseValidation.validate(response, providerName: spc.provider)
        return response
    }

    // MARK: Writing a volume

    /// Writes a validated answer into a mounted target, records the pod status, remembers the volume, and
    /// syncs its Secrets. Returns whether the files changed.
    ///
    /// What is written besides the files follows from the volume's record: without one (a first publish)
    /// the pod status is always written; with one, only when the object versions changed (or its write has
    /// not landed yet). The status is written before returning only when Secrets are synced (they may be
    /// owned by it); otherwise ``PodStatusWriter`` writes it, with retries, after the caller has answered. The Secrets are
    /// reconciled on every apply (first publish and every refresh): a synced Secret someone deleted or edited,
    /// or one whose `secretObjects` entry changed, is put back; one already as desired costs a GET and no write.
    ///
    /// When the answer leaves out missing optional objects, an `OptionalObjectsMissing` warning names them on
    /// the first publish and whenever a refresh changes which objects the volume holds while some are still
    /// missing (the volume's record keeps the objects it holds, not the missing ones, so an unchanged refresh
    /// records nothing new).
    @discardableResult
    func apply(
        _ response: ProviderResponse,
        to target: String,
        request: ValidatedPublishRequest,
        spc: SecretProviderClass,
        logger: Logger
    ) async throws(PublishError) -> Bool {
        let changed = try writeFiles(response, to: target, provider: spc.provider, group: request.mountGroup)
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
        let syncsSecrets = configuration.syncSecrets && !spc.secretObjects.isEmpty
        let writesStatus = previous == nil || previous?.objectVersions != status.objects || statusUID.isEmpty
        // Secrets synced for a bare pod are owned by the pod status, so the sync needs its UID first: written
        // before the answer then. Otherwise the status is written after kubelet has its answer (below).
        if writesStatus, syncsSecrets {
            do {
                statusUID = try await kubernetes.applyPodStatus(status, logger: logger)
            } catch {
                throw PublishError(error, notFound: .kubernetesFailed("\(error)"))
            }
        }
        if !response.missingOptionalObjects.isEmpty,
            previous.map({ Set($0.objectVersions.map(\.id)) != Set(status.objects.map(\.id)) }) ?? true
        {
            let named = response.missingOptionalObjects.map { "\($0.id) (\($0.path))" }.joined(separator: ", ")
            await event(
                .init(pod: request.pod, kind: .warning, reason: PodEvent.optionalObjectsMissing,
                      message: "mounted spc \(spc.namespace)/\(spc.name) without optional objects the store does not have: \(named)"),
                logger: logger
            )
        }
        var syncPending = previous?.secretSyncPending ?? false
        if syncsSecrets {
            syncPending = await syncSecrets(
                spc,
                request: request,
                status: (status.name, statusUID),
                response: response,
                isFirstSync: previous == nil,
                volumeChanged: changed || syncPending,
                logger: logger
            )
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
                secretSyncPending: syncPending,
                refreshInterval: refreshInterval(of: spc, logger: logger)
            ),
            at: target
        )
        if writesStatus, !syncsSecrets {
            let objects = status.objects
            podStatuses.submit(status, target: target, logger: logger) { [volumes] uid in
                volumes.update(target) { volume in
                    if volume.objectVersions == objects { volume.podStatusUID = uid }
                }
            }
        }
        return changed
    }

    /// Swaps the files in atomically, owned by `group` (the request's fsGroup) when there is one; returns
    /// whether they changed. A provider that writes into the target itself (no files in its answer) must have
    /// left something there (its files keep the owners and modes it gave them).
    private func writeFiles(
        _ response: ProviderResponse,
        to target: String,
        provider: String,
        group: UInt32?
    ) throws(PublishError) -> Bool {
        guard response.files.isEmpty else {
            do {
                return try writer.write(response.files, to: target, group: group) == .written
            } catch {
                throw .writeFailed(targetPath: target, reason: error.description)
            }
        }
        let entries: [String]
        do {
            entries = try fileSystem.contentsOfDirectory(at: target)
        } catch {
            throw .writeFailed(targetPath: target, reason: error.description)
        }
        guard !entries.isEmpty else { throw .emptyVolume(provider: provider) }
        return true
    }

    /// Reconciles the volume's Secrets and reports the outcome as events; returns whether a sync is still
    /// pending (some Secret failed).
    ///
    /// Failures are events (`FailedToCreateSecret` on the first sync, `SecretRotationFailed` after). Success
    /// after the first sync is `SecretRotationComplete` (and the sync metric) only when something happened:
    /// the volume's files changed or an earlier sync had failed (`volumeChanged`), or a Secret had to be
    /// written (deleted, edited, or its `secretObjects` entry changed). A refresh that finds every Secret as
    /// desired records nothing.
    private func syncSecrets(
        _ spc: SecretProviderClass,
        request: ValidatedPublishRequest,
        status: (name: String, uid: String),
        response: ProviderResponse,
        isFirstSync: Bool,
        volumeChanged: Bool,
        logger: Logger
    ) async -> Bool {
        let start = ContinuousClock.now
        let outcome = await syncer.reconcile(
            spc,
            pod: request.pod,
            podStatus: status,
            files: response.files,
            missing: response.missingOptionalObjects,
            certificateParts: response.certificateParts,
            logger: logger
        )
        for failure in outcome.failures {
            let reason = isFirstSync ? PodEvent.failedToCreateSecret : PodEvent.secretRotationFailed
            await event(.init(pod: request.pod, kind: .warning, reason: reason, message: failure.message), logger: logger)
        }
        guard outcome.failures.isEmpty else { return true }
        guard isFirstSync || volumeChanged || !outcome.written.isEmpty else { return false }
        metrics.secretSynced(provider: spc.provider, duration: ContinuousClock.now - start)
        if !isFirstSync {
            if !volumeChanged {
                logger.info("restored synced secrets", metadata: ["k8s.secrets": "\(outcome.written.joined(separator: ","))"])
            }
            await event(
                .init(pod: request.pod, kind: .normal, reason: PodEvent.secretRotationComplete,
                      message: "successfully rotated K8s secrets for spc \(spc.namespace)/\(spc.name)"),
                logger: logger
            )
        }
        return false
    }

    /// Records an event; best effort.
    func event(_ event: PodEvent, logger: Logger) async {
        do {
            try await kubernetes.recordEvent(event, logger: logger)
        } catch {
            logger.debug("failed to record event", metadata: ["event.reason": "\(event.reason)", "error": "\(error)"])
        }
    }
}
