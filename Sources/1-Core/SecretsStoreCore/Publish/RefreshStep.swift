import Logging

/// Fetching again for volumes already published: the rotation loop's cycle, and a kubelet republish whose
/// rotation interval has passed. One provider call serves every volume of a group (same ``FetchKey``); a
/// failure keeps the old files and goes to an event and the metrics, never to kubelet.
///
/// With restart on rotation on, the pods of a group whose files changed are handed to the ``RolloutTrigger``
/// once per group, after the group's target locks are released (in a rotation cycle); its failures never
/// change an outcome.
struct RefreshStep: Sendable {
    let context: PublishContext
    /// The class, its provider and the provider's answer.
    let source: ProviderFetch
    /// Writes a fetched answer into each volume of a group.
    let apply: ApplyStep
    /// The rotation events (`MountRotationComplete`, `MountRotationFailed`).
    let events: PodEventRecorder
    /// Restarts opted-in workloads; used only with ``NodePublisher/Configuration/restartOnRotation``.
    let rollouts: RolloutTrigger

    /// One rotation cycle over every group (same ``FetchKey``) with a volume that is due, each refreshed for all
    /// of its volumes that have a request to fetch with, due or not: the group's one fetch serves them all, and
    /// volumes refreshed together fall due together, so a group costs one fetch per interval however its pods'
    /// start times are spread. Takes each target's lock, skipping targets whose publish or unpublish is in
    /// flight.
    func rotate(logger: Logger) async -> [String: NodePublisher.PublishOutcome] {
        let fetchable = context.volumes.all.filter { $0.value.request != nil }
        let dueGroups = Set(fetchable.compactMap { target, volume in context.isDueForRefresh(target) ? FetchKey.of(volume) : nil })
        let members = fetchable.filter { _, volume in FetchKey.of(volume).map(dueGroups.contains) ?? false }
        var outcomes: [String: NodePublisher.PublishOutcome] = [:]
        for group in groups(Array(members.keys)) {
            let locked = group.filter { context.locks.tryLock($0) }
            let refreshed = await refreshGroup(locked, logger: logger)
            for target in locked { context.locks.unlock(target) }
            outcomes.merge(refreshed.outcomes) { _, new in new }
            await triggerRollouts(refreshed.rotation, logger: logger)
        }
        return outcomes
    }

    /// Refreshes `targets`, whose locks the caller holds.
    func refreshLocked(_ targets: [String], logger: Logger) async -> [String: NodePublisher.PublishOutcome] {
        var outcomes: [String: NodePublisher.PublishOutcome] = [:]
        for group in groups(targets) {
            let refreshed = await refreshGroup(group, logger: logger)
            outcomes.merge(refreshed.outcomes) { _, new in new }
            await triggerRollouts(refreshed.rotation, logger: logger)
        }
        return outcomes
    }

    /// Hands a group's changed pods to the rollout trigger (restart on rotation on, and some files changed).
    private func triggerRollouts(_ rotation: RolloutTrigger.Rotation?, logger: Logger) async {
        guard context.configuration.restartOnRotation, let rotation, !rotation.pods.isEmpty else { return }
        await rollouts.trigger(rotation, logger: logger)
    }

    /// `targets` grouped by fetch key, groups and their members in a stable order.
    private func groups(_ targets: [String]) -> [[String]] {
        var groups: [String: [String]] = [:]
        for target in targets.sorted() {
            guard let volume = context.volumes.volume(at: target), let key = FetchKey.of(volume) else { continue }
            groups[key, default: []].append(target)
        }
        return groups.sorted(by: { $0.key < $1.key }).map(\.value)
    }

    /// One fetch for the group's first volume, applied to every volume of the group; with restart on
    /// rotation on, also the rotation to hand to the trigger: the pods whose files changed.
    private func refreshGroup(
        _ group: [String],
        logger: Logger
    ) async -> (outcomes: [String: NodePublisher.PublishOutcome], rotation: RolloutTrigger.Rotation?) {
        guard let lead = group.first, let leadVolume = context.volumes.volume(at: lead), let leadRequest = leadVolume.request else {
            return ([:], nil)
        }
        let start = ContinuousClock.now
        var outcomes: [String: NodePublisher.PublishOutcome] = [:]
        var rotation: RolloutTrigger.Rotation?
        do {
            let spc = try await source.loadSecretProviderClass(
                namespace: leadRequest.pod.namespace,
                name: leadVolume.secretProviderClassName,
                logger: logger
            )
            let provider = try source.provider(named: spc.provider)
            let response = try await source.fetch(
                leadRequest,
                spc: spc,
                provider: provider,
                currentVersions: leadVolume.objectVersions,
                logger: logger
            )
            for target in group {
                guard let volume = context.volumes.volume(at: target), let request = volume.request else { continue }
                do {
                    let changed = try await apply.run(response, to: target, request: request, spc: spc, logger: logger)
                    if volume.objectVersions != response.objectVersions.sorted(by: { $0.id < $1.id }) || changed {
                        await events.record(
                            .init(pod: volume.pod, kind: .normal, reason: PodEvent.mountRotationComplete,
                                  message: "successfully rotated mounted contents for spc \(spc.namespace)/\(spc.name)"),
                            logger: logger
                        )
                    }
                    context.metrics.rotated(provider: spc.provider, changed: changed, duration: ContinuousClock.now - start)
                    outcomes[target] = .refreshed(changed: changed)
                    if changed, context.configuration.restartOnRotation {
                        rotation = rotation ?? RolloutTrigger.Rotation(
                            namespace: spc.namespace, secretProviderClassName: spc.name,
                            objectVersions: response.objectVersions, pods: []
                        )
                        rotation?.pods.append(volume.pod)
                    }
                } catch {
                    outcomes[target] = await failed(target, volume: volume, error: error, logger: logger)
                }
            }
        } catch {
            for target in group {
                guard let volume = context.volumes.volume(at: target) else { continue }
                outcomes[target] = await failed(target, volume: volume, error: error, logger: logger)
            }
        }
        return (outcomes, rotation)
    }

    /// A failed refresh keeps the old files: kubelet removes a volume whose republish fails
    /// (kubernetes/kubernetes#121271), so the failure goes to an event and the metrics instead.
    private func failed(
        _ target: String,
        volume: PublishedVolumes.Volume,
        error: PublishError,
        logger: Logger
    ) async -> NodePublisher.PublishOutcome {
        logger.warning("volume refresh failed; keeping the files it had", metadata: ["csi.target_path": "\(target)", "error": "\(error)"].addingCause(of: error))
        context.metrics.rotationFailed(provider: volume.provider, errorType: ErrorType(error))
        // Try again next cycle rather than at once.
        context.volumes.update(target) { $0.fetchedAt = context.monotonicNow() }
        await events.record(
            .init(pod: volume.pod, kind: .warning, reason: PodEvent.mountRotationFailed,
                  message: "failed to rotate mounted contents for spc \(volume.pod.namespace)/\(volume.secretProviderClassName): \(error)"),
            logger: logger
        )
        return .refreshFailed(error)
    }
}

/// What to fetch once for several volumes: volumes with the same key would send the provider the same
/// request but for pod-specific attributes (pod name and UID, tokens, ephemeral flag), so one answer serves
/// them all. The key holds a hash of the rest of the volume context and of the secrets, never their values.
enum FetchKey {
    /// The key of a published volume; `nil` for one recovered after a restart that kubelet has not
    /// republished yet (it has no request to fetch with).
    static func of(_ volume: PublishedVolumes.Volume) -> String? {
        guard let request = volume.request else { return nil }
        return of(request, secretProviderClassName: volume.secretProviderClassName, provider: volume.provider)
    }

    /// The key of one request.
    static func of(_ request: ValidatedPublishRequest, secretProviderClassName: String, provider: String) -> String {
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
}

/// A small, stable string hash (FNV-1a, 64 bit) for grouping keys and the `rotated-versions` digest
/// (``RotatedVersions``); not for security. Each string is followed by a 0xff separator byte. Its output is
/// part of the pod template annotation every node compares: changing it makes opted-in workloads roll once
/// more after an upgrade.
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
