import Logging
import SecretsStoreCore
import Synchronization

/// An in-memory Kubernetes API for tests without a network, behind both seams: ``KubernetesClient`` (the node
/// path) and ``ControllerKubernetesClient`` (the sync controller, leader election).
///
/// One store holds every object, with the API server's behaviour where the code under test relies on it:
/// resourceVersions from one counter; creates that `.conflict` when the object exists and updates that
/// `.conflict` on a stale resourceVersion; watch streams of SecretProviderClasses and Secrets; the status
/// subresource (a status write changes only the status); merge patches of workload templates (the generation
/// bumped when the template changes); owner-reference garbage collection of the Secrets a deleted class alone
/// owned; TokenRequests for ServiceAccounts that exist; a CSIDriver's audiences; Leases.
///
/// Failures are injected one way, ``fail(_:with:times:)``, by verb; calls are observed one way,
/// ``calls(_:loggedAs:)``: every call of every verb, in order, failed ones included.
package final class InMemoryKubernetesAPI: ControllerKubernetesClient {
    /// A verb of the two seams, named after the API request it stands for.
    package enum Verb: Sendable, Hashable, CaseIterable {
        case getSecretProviderClass, listSecretProviderClasses, watchSecretProviderClasses, updateSecretProviderClassStatus
        case applyPodStatus, listPodStatuses, getPod
        case getSecret, listSecrets, watchSecrets, createSecret, updateSecret, deleteSecret
        case getReplicaSet, getWorkload, patchWorkload
        case recordPodEvent, recordWorkloadEvent, recordClassEvent
        case getServiceAccount, requestToken, getCSIDriver
        case getLease, createLease, updateLease
    }

    /// One call, as the API received it.
    package struct Call: Sendable, Equatable {
        package var verb: Verb
        /// The namespace named; `nil` for a list or watch across namespaces and for cluster-scoped objects.
        package var namespace: String?
        /// The object named (the node for ``Verb/listPodStatuses``, the driver for ``Verb/getCSIDriver``, the
        /// ServiceAccount for ``Verb/requestToken``); `nil` for a list or a watch.
        package var name: String?
        /// The kind a workload verb named.
        package var kind: WorkloadReference.Kind?
        /// The annotations a template patch merged.
        package var annotations: [String: String]?

        package init(_ verb: Verb, namespace: String?, name: String?, kind: WorkloadReference.Kind? = nil, annotations: [String: String]? = nil) {
            (self.verb, self.namespace, self.name, self.kind, self.annotations) = (verb, namespace, name, kind, annotations)
        }

        /// ``InMemoryKubernetesAPI/replicaSetOwners(namespace:name:logger:)`` of `namespace/name`.
        package static func getReplicaSet(namespace: String, name: String) -> Call { Call(.getReplicaSet, namespace: namespace, name: name) }
        /// ``InMemoryKubernetesAPI/workload(_:logger:)``.
        package static func getWorkload(_ kind: WorkloadReference.Kind, namespace: String, name: String) -> Call {
            Call(.getWorkload, namespace: namespace, name: name, kind: kind)
        }
        /// ``InMemoryKubernetesAPI/patchTemplateAnnotations(_:annotations:resourceVersion:logger:)`` with these annotations.
        package static func patchWorkload(_ kind: WorkloadReference.Kind, namespace: String, name: String, annotations: [String: String]) -> Call {
            Call(.patchWorkload, namespace: namespace, name: name, kind: kind, annotations: annotations)
        }
    }

    private enum Watcher {
        case classes(namespace: String?, WatchStream<SecretProviderClass>.Continuation)
        case secrets(namespace: String?, selector: [String: String], WatchStream<KubernetesSecret>.Continuation)
    }

    private struct State {
        var version = 1
        var classes: [String: SecretProviderClass] = [:]
        var classStatuses: [String: SecretProviderClassStatus] = [:]
        var podStatuses: [String: SecretProviderClassPodStatus] = [:]
        var pods: [String: PodInfo] = [:]
        var secrets: [String: KubernetesSecret] = [:]
        var replicaSets: [String: [OwnerReference]] = [:]
        var workloads: [WorkloadReference: Workload] = [:]
        var serviceAccounts: Set<String> = []
        var audiences: [String]? = []
        var leases: [String: LeaseRecord] = [:]
        var podEvents: [PodEvent] = []
        var workloadEvents: [WorkloadEvent] = []
        var classEvents: [SecretProviderClassEvent] = []
        var watchers: [Int: Watcher] = [:]
        var nextWatcher = 0
        /// Every call, with the label of the logger it came with.
        var calls: [(call: Call, loggerLabel: String)] = []
        /// The failure each verb answers with, and how many more times (`nil`: until cleared).
        var failures: [Verb: (failure: KubernetesClientError, remaining: Int?)] = [:]
    }

    private let state = Mutex(State())
    private let nowSeconds: @Sendable () -> Int64

    /// An API already holding `classes` exactly as given (a test can tell what a GET answered by their
    /// resourceVersions; one without gets the next); tokens expire at `nowSeconds() + expirationSeconds`.
    package init(_ classes: [SecretProviderClass] = [], nowSeconds: @escaping @Sendable () -> Int64 = { 1_800_000_000 }) {
        self.nowSeconds = nowSeconds
        state.withLock { state in
            for var spc in classes {
                spc.resourceVersion = spc.resourceVersion ?? Self.bump(&state)
                state.classes[Self.key(spc.namespace, spc.name)] = spc
            }
        }
    }

    // MARK: Failures and calls

    /// Calls of `verbs` fail with `failure` (the next `times` calls of each, or until set back to `nil`).
    package func fail(_ verbs: Set<Verb>, with failure: KubernetesClientError?, times: Int? = nil) {
        state.withLock { state in
            for verb in verbs { state.failures[verb] = failure.map { ($0, times) } }
        }
    }

    /// The calls of `verbs` so far, in order, failed ones included; only those whose logger is labelled `label`
    /// when one is given (a test can give each caller its own).
    package func calls(_ verbs: Set<Verb> = .all, loggedAs label: String? = nil) -> [Call] {
        state.withLock { state in
            state.calls.filter { verbs.contains($0.call.verb) && (label == nil || $0.loggerLabel == label) }.map(\.call)
        }
    }

    /// Records the call, then throws the failure injected for its verb, if any.
    private static func enter(_ state: inout State, _ call: Call, _ logger: Logger) throws(KubernetesClientError) {
        state.calls.append((call, logger.label))
        guard let (failure, remaining) = state.failures[call.verb] else { return }
        if let remaining { state.failures[call.verb] = remaining > 1 ? (failure, remaining - 1) : nil }
        throw failure
    }

    // MARK: Objects, as another client would write them

    /// Creates or replaces a class as `kubectl apply` would: its UID kept (`uid-<namespace>-<name>` when new and
    /// without one), its generation bumped when the spec changed, the next resourceVersion; watchers are told.
    package func add(_ spc: SecretProviderClass) {
        state.withLock { state in
            var spc = spc
            let key = Self.key(spc.namespace, spc.name)
            let old = state.classes[key]
            spc.uid = old?.uid ?? (spc.uid.isEmpty ? "uid-\(spc.namespace)-\(spc.name)" : spc.uid)
            var unchanged = spc
            unchanged.generation = old?.generation ?? 1
            unchanged.resourceVersion = old?.resourceVersion
            spc.generation = old.map { $0 == unchanged ? $0.generation : $0.generation + 1 } ?? 1
            spc.resourceVersion = Self.bump(&state)
            state.classes[key] = spc
            Self.notify(&state, classEvent: old == nil ? .added(spc) : .modified(spc))
        }
    }

    /// Deletes a class, its status with it, and garbage-collects the Secrets it alone owned; watchers are told.
    package func deleteClass(namespace: String, name: String) {
        state.withLock { state in
            guard var spc = state.classes.removeValue(forKey: Self.key(namespace, name)) else { return }
            state.classStatuses.removeValue(forKey: Self.key(namespace, name))
            spc.resourceVersion = Self.bump(&state)
            Self.notify(&state, classEvent: .deleted(spc))
            let liveUIDs = Set(state.classes.values.map(\.uid))
            for (key, secret) in state.secrets
            where !secret.ownerReferences.isEmpty && secret.ownerReferences.allSatisfy({ $0.uid == spc.uid || ($0.kind == "SecretProviderClass" && !liveUIDs.contains($0.uid)) }) {
                state.secrets.removeValue(forKey: key)
                var gone = secret
                gone.resourceVersion = Self.bump(&state)
                Self.notify(&state, secretEvent: .deleted(gone))
            }
        }
    }

    /// Creates or replaces a Secret as someone else would (no managed label unless given), with the next
    /// resourceVersion; watchers are told.
    package func add(_ secret: KubernetesSecret) {
        state.withLock { Self.store(&$0, secret) }
    }

    /// Deletes a Secret as a user would; watchers are told.
    package func removeSecret(namespace: String, name: String) {
        state.withLock { state in
            guard var secret = state.secrets.removeValue(forKey: Self.key(namespace, name)) else { return }
            secret.resourceVersion = Self.bump(&state)
            Self.notify(&state, secretEvent: .deleted(secret))
        }
    }

    /// Creates or replaces a pod.
    package func add(_ pod: PodInfo) { state.withLock { $0.pods[Self.key(pod.namespace, pod.name)] = pod } }

    /// Creates or replaces a ReplicaSet with these owner references (a Deployment's ReplicaSet names it).
    package func addReplicaSet(namespace: String, name: String, ownerReferences: [OwnerReference]) {
        state.withLock { $0.replicaSets[Self.key(namespace, name)] = ownerReferences }
    }

    /// Creates or replaces a Deployment, StatefulSet or DaemonSet, as created: the next resourceVersion,
    /// generation 1, and a UID from the reference (`uid-<name>` when it has none).
    package func add(_ workload: Workload) {
        state.withLock { state in
            var workload = workload
            if workload.reference.uid.isEmpty { workload.reference.uid = "uid-\(workload.reference.name)" }
            workload.resourceVersion = Self.bump(&state)
            workload.generation = 1
            state.workloads[Self.key(workload.reference)] = workload
        }
    }

    /// Creates a ServiceAccount.
    package func addServiceAccount(namespace: String, name: String) {
        state.withLock { _ = $0.serviceAccounts.insert(Self.key(namespace, name)) }
    }

    /// Sets the CSIDriver's token audiences; `nil`: there is no CSIDriver.
    package func setCSIDriverAudiences(_ audiences: [String]?) { state.withLock { $0.audiences = audiences } }

    /// Ends every open watch (clients must watch again).
    package func closeWatches() {
        let watchers = state.withLock { state in
            defer { state.watchers = [:] }
            return state.watchers.values
        }
        for watcher in watchers {
            switch watcher {
            case .classes(_, let continuation): continuation.finish()
            case .secrets(_, _, let continuation): continuation.finish()
            }
        }
    }

    // MARK: What the store holds

    /// The class as stored.
    package func storedClass(namespace: String, name: String) -> SecretProviderClass? {
        state.withLock { $0.classes[Self.key(namespace, name)] }
    }
    /// The status of each class, by `namespace/name`.
    package var classStatuses: [String: SecretProviderClassStatus] { state.withLock { $0.classStatuses } }
    /// The SecretProviderClassPodStatuses, by `namespace/name`.
    package var podStatuses: [String: SecretProviderClassPodStatus] { state.withLock { $0.podStatuses } }
    /// The Secrets, by `namespace/name`.
    package var secrets: [String: KubernetesSecret] { state.withLock { $0.secrets } }
    /// The workload of that kind, namespace and name.
    package func workload(_ kind: WorkloadReference.Kind, namespace: String, name: String) -> Workload? {
        state.withLock { $0.workloads[WorkloadReference(kind: kind, namespace: namespace, name: name)] }
    }
    /// The Lease.
    package func storedLease(namespace: String, name: String) -> LeaseRecord? { state.withLock { $0.leases[Self.key(namespace, name)] } }
    /// Events recorded on pods, in order.
    package var events: [PodEvent] { state.withLock { $0.podEvents } }
    /// Events recorded on workloads, in order.
    package var workloadEvents: [WorkloadEvent] { state.withLock { $0.workloadEvents } }
    /// Events recorded on classes, in order.
    package var classEvents: [SecretProviderClassEvent] { state.withLock { $0.classEvents } }

    // MARK: Internals

    private static func key(_ namespace: String, _ name: String) -> String { "\(namespace)/\(name)" }

    /// Workloads are stored by kind, namespace and name (the UID is what the stored object says).
    private static func key(_ reference: WorkloadReference) -> WorkloadReference {
        WorkloadReference(kind: reference.kind, namespace: reference.namespace, name: reference.name)
    }

    private static func bump(_ state: inout State) -> String {
        state.version += 1
        return String(state.version)
    }

    /// Stores `secret` with the next resourceVersion and tells watchers (added when new, modified otherwise).
    private static func store(_ state: inout State, _ secret: KubernetesSecret) {
        var stored = secret
        stored.resourceVersion = bump(&state)
        let existed = state.secrets.updateValue(stored, forKey: key(secret.namespace, secret.name)) != nil
        notify(&state, secretEvent: existed ? .modified(stored) : .added(stored))
    }

    /// Stores `lease` with the next resourceVersion and returns it as stored.
    private static func store(_ state: inout State, _ lease: LeaseRecord) -> LeaseRecord {
        var stored = lease
        stored.resourceVersion = bump(&state)
        state.leases[key(lease.namespace, lease.name)] = stored
        return stored
    }

    private static func notify(_ state: inout State, classEvent event: WatchEvent<SecretProviderClass>) {
        let namespace: String
        switch event {
        case .added(let spc), .modified(let spc), .deleted(let spc): namespace = spc.namespace
        case .bookmark: return
        }
        for case .classes(let watched, let continuation) in state.watchers.values where watched == nil || watched == namespace {
            continuation.yield(event)
        }
    }

    private static func notify(_ state: inout State, secretEvent event: WatchEvent<KubernetesSecret>) {
        let secret: KubernetesSecret
        switch event {
        case .added(let s), .modified(let s), .deleted(let s): secret = s
        case .bookmark: return
        }
        for case .secrets(let watched, let selector, let continuation) in state.watchers.values
        where (watched == nil || watched == secret.namespace) && selector.allSatisfy({ secret.labels[$0.key] == $0.value }) {
            continuation.yield(event)
        }
    }

    /// A watch stream registered as `watcher`; it ends at once with the failure injected for `call`'s verb.
    private func watch<Object>(_ call: Call, _ logger: Logger, _ watcher: (WatchStream<Object>.Continuation) -> Watcher) -> WatchStream<Object> {
        let (stream, continuation) = WatchStream<Object>.makeStream()
        let id: Int? = state.withLock { state in
            do { try Self.enter(&state, call, logger) } catch {
                continuation.finish(throwing: error)
                return nil
            }
            defer { state.nextWatcher += 1 }
            state.watchers[state.nextWatcher] = watcher(continuation)
            return state.nextWatcher
        }
        if let id { continuation.onTermination = { [weak self] _ in self?.state.withLock { _ = $0.watchers.removeValue(forKey: id) } } }
        return stream
    }
}

// MARK: - KubernetesClient

extension InMemoryKubernetesAPI {
    package func secretProviderClass(namespace: String, name: String, logger: Logger) async throws(KubernetesClientError) -> SecretProviderClass {
        try state.withLock { (state) throws(KubernetesClientError) in
            try Self.enter(&state, Call(.getSecretProviderClass, namespace: namespace, name: name), logger)
            guard let spc = state.classes[Self.key(namespace, name)] else { throw .notFound("secretproviderclasses \"\(name)\" not found") }
            return spc
        }
    }

    /// Stores the status and returns a UID derived from its name.
    @discardableResult
    package func applyPodStatus(_ status: SecretProviderClassPodStatus, logger: Logger) async throws(KubernetesClientError) -> String {
        try state.withLock { (state) throws(KubernetesClientError) in
            try Self.enter(&state, Call(.applyPodStatus, namespace: status.namespace, name: status.name), logger)
            state.podStatuses[Self.key(status.namespace, status.name)] = status
            return "uid-spcps-\(status.name)"
        }
    }

    package func podStatuses(nodeName: String, logger: Logger) async throws(KubernetesClientError) -> [SecretProviderClassPodStatus] {
        try state.withLock { (state) throws(KubernetesClientError) in
            try Self.enter(&state, Call(.listPodStatuses, namespace: nil, name: nodeName), logger)
            return state.podStatuses.values.filter { $0.nodeName == nodeName }
        }
    }

    package func pod(namespace: String, name: String, logger: Logger) async throws(KubernetesClientError) -> PodInfo {
        try state.withLock { (state) throws(KubernetesClientError) in
            try Self.enter(&state, Call(.getPod, namespace: namespace, name: name), logger)
            guard let pod = state.pods[Self.key(namespace, name)] else { throw .notFound("pods \"\(name)\" not found") }
            return pod
        }
    }

    package func secret(namespace: String, name: String, logger: Logger) async throws(KubernetesClientError) -> KubernetesSecret? {
        try state.withLock { (state) throws(KubernetesClientError) in
            try Self.enter(&state, Call(.getSecret, namespace: namespace, name: name), logger)
            return state.secrets[Self.key(namespace, name)]
        }
    }

    package func createSecret(_ secret: KubernetesSecret, logger: Logger) async throws(KubernetesClientError) {
        try state.withLock { (state) throws(KubernetesClientError) in
            try Self.enter(&state, Call(.createSecret, namespace: secret.namespace, name: secret.name), logger)
            guard state.secrets[Self.key(secret.namespace, secret.name)] == nil else { throw .conflict("secrets \"\(secret.name)\" already exists") }
            Self.store(&state, secret)
        }
    }

    package func updateSecret(_ secret: KubernetesSecret, logger: Logger) async throws(KubernetesClientError) {
        try state.withLock { (state) throws(KubernetesClientError) in
            try Self.enter(&state, Call(.updateSecret, namespace: secret.namespace, name: secret.name), logger)
            guard let existing = state.secrets[Self.key(secret.namespace, secret.name)] else { throw .notFound("secrets \"\(secret.name)\" not found") }
            guard existing.resourceVersion == secret.resourceVersion else { throw .conflict("the object has been modified") }
            Self.store(&state, secret)
        }
    }

    package func recordEvent(_ event: PodEvent, logger: Logger) async throws(KubernetesClientError) {
        try state.withLock { (state) throws(KubernetesClientError) in
            try Self.enter(&state, Call(.recordPodEvent, namespace: event.pod.namespace, name: event.pod.name), logger)
            state.podEvents.append(event)
        }
    }

    package func replicaSetOwners(namespace: String, name: String, logger: Logger) async throws(KubernetesClientError) -> [OwnerReference] {
        try state.withLock { (state) throws(KubernetesClientError) in
            try Self.enter(&state, .getReplicaSet(namespace: namespace, name: name), logger)
            guard let owners = state.replicaSets[Self.key(namespace, name)] else { throw .notFound("replicasets.apps \"\(name)\" not found") }
            return owners
        }
    }

    package func workload(_ reference: WorkloadReference, logger: Logger) async throws(KubernetesClientError) -> Workload {
        try state.withLock { (state) throws(KubernetesClientError) in
            try Self.enter(&state, .getWorkload(reference.kind, namespace: reference.namespace, name: reference.name), logger)
            guard let workload = state.workloads[Self.key(reference)] else {
                throw .notFound("\(reference.kind.resource).apps \"\(reference.name)\" not found")
            }
            return workload
        }
    }

    /// Merges `annotations` into the template annotations as the API server does: `.conflict` for a stale
    /// `resourceVersion`; nothing written (same resourceVersion and generation) when nothing changes;
    /// otherwise the next resourceVersion and the generation bumped (a template change is a spec change).
    @discardableResult
    package func patchTemplateAnnotations(
        _ reference: WorkloadReference,
        annotations: [String: String],
        resourceVersion: String?,
        logger: Logger
    ) async throws(KubernetesClientError) -> Workload {
        try state.withLock { (state) throws(KubernetesClientError) in
            try Self.enter(&state, .patchWorkload(reference.kind, namespace: reference.namespace, name: reference.name, annotations: annotations), logger)
            let key = Self.key(reference)
            guard var workload = state.workloads[key] else { throw .notFound("\(reference.kind.resource).apps \"\(reference.name)\" not found") }
            if let resourceVersion, resourceVersion != workload.resourceVersion {
                throw .conflict("Operation cannot be fulfilled on \(reference.kind.resource).apps \"\(reference.name)\": the object has been modified; please apply your changes to the latest version and try again")
            }
            let merged = workload.templateAnnotations.merging(annotations) { _, new in new }
            guard merged != workload.templateAnnotations else { return workload }
            workload.templateAnnotations = merged
            workload.resourceVersion = Self.bump(&state)
            workload.generation += 1
            state.workloads[key] = workload
            return workload
        }
    }

    package func recordEvent(_ event: WorkloadEvent, logger: Logger) async throws(KubernetesClientError) {
        try state.withLock { (state) throws(KubernetesClientError) in
            try Self.enter(&state, Call(.recordWorkloadEvent, namespace: event.workload.namespace, name: event.workload.name, kind: event.workload.kind), logger)
            state.workloadEvents.append(event)
        }
    }
}

// MARK: - ControllerKubernetesClient

extension InMemoryKubernetesAPI {
    package func listSecretProviderClasses(namespace: String?, logger: Logger) async throws(KubernetesClientError) -> Listed<SecretProviderClass> {
        try state.withLock { (state) throws(KubernetesClientError) in
            try Self.enter(&state, Call(.listSecretProviderClasses, namespace: namespace, name: nil), logger)
            return Listed(items: state.classes.values.filter { namespace == nil || $0.namespace == namespace }, resourceVersion: String(state.version))
        }
    }

    package func watchSecretProviderClasses(namespace: String?, resourceVersion: String, logger: Logger) -> WatchStream<SecretProviderClass> {
        watch(Call(.watchSecretProviderClasses, namespace: namespace, name: nil), logger) { .classes(namespace: namespace, $0) }
    }

    package func updateSecretProviderClassStatus(
        namespace: String,
        name: String,
        status: SecretProviderClassStatus,
        logger: Logger
    ) async throws(KubernetesClientError) {
        try state.withLock { (state) throws(KubernetesClientError) in
            try Self.enter(&state, Call(.updateSecretProviderClassStatus, namespace: namespace, name: name), logger)
            let key = Self.key(namespace, name)
            guard var spc = state.classes[key] else { throw .notFound("secretproviderclasses \"\(name)\" not found") }
            state.classStatuses[key] = status
            spc.resourceVersion = Self.bump(&state)
            state.classes[key] = spc
            Self.notify(&state, classEvent: .modified(spc))
        }
    }

    package func recordEvent(_ event: SecretProviderClassEvent, logger: Logger) async throws(KubernetesClientError) {
        try state.withLock { (state) throws(KubernetesClientError) in
            try Self.enter(&state, Call(.recordClassEvent, namespace: event.namespace, name: event.name), logger)
            state.classEvents.append(event)
        }
    }

    package func listSecrets(namespace: String?, labelSelector: [String: String], logger: Logger) async throws(KubernetesClientError) -> Listed<KubernetesSecret> {
        try state.withLock { (state) throws(KubernetesClientError) in
            try Self.enter(&state, Call(.listSecrets, namespace: namespace, name: nil), logger)
            let items = state.secrets.values.filter { secret in
                (namespace == nil || secret.namespace == namespace) && labelSelector.allSatisfy { secret.labels[$0.key] == $0.value }
            }
            return Listed(items: items, resourceVersion: String(state.version))
        }
    }

    package func watchSecrets(namespace: String?, labelSelector: [String: String], resourceVersion: String, logger: Logger) -> WatchStream<KubernetesSecret> {
        watch(Call(.watchSecrets, namespace: namespace, name: nil), logger) { .secrets(namespace: namespace, selector: labelSelector, $0) }
    }

    package func deleteSecret(namespace: String, name: String, logger: Logger) async throws(KubernetesClientError) {
        try state.withLock { (state) throws(KubernetesClientError) in
            try Self.enter(&state, Call(.deleteSecret, namespace: namespace, name: name), logger)
        }
        removeSecret(namespace: namespace, name: name)
    }

    package func serviceAccountExists(namespace: String, name: String, logger: Logger) async throws(KubernetesClientError) -> Bool {
        try state.withLock { (state) throws(KubernetesClientError) in
            try Self.enter(&state, Call(.getServiceAccount, namespace: namespace, name: name), logger)
            return state.serviceAccounts.contains(Self.key(namespace, name))
        }
    }

    /// A token naming its namespace, ServiceAccount, audience and the request's number; `.notFound` without
    /// the ServiceAccount.
    package func requestToken(
        namespace: String,
        serviceAccount: String,
        audience: String,
        expirationSeconds: Int,
        logger: Logger
    ) async throws(KubernetesClientError) -> ServiceAccountToken {
        let serial = try state.withLock { (state) throws(KubernetesClientError) in
            try Self.enter(&state, Call(.requestToken, namespace: namespace, name: serviceAccount), logger)
            guard state.serviceAccounts.contains(Self.key(namespace, serviceAccount)) else {
                throw .notFound("serviceaccounts \"\(serviceAccount)\" not found")
            }
            return state.calls.count { $0.call.verb == .requestToken }
        }
        let expiry = nowSeconds() + Int64(expirationSeconds)
        return ServiceAccountToken(
            token: "token-\(namespace)-\(serviceAccount)-\(audience)-\(serial)",
            expirationTimestamp: UTCTimestamp.rfc3339(epochSeconds: expiry),
            expiresAtSeconds: expiry
        )
    }

    package func csiDriverTokenAudiences(driverName: String, logger: Logger) async throws(KubernetesClientError) -> [String] {
        try state.withLock { (state) throws(KubernetesClientError) in
            try Self.enter(&state, Call(.getCSIDriver, namespace: nil, name: driverName), logger)
            guard let audiences = state.audiences else { throw .notFound("csidrivers \"\(driverName)\" not found") }
            return audiences
        }
    }

    package func lease(namespace: String, name: String, logger: Logger) async throws(KubernetesClientError) -> LeaseRecord? {
        try state.withLock { (state) throws(KubernetesClientError) in
            try Self.enter(&state, Call(.getLease, namespace: namespace, name: name), logger)
            return state.leases[Self.key(namespace, name)]
        }
    }

    package func createLease(_ lease: LeaseRecord, logger: Logger) async throws(KubernetesClientError) -> LeaseRecord {
        try state.withLock { (state) throws(KubernetesClientError) in
            try Self.enter(&state, Call(.createLease, namespace: lease.namespace, name: lease.name), logger)
            guard state.leases[Self.key(lease.namespace, lease.name)] == nil else { throw .conflict("leases \"\(lease.name)\" already exists") }
            return Self.store(&state, lease)
        }
    }

    package func updateLease(_ lease: LeaseRecord, logger: Logger) async throws(KubernetesClientError) -> LeaseRecord {
        try state.withLock { (state) throws(KubernetesClientError) in
            try Self.enter(&state, Call(.updateLease, namespace: lease.namespace, name: lease.name), logger)
            guard let existing = state.leases[Self.key(lease.namespace, lease.name)] else { throw .notFound("leases \"\(lease.name)\" not found") }
            guard existing.resourceVersion == lease.resourceVersion else { throw .conflict("the object has been modified") }
            return Self.store(&state, lease)
        }
    }
}

extension Set where Element == InMemoryKubernetesAPI.Verb {
    /// Every verb.
    package static var all: Self { Set(Element.allCases) }
    /// Secret creates and updates.
    package static var secretWrites: Self { [.createSecret, .updateSecret] }
    /// The verbs of restart on rotation: ReplicaSet and workload reads, template patches.
    package static var workloadCalls: Self { [.getReplicaSet, .getWorkload, .patchWorkload] }
    /// Lease reads and writes.
    package static var leases: Self { [.getLease, .createLease, .updateLease] }
}
