import Logging

/// Restart on rotation (`--enable-rotation-restart`): after a SecretProviderClass's content changed in the
/// volumes of some pods, the Deployments, StatefulSets and DaemonSets those pods belong to that opted in get a
/// new pod template annotation, so their controllers replace the pods (a rolling update, as
/// `kubectl rollout restart` does). For applications that read their secrets only at start.
///
/// Promises:
/// - only workloads whose `metadata.annotations` carry ``optInAnnotation`` = `"true"` are patched; the others
///   are read and left alone;
/// - the patch is a JSON merge patch of one key, ``rotatedVersionsAnnotation``, at
///   `spec.template.metadata.annotations`, conditional on the `resourceVersion` just read (a conflict is read
///   again and retried as ``RetryPolicy/conflictingWrites`` says); no other field is touched;
/// - the value names each SecretProviderClass with the digest of its content (``RotatedVersions``). Every
///   node computes the same digest for the same content, and a template that already carries it is not
///   patched, so many nodes rotating the same SecretProviderClass cause one rollout, not one per node;
/// - a patch emits `RolloutTriggered` (`Normal`) on the workload; a failure is logged and emitted as
///   ``PodEvent/rolloutTriggerFailed`` (`Warning`) on the pods concerned, and is never thrown: the refresh
///   that called it has already succeeded;
/// - messages and log lines name workloads, pods and SecretProviderClasses, never secret bytes or tokens
///   (the digest covers object versions only, never content).
///
/// This is the seam every trigger goes through: the refresh step calls it with the pods of one fetch group
/// whose files changed; a controller that learns of a rotation another way can call it with the pods it
/// knows of.
package struct RolloutTrigger: Sendable {
    /// On a Deployment, StatefulSet or DaemonSet (`metadata.annotations`): `"true"` opts its pods in.
    package static let optInAnnotation = "secrets-store.csi.k8s.io/restart-on-rotation"
    /// On the pod template (`spec.template.metadata.annotations`), written by the driver: see ``RotatedVersions``.
    package static let rotatedVersionsAnnotation = "secrets-store.csi.k8s.io/rotated-versions"

    /// A SecretProviderClass whose content changed, and the pods whose volumes now hold it.
    package struct Rotation: Sendable, Equatable {
        /// The SecretProviderClass's namespace (its pods' namespace).
        package var namespace: String
        /// The SecretProviderClass's `metadata.name`.
        package var secretProviderClassName: String
        /// The versions the volumes hold now, in any order.
        package var objectVersions: [ObjectVersion]
        /// The candidate pods; duplicates and pods without a name are ignored.
        package var pods: [PodReference]

        /// A rotation of `namespace/secretProviderClassName` to `objectVersions` in `pods`' volumes.
        package init(namespace: String, secretProviderClassName: String, objectVersions: [ObjectVersion], pods: [PodReference]) {
            self.namespace = namespace
            self.secretProviderClassName = secretProviderClassName
            self.objectVersions = objectVersions
            self.pods = pods
        }

        /// ``RotatedVersions/digest(namespace:name:versions:)`` of this rotation.
        package var digest: String {
            RotatedVersions.digest(namespace: namespace, name: secretProviderClassName, versions: objectVersions)
        }
    }

    /// What happened to one workload, or to a pod whose workload could not be found out.
    package enum Outcome: Sendable, Equatable {
        /// The pod template was patched: its pods are being replaced.
        case triggered(WorkloadReference)
        /// The template already carried this content's digest (another node patched it): nothing written.
        case alreadyCurrent(WorkloadReference)
        /// The workload has no ``RolloutTrigger/optInAnnotation`` = `"true"`: nothing written.
        case notOptedIn(WorkloadReference)
        /// Reading the pod, its ReplicaSet or the workload, or patching it, failed; `message` is in the
        /// Warning event. `workload` is `nil` when the pod's owner could not be read.
        case failed(workload: WorkloadReference?, message: String)
    }

    private let kubernetes: any KubernetesClient

    /// A trigger reading and patching through `kubernetes`.
    package init(kubernetes: any KubernetesClient) {
        self.kubernetes = kubernetes
    }

    /// Restarts the opted-in workloads of `rotation.pods` whose template does not carry the rotation's digest
    /// yet. Bare pods, Jobs and other owners are skipped, as are pods, ReplicaSets and workloads that no
    /// longer exist and pods being deleted. Never throws; the outcomes are in a stable order.
    @discardableResult
    package func trigger(_ rotation: Rotation, logger: Logger) async -> [Outcome] {
        var logger = logger
        logger[metadataKey: "spc.name"] = "\(rotation.namespace)/\(rotation.secretProviderClassName)"
        let digest = rotation.digest
        var outcomes: [Outcome] = []
        var podsByWorkload: [WorkloadReference: [PodReference]] = [:]
        var replicaSetOwners: [String: WorkloadReference?] = [:]
        var seen: Set<PodReference> = []
        for pod in rotation.pods where !pod.name.isEmpty && seen.insert(pod).inserted {
            do {
                guard let workload = try await owner(of: pod, replicaSets: &replicaSetOwners, logger: logger) else { continue }
                podsByWorkload[workload, default: []].append(pod)
            } catch {
                let message = "failed to restart the workload of pod \(pod.namespace)/\(pod.name) after spc "
                    + "\(rotation.namespace)/\(rotation.secretProviderClassName) rotated: \(Self.describe(error))"
                await failed(message: message, pods: [pod], logger: logger)
                outcomes.append(.failed(workload: nil, message: message))
            }
        }
        let ordered = podsByWorkload.keys.sorted { ($0.kind.rawValue, $0.name) < ($1.kind.rawValue, $1.name) }
        for workload in ordered {
            let name = "\(workload.kind.rawValue) \(workload.namespace)/\(workload.name)"
            do {
                guard let outcome = try await roll(workload, rotation: rotation, digest: digest, logger: logger) else { continue }
                outcomes.append(outcome)
                guard case .triggered = outcome else {
                    logger.debug("rollout not needed", metadata: ["k8s.workload": "\(name)", "outcome": "\(outcome)"])
                    continue
                }
                logger.info("rollout triggered", metadata: ["k8s.workload": "\(name)", "spc.digest": "\(digest)"])
                await event(
                    WorkloadEvent(
                        workload: workload,
                        kind: .normal,
                        reason: WorkloadEvent.rolloutTriggered,
                        message: "restarting the pods of \(name): spc \(rotation.namespace)/\(rotation.secretProviderClassName) "
                            + "rotated to new object versions (\(Self.rotatedVersionsAnnotation) \(rotation.secretProviderClassName)=\(digest))"
                    ),
                    logger: logger
                )
            } catch {
                let message = "failed to restart \(name) after spc \(rotation.namespace)/\(rotation.secretProviderClassName) "
                    + "rotated: \(Self.describe(error))"
                await failed(message: message, pods: podsByWorkload[workload] ?? [], logger: logger)
                outcomes.append(.failed(workload: workload, message: message))
            }
        }
        return outcomes
    }

    // MARK: Steps

    /// The Deployment (through its ReplicaSet), StatefulSet or DaemonSet that owns `pod`; `nil` for a bare pod,
    /// another owner, a pod or ReplicaSet that is gone, or a pod being deleted.
    private func owner(
        of pod: PodReference,
        replicaSets: inout [String: WorkloadReference?],
        logger: Logger
    ) async throws(KubernetesClientError) -> WorkloadReference? {
        let info: PodInfo
        do {
            info = try await kubernetes.pod(namespace: pod.namespace, name: pod.name, logger: logger)
        } catch {
            if case .notFound = error { return nil }
            throw error
        }
        // Being deleted, or a new pod of the same name (a StatefulSet's): its volume is not the one refreshed.
        guard !info.terminating, pod.uid.isEmpty || info.uid.isEmpty || pod.uid == info.uid else { return nil }
        for owner in info.ownerReferences where owner.apiVersion.hasPrefix("apps/") {
            switch owner.kind {
            case WorkloadReference.Kind.statefulSet.rawValue:
                return WorkloadReference(kind: .statefulSet, namespace: pod.namespace, name: owner.name, uid: owner.uid)
            case WorkloadReference.Kind.daemonSet.rawValue:
                return WorkloadReference(kind: .daemonSet, namespace: pod.namespace, name: owner.name, uid: owner.uid)
            case "ReplicaSet":
                if let known = replicaSets[owner.name] { return known }
                let deployment: WorkloadReference?
                do {
                    let owners = try await kubernetes.replicaSetOwners(namespace: pod.namespace, name: owner.name, logger: logger)
                    deployment = owners.first { $0.kind == WorkloadReference.Kind.deployment.rawValue && $0.apiVersion.hasPrefix("apps/") }
                        .map { WorkloadReference(kind: .deployment, namespace: pod.namespace, name: $0.name, uid: $0.uid) }
                } catch {
                    if case .notFound = error { deployment = nil } else { throw error.naming("replicaset \(pod.namespace)/\(owner.name)") }
                }
                replicaSets[owner.name] = .some(deployment)
                return deployment
            default:
                continue
            }
        }
        return nil
    }

    /// Reads the workload and patches its template unless it has not opted in or already carries `digest`;
    /// `nil` when the workload is gone (or is another object of the same name).
    private func roll(
        _ workload: WorkloadReference,
        rotation: Rotation,
        digest: String,
        logger: Logger
    ) async throws(KubernetesClientError) -> Outcome? {
        let policy = RetryPolicy.conflictingWrites
        var attempt = 0
        while true {
            attempt += 1
            let current: Workload
            do {
                current = try await kubernetes.workload(workload, logger: logger)
            } catch {
                if case .notFound = error { return nil }
                throw error.naming("\(workload.kind.resource) \(workload.namespace)/\(workload.name)")
            }
            if !workload.uid.isEmpty, !current.reference.uid.isEmpty, current.reference.uid != workload.uid { return nil }
            guard Self.optedIn(current.annotations) else { return .notOptedIn(workload) }
            let existing = current.templateAnnotations[Self.rotatedVersionsAnnotation]
            if RotatedVersions.entries(existing)[rotation.secretProviderClassName] == digest { return .alreadyCurrent(workload) }
            let value = RotatedVersions.merging(existing, secretProviderClassName: rotation.secretProviderClassName, digest: digest)
            do {
                try await kubernetes.patchTemplateAnnotations(
                    workload,
                    annotations: [Self.rotatedVersionsAnnotation: value],
                    resourceVersion: current.resourceVersion,
                    logger: logger
                )
                return .triggered(workload)
            } catch {
                guard case .conflict = error else {
                    throw error.naming("patching \(workload.kind.resource) \(workload.namespace)/\(workload.name)")
                }
                guard case .retry = policy.decision(afterAttempt: attempt) else {
                    throw .conflict("\(workload.kind.resource) \(workload.namespace)/\(workload.name) kept changing after \(policy.maxAttempts) attempts")
                }
                logger.debug("workload patch conflicted; reading it again", metadata: ["k8s.attempt": "\(attempt)"])
            }
        }
    }

    /// Whether `annotations` opt the workload in (`"true"`, any case).
    package static func optedIn(_ annotations: [String: String]) -> Bool {
        annotations[optInAnnotation]?.lowercased() == "true"
    }

    private func failed(message: String, pods: [PodReference], logger: Logger) async {
        logger.warning("failed to trigger a rollout after a rotation; the volumes are rotated", metadata: ["error": "\(message)"])
        for pod in pods {
            do {
                try await kubernetes.recordEvent(
                    PodEvent(pod: pod, kind: .warning, reason: PodEvent.rolloutTriggerFailed, message: message),
                    logger: logger
                )
            } catch {
                logger.debug("failed to record event", metadata: ["event.reason": "\(PodEvent.rolloutTriggerFailed)", "error": "\(error)"])
            }
        }
    }

    private func event(_ event: WorkloadEvent, logger: Logger) async {
        do {
            try await kubernetes.recordEvent(event, logger: logger)
        } catch {
            logger.debug("failed to record event", metadata: ["event.reason": "\(event.reason)", "error": "\(error)"])
        }
    }

    /// The API server's message, with what to enable when the driver was refused.
    private static func describe(_ error: KubernetesClientError) -> String {
        switch error {
        case .notFound(let message), .conflict(let message), .unavailable(let message, _):
            return message
        case .forbidden(let message):
            return message + " (the driver may not read or patch workloads: install the chart with rotationRestart.enabled=true)"
        case .rejected(let status, let message):
            return "HTTP \(status): \(message)"
        }
    }
}

extension PodEvent {
    /// `Warning`: the volume rotated but the driver could not restart the pod's workload
    /// (`--enable-rotation-restart`); the message says why.
    package static let rolloutTriggerFailed = "RolloutTriggerFailed"
}

extension KubernetesClientError {
    /// The same error with `what` (the object or action) in front of its message; a 404 stays a 404.
    fileprivate func naming(_ what: String) -> KubernetesClientError {
        switch self {
        case .notFound(let message): .notFound("\(what): \(message)")
        case .conflict(let message): .conflict("\(what): \(message)")
        case .forbidden(let message): .forbidden("\(what): \(message)")
        case .unavailable(let message, let cause): .unavailable("\(what): \(message)", cause: cause)
        case .rejected(let status, let message): .rejected(status: status, message: "\(what): \(message)")
        }
    }
}

/// The value of ``RolloutTrigger/rotatedVersionsAnnotation``: comma-separated `<spc-name>=<digest>` entries,
/// one per SecretProviderClass that rotated in the workload's pods, sorted by name (so a pod mounting several
/// classes keeps one entry each, and nodes that rotate them in another order agree).
///
/// The digest is FNV-1a 64 (``FNV1a``, 16 lowercase hex digits) over the class's namespace and name and its
/// object versions sorted by id then version. It is not a cryptographic hash and needs not be: it only tells
/// "the same content as last time" apart from "new content", it is computed from versions that are no
/// secret (they are in every SecretProviderClassPodStatus), and it is the same function of the same input on
/// every node. It changes only when the provider reports new versions: a provider that keeps reporting the
/// same versions for new content does not restart anything after the first time.
package enum RotatedVersions {
    /// The digest of `namespace/name` holding `versions` (in any order).
    package static func digest(namespace: String, name: String, versions: [ObjectVersion]) -> String {
        var hasher = FNV1a()
        hasher.add(namespace)
        hasher.add(name)
        for version in versions.sorted(by: { ($0.id, $0.version) < ($1.id, $1.version) }) {
            hasher.add(version.id)
            hasher.add(version.version)
        }
        let hex = String(hasher.value, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// The entries of an annotation value, by SecretProviderClass name; entries that do not parse are ignored.
    package static func entries(_ value: String?) -> [String: String] {
        var entries: [String: String] = [:]
        for entry in (value ?? "").split(separator: ",") {
            let parts = entry.split(separator: "=", maxSplits: 1).map { String($0).trimmingWhitespace() }
            if parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty { entries[parts[0]] = parts[1] }
        }
        return entries
    }

    /// `value` with the entry of `secretProviderClassName` set to `digest`, entries sorted by name.
    package static func merging(_ value: String?, secretProviderClassName: String, digest: String) -> String {
        var entries = entries(value)
        entries[secretProviderClassName] = digest
        return entries.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
    }
}
