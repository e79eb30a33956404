import Logging
import SecretsStoreCore
import Synchronization

/// An in-memory ``KubernetesClient`` for pipeline tests: SecretProviderClasses a test adds, pod statuses the
/// driver writes, ReplicaSets and workloads (Deployments, StatefulSets, DaemonSets) with the API server's
/// patch semantics, and failures on demand.
package final class FakeKubernetesClient: KubernetesClient {
    private struct State {
        var classes: [String: SecretProviderClass] = [:]
        var statuses: [String: SecretProviderClassPodStatus] = [:]
        var pods: [String: PodInfo] = [:]
        var secrets: [String: KubernetesSecret] = [:]
        var events: [PodEvent] = []
        var failure: KubernetesClientError?
        var secretFailure: KubernetesClientError?
        var podStatusFailure: KubernetesClientError?
        var podStatusWriteAttempts = 0
        var version = 0
        var replicaSets: [String: [OwnerReference]] = [:]
        var workloads: [WorkloadReference: Workload] = [:]
        var workloadEvents: [WorkloadEvent] = []
        var workloadRequests: [WorkloadRequest] = []
        var workloadFailure: KubernetesClientError?
        var conflictsToInject = 0
        var secretProviderClassReads: [String] = []
    }

    /// One call of a workload verb (ReplicaSet and workload reads, template patches), in order.
    package enum WorkloadRequest: Sendable, Equatable {
        /// ``replicaSetOwners(namespace:name:logger:)`` of `namespace/name`.
        case getReplicaSet(namespace: String, name: String)
        /// ``workload(_:logger:)``.
        case get(WorkloadReference.Kind, namespace: String, name: String)
        /// ``patchTemplateAnnotations(_:annotations:resourceVersion:logger:)`` with these annotations.
        case patch(WorkloadReference.Kind, namespace: String, name: String, annotations: [String: String])
    }
    private let state = Mutex(State())

    /// A client that knows `classes` and nothing else.
    package init(_ classes: [SecretProviderClass] = []) {
        for spc in classes { add(spc) }
    }

    /// Adds or replaces a SecretProviderClass.
    package func add(_ spc: SecretProviderClass) {
        state.withLock { $0.classes["\(spc.namespace)/\(spc.name)"] = spc }
    }

    /// Every call fails with `failure` until it is set back to `nil`.
    package func failAll(with failure: KubernetesClientError?) {
        state.withLock { $0.failure = failure }
    }

    /// The pod statuses written so far, by `namespace/name`.
    package var podStatuses: [String: SecretProviderClassPodStatus] { state.withLock { $0.statuses } }
    /// The Secrets there are now, by `namespace/name`.
    package var secrets: [String: KubernetesSecret] { state.withLock { $0.secrets } }
    /// The events recorded so far, in order.
    package var events: [PodEvent] { state.withLock { $0.events } }
    /// Every ``secretProviderClass(namespace:name:logger:)`` call so far (`namespace/name`), in order.
    package var secretProviderClassReads: [String] { state.withLock { $0.secretProviderClassReads } }

    /// Adds or replaces a pod.
    package func add(_ pod: PodInfo) { state.withLock { $0.pods["\(pod.namespace)/\(pod.name)"] = pod } }
    /// Adds or replaces a Secret, giving it the next resource version.
    package func add(_ secret: KubernetesSecret) {
        state.withLock { state in
            state.version += 1
            var secret = secret
            secret.resourceVersion = String(state.version)
            state.secrets["\(secret.namespace)/\(secret.name)"] = secret
        }
    }
    /// Pod status writes fail with `failure` until it is set back to `nil`.
    package func failPodStatusWrites(with failure: KubernetesClientError?) { state.withLock { $0.podStatusFailure = failure } }
    /// Every ``applyPodStatus(_:logger:)`` call so far, failed ones included.
    package var podStatusWriteAttempts: Int { state.withLock { $0.podStatusWriteAttempts } }

    /// Secret writes fail with `failure` until it is set back to `nil`.
    package func failSecretWrites(with failure: KubernetesClientError?) { state.withLock { $0.secretFailure = failure } }

    // MARK: Workloads (restart on rotation)

    /// Adds or replaces a ReplicaSet with these owner references (`ownerReferences` of a Deployment's
    /// ReplicaSet name the Deployment).
    package func addReplicaSet(namespace: String, name: String, ownerReferences: [OwnerReference]) {
        state.withLock { $0.replicaSets["\(namespace)/\(name)"] = ownerReferences }
    }

    /// Adds or replaces a Deployment, StatefulSet or DaemonSet, as created: the next resource version,
    /// generation 1, and a UID from the reference (`uid-<name>` when it has none).
    package func add(_ workload: Workload) {
        state.withLock { state in
            state.version += 1
            var workload = workload
            if workload.reference.uid.isEmpty { workload.reference.uid = "uid-\(workload.reference.name)" }
            workload.resourceVersion = String(state.version)
            workload.generation = 1
            state.workloads[Self.key(workload.reference)] = workload
        }
    }

    /// The workload stored under that kind, namespace and name, if any.
    package func workload(_ kind: WorkloadReference.Kind, namespace: String, name: String) -> Workload? {
        state.withLock { $0.workloads[WorkloadReference(kind: kind, namespace: namespace, name: name)] }
    }

    /// Every workload verb called so far, in order.
    package var workloadRequests: [WorkloadRequest] { state.withLock { $0.workloadRequests } }
    /// The events recorded on workloads so far, in order.
    package var workloadEvents: [WorkloadEvent] { state.withLock { $0.workloadEvents } }
    /// Workload verbs (ReplicaSet and workload reads, patches) fail with `failure` until it is set back to `nil`.
    package func failWorkloadCalls(with failure: KubernetesClientError?) { state.withLock { $0.workloadFailure = failure } }
    /// The next `count` conditional patches fail with `.conflict` as if someone wrote in between (and bump
    /// the workload's resource version, as that write would).
    package func injectPatchConflicts(_ count: Int) { state.withLock { $0.conflictsToInject = count } }

    /// The ReplicaSet's owner references, or `.notFound`.
    package func replicaSetOwners(namespace: String, name: String, logger: Logger) async throws(KubernetesClientError) -> [OwnerReference] {
        try state.withLock { (state) throws(KubernetesClientError) in
            state.workloadRequests.append(.getReplicaSet(namespace: namespace, name: name))
            if let failure = state.workloadFailure { throw failure }
            guard let owners = state.replicaSets["\(namespace)/\(name)"] else {
                throw .notFound("replicasets.apps \"\(name)\" not found")
            }
            return owners
        }
    }

    /// The stored workload, or `.notFound`.
    package func workload(_ reference: WorkloadReference, logger: Logger) async throws(KubernetesClientError) -> Workload {
        try state.withLock { (state) throws(KubernetesClientError) in
            state.workloadRequests.append(.get(reference.kind, namespace: reference.namespace, name: reference.name))
            if let failure = state.workloadFailure { throw failure }
            guard let workload = state.workloads[Self.key(reference)] else {
                throw .notFound("\(reference.kind.resource).apps \"\(reference.name)\" not found")
            }
            return workload
        }
    }

    /// Merges `annotations` into the template annotations as the API server does: `.conflict` for a stale
    /// `resourceVersion`; nothing written (same resource version and generation) when nothing changes;
    /// otherwise the next resource version and the generation bumped (a template change is a spec change).
    @discardableResult
    package func patchTemplateAnnotations(
        _ reference: WorkloadReference,
        annotations: [String: String],
        resourceVersion: String?,
        logger: Logger
    ) async throws(KubernetesClientError) -> Workload {
        try state.withLock { (state) throws(KubernetesClientError) in
            state.workloadRequests.append(.patch(reference.kind, namespace: reference.namespace, name: reference.name, annotations: annotations))
            if let failure = state.workloadFailure { throw failure }
            let key = Self.key(reference)
            guard var workload = state.workloads[key] else {
                throw .notFound("\(reference.kind.resource).apps \"\(reference.name)\" not found")
            }
            if state.conflictsToInject > 0 {
                state.conflictsToInject -= 1
                state.version += 1
                workload.resourceVersion = String(state.version)
                state.workloads[key] = workload
            }
            if let resourceVersion, resourceVersion != workload.resourceVersion {
                throw .conflict("Operation cannot be fulfilled on \(reference.kind.resource).apps \"\(reference.name)\": the object has been modified; please apply your changes to the latest version and try again")
            }
            var merged = workload.templateAnnotations
            merged.merge(annotations) { _, new in new }
            guard merged != workload.templateAnnotations else { return workload }
            workload.templateAnnotations = merged
            state.version += 1
            workload.resourceVersion = String(state.version)
            workload.generation += 1
            state.workloads[key] = workload
            return workload
        }
    }

    /// Appends the event.
    package func recordEvent(_ event: WorkloadEvent, logger: Logger) async throws(KubernetesClientError) {
        state.withLock { $0.workloadEvents.append(event) }
    }

    /// Workloads are stored by kind, namespace and name (the UID is what the stored object says).
    private static func key(_ reference: WorkloadReference) -> WorkloadReference {
        WorkloadReference(kind: reference.kind, namespace: reference.namespace, name: reference.name)
    }

    // MARK: Pod statuses, pods, Secrets, events

    /// The statuses written for pods on `nodeName`.
    package func podStatuses(nodeName: String, logger: Logger) async throws(KubernetesClientError) -> [SecretProviderClassPodStatus] {
        state.withLock { Array($0.statuses.values.filter { $0.nodeName == nodeName }) }
    }

    /// The pod added under that name, or `.notFound`.
    package func pod(namespace: String, name: String, logger: Logger) async throws(KubernetesClientError) -> PodInfo {
        try state.withLock { (state) throws(KubernetesClientError) in
            if let failure = state.failure { throw failure }
            guard let pod = state.pods["\(namespace)/\(name)"] else { throw .notFound("pods \"\(name)\" not found") }
            return pod
        }
    }

    /// The Secret under that name, or `nil`.
    package func secret(namespace: String, name: String, logger: Logger) async throws(KubernetesClientError) -> KubernetesSecret? {
        state.withLock { $0.secrets["\(namespace)/\(name)"] }
    }

    /// Stores a new Secret; `.conflict` when it exists.
    package func createSecret(_ secret: KubernetesSecret, logger: Logger) async throws(KubernetesClientError) {
        try state.withLock { (state) throws(KubernetesClientError) in
            if let failure = state.secretFailure { throw failure }
            let key = "\(secret.namespace)/\(secret.name)"
            guard state.secrets[key] == nil else { throw .conflict("secrets \"\(secret.name)\" already exists") }
            state.version += 1
            var secret = secret
            secret.resourceVersion = String(state.version)
            state.secrets[key] = secret
        }
    }

    /// Replaces a Secret whose resource version matches; `.notFound` or `.conflict` otherwise.
    package func updateSecret(_ secret: KubernetesSecret, logger: Logger) async throws(KubernetesClientError) {
        try state.withLock { (state) throws(KubernetesClientError) in
            if let failure = state.secretFailure { throw failure }
            let key = "\(secret.namespace)/\(secret.name)"
            guard let existing = state.secrets[key] else { throw .notFound("secrets \"\(secret.name)\" not found") }
            guard secret.resourceVersion == existing.resourceVersion else { throw .conflict("the object has been modified") }
            state.version += 1
            var secret = secret
            secret.resourceVersion = String(state.version)
            state.secrets[key] = secret
        }
    }

    /// Appends the event.
    package func recordEvent(_ event: PodEvent, logger: Logger) async throws(KubernetesClientError) {
        state.withLock { $0.events.append(event) }
    }

    /// The SecretProviderClass added under that name, or `.notFound`.
    package func secretProviderClass(namespace: String, name: String, logger: Logger) async throws(KubernetesClientError) -> SecretProviderClass {
        try state.withLock { (state) throws(KubernetesClientError) in
            state.secretProviderClassReads.append("\(namespace)/\(name)")
            if let failure = state.failure { throw failure }
            guard let spc = state.classes["\(namespace)/\(name)"] else {
                throw .notFound("secretproviderclasses \"\(name)\" not found")
            }
            return spc
        }
    }

    /// Stores the status and returns a UID derived from its name.
    @discardableResult
    package func applyPodStatus(_ status: SecretProviderClassPodStatus, logger: Logger) async throws(KubernetesClientError) -> String {
        try state.withLock { (state) throws(KubernetesClientError) in
            state.podStatusWriteAttempts += 1
            if let failure = state.failure ?? state.podStatusFailure { throw failure }
            state.statuses["\(status.namespace)/\(status.name)"] = status
            return "uid-spcps-\(status.name)"
        }
    }
}
