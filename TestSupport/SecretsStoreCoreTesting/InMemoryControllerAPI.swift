import Logging
import SecretsStoreCore
import Synchronization

/// An in-memory ``ControllerKubernetesClient`` for controller tests without a network: SecretProviderClasses
/// and Secrets with resourceVersions and watch streams, the status subresource (a status write changes only
/// status), ServiceAccounts and TokenRequests, a CSIDriver's audiences, Leases with conditional updates,
/// events, owner-reference garbage collection of Secrets when their last owning class is deleted, and
/// failures on demand.
package final class InMemoryControllerAPI: ControllerKubernetesClient {
    private enum Watcher {
        case classes(namespace: String?, AsyncThrowingStream<WatchEvent<SecretProviderClass>, any Error>.Continuation)
        case secrets(namespace: String?, selector: [String: String], AsyncThrowingStream<WatchEvent<KubernetesSecret>, any Error>.Continuation)
    }

    private struct State {
        var version = 1
        var classes: [String: SecretProviderClass] = [:]
        var statuses: [String: SecretProviderClassStatus] = [:]
        var secrets: [String: KubernetesSecret] = [:]
        var serviceAccounts: Set<String> = []
        var audiences: [String]? = []
        var leases: [String: LeaseRecord] = [:]
        var events: [SecretProviderClassEvent] = []
        var tokenRequests: [(namespace: String, serviceAccount: String, audience: String)] = []
        var watchers: [Int: Watcher] = [:]
        var nextWatcher = 0
        var tokenFailure: KubernetesClientError?
        var secretWriteFailure: KubernetesClientError?
        var leaseFailure: KubernetesClientError?
        var secretWrites = 0
        /// Lease reads (failed ones too), by the label of the logger they came with.
        var leaseReads: [String: Int] = [:]
    }

    private let state = Mutex(State())
    private let nowSeconds: @Sendable () -> Int64

    /// An empty API; tokens expire `nowSeconds() + expirationSeconds`.
    package init(nowSeconds: @escaping @Sendable () -> Int64 = { 1_800_000_000 }) {
        self.nowSeconds = nowSeconds
    }

    private static func key(_ namespace: String, _ name: String) -> String { "\(namespace)/\(name)" }

    // MARK: Test controls

    /// Creates or replaces a class (bumping its generation when its spec changed) and tells watchers.
    package func apply(_ spc: SecretProviderClass) {
        state.withLock { state in
            var spc = spc
            let key = Self.key(spc.namespace, spc.name)
            let old = state.classes[key]
            spc.uid = old?.uid ?? (spc.uid.isEmpty ? "uid-\(spc.namespace)-\(spc.name)" : spc.uid)
            var unchanged = spc
            unchanged.generation = old?.generation ?? 1
            unchanged.resourceVersion = old?.resourceVersion
            spc.generation = old == nil ? 1 : (old == unchanged ? old!.generation : old!.generation + 1)
            spc.resourceVersion = Self.bump(&state)
            state.classes[key] = spc
            Self.notify(&state, classEvent: old == nil ? .added(spc) : .modified(spc))
        }
    }

    /// Deletes a class and garbage-collects the Secrets it alone owned.
    package func deleteClass(namespace: String, name: String) {
        state.withLock { state in
            guard var spc = state.classes.removeValue(forKey: Self.key(namespace, name)) else { return }
            state.statuses.removeValue(forKey: Self.key(namespace, name))
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

    /// Adds a ServiceAccount.
    package func addServiceAccount(namespace: String, name: String) {
        state.withLock { _ = $0.serviceAccounts.insert(Self.key(namespace, name)) }
    }

    /// Sets the CSIDriver's audiences; `nil`: no CSIDriver.
    package func setCSIDriverAudiences(_ audiences: [String]?) { state.withLock { $0.audiences = audiences } }

    /// TokenRequests fail with `failure` until set back to `nil`.
    package func failTokenRequests(with failure: KubernetesClientError?) { state.withLock { $0.tokenFailure = failure } }

    /// Secret creates and updates fail with `failure` until set back to `nil`.
    package func failSecretWrites(with failure: KubernetesClientError?) { state.withLock { $0.secretWriteFailure = failure } }

    /// Lease reads and writes fail with `failure` until set back to `nil`.
    package func failLeases(with failure: KubernetesClientError?) { state.withLock { $0.leaseFailure = failure } }

    /// Stores a Secret as someone else would (no managed label unless given), telling watchers.
    package func putSecret(_ secret: KubernetesSecret) {
        state.withLock { state in
            var secret = secret
            let existed = state.secrets[Self.key(secret.namespace, secret.name)] != nil
            secret.resourceVersion = Self.bump(&state)
            state.secrets[Self.key(secret.namespace, secret.name)] = secret
            Self.notify(&state, secretEvent: existed ? .modified(secret) : .added(secret))
        }
    }

    /// Deletes a Secret as a user would, telling watchers.
    package func removeSecret(namespace: String, name: String) {
        state.withLock { state in
            guard var secret = state.secrets.removeValue(forKey: Self.key(namespace, name)) else { return }
            secret.resourceVersion = Self.bump(&state)
            Self.notify(&state, secretEvent: .deleted(secret))
        }
    }

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

    /// The Secrets there are now, by `namespace/name`.
    package var storedSecrets: [String: KubernetesSecret] { state.withLock { $0.secrets } }
    /// The status of each class, by `namespace/name`.
    package var statuses: [String: SecretProviderClassStatus] { state.withLock { $0.statuses } }
    /// The class as stored.
    package func storedClass(namespace: String, name: String) -> SecretProviderClass? {
        state.withLock { $0.classes[Self.key(namespace, name)] }
    }
    /// Events recorded on classes, in order.
    package var classEvents: [SecretProviderClassEvent] { state.withLock { $0.events } }
    /// TokenRequests answered, in order.
    package var tokenRequestCount: Int { state.withLock { $0.tokenRequests.count } }
    /// Secret creates and updates so far.
    package var secretWrites: Int { state.withLock { $0.secretWrites } }
    /// How many times the Lease was read with a logger labelled `label` (a test gives each candidate its own).
    package func leaseReads(byLoggerLabel label: String) -> Int { state.withLock { $0.leaseReads[label] ?? 0 } }

    /// The Lease, if any.
    package func storedLease(namespace: String, name: String) -> LeaseRecord? { state.withLock { $0.leases[Self.key(namespace, name)] } }

    // MARK: Internals

    private static func bump(_ state: inout State) -> String {
        state.version += 1
        return String(state.version)
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

    // MARK: KubernetesClient

    package func secretProviderClass(namespace: String, name: String, logger: Logger) async throws(KubernetesClientError) -> SecretProviderClass {
        guard let spc = state.withLock({ $0.classes[Self.key(namespace, name)] }) else {
            throw .notFound("secretproviderclasses \"\(name)\" not found")
        }
        return spc
    }

    package func applyPodStatus(_ status: SecretProviderClassPodStatus, logger: Logger) async throws(KubernetesClientError) -> String { "" }

    package func podStatuses(nodeName: String, logger: Logger) async throws(KubernetesClientError) -> [SecretProviderClassPodStatus] { [] }

    package func pod(namespace: String, name: String, logger: Logger) async throws(KubernetesClientError) -> PodInfo {
        throw .notFound("pods \"\(name)\" not found")
    }

    package func secret(namespace: String, name: String, logger: Logger) async throws(KubernetesClientError) -> KubernetesSecret? {
        state.withLock { $0.secrets[Self.key(namespace, name)] }
    }

    package func createSecret(_ secret: KubernetesSecret, logger: Logger) async throws(KubernetesClientError) {
        let result: KubernetesClientError? = state.withLock { state in
            if let failure = state.secretWriteFailure { return failure }
            let key = Self.key(secret.namespace, secret.name)
            guard state.secrets[key] == nil else { return .conflict("secrets \"\(secret.name)\" already exists") }
            var stored = secret
            stored.resourceVersion = Self.bump(&state)
            state.secrets[key] = stored
            state.secretWrites += 1
            Self.notify(&state, secretEvent: .added(stored))
            return nil
        }
        if let result { throw result }
    }

    package func updateSecret(_ secret: KubernetesSecret, logger: Logger) async throws(KubernetesClientError) {
        let result: KubernetesClientError? = state.withLock { state in
            if let failure = state.secretWriteFailure { return failure }
            let key = Self.key(secret.namespace, secret.name)
            guard let existing = state.secrets[key] else { return .notFound("secrets \"\(secret.name)\" not found") }
            guard existing.resourceVersion == secret.resourceVersion else { return .conflict("the object has been modified") }
            var stored = secret
            stored.resourceVersion = Self.bump(&state)
            state.secrets[key] = stored
            state.secretWrites += 1
            Self.notify(&state, secretEvent: .modified(stored))
            return nil
        }
        if let result { throw result }
    }

    package func recordEvent(_ event: PodEvent, logger: Logger) async throws(KubernetesClientError) {}

    // The controller never restarts workloads: these verbs answer as an API server without the objects would.

    /// Throws ``KubernetesClientError/notFound(_:)``: this fake holds no ReplicaSets.
    package func replicaSetOwners(namespace: String, name: String, logger: Logger) async throws(KubernetesClientError) -> [OwnerReference] {
        throw .notFound("replicasets \"\(name)\" not found")
    }

    /// Throws ``KubernetesClientError/notFound(_:)``: this fake holds no workloads.
    package func workload(_ reference: WorkloadReference, logger: Logger) async throws(KubernetesClientError) -> Workload {
        throw .notFound("\(reference.kind.resource) \"\(reference.name)\" not found")
    }

    /// Throws ``KubernetesClientError/notFound(_:)``: this fake holds no workloads.
    package func patchTemplateAnnotations(
        _ reference: WorkloadReference,
        annotations: [String: String],
        resourceVersion: String?,
        logger: Logger
    ) async throws(KubernetesClientError) -> Workload {
        throw .notFound("\(reference.kind.resource) \"\(reference.name)\" not found")
    }

    /// Accepts and drops the event, as the pod-event `recordEvent` does.
    package func recordEvent(_ event: WorkloadEvent, logger: Logger) async throws(KubernetesClientError) {}

    // MARK: ControllerKubernetesClient

    package func listSecretProviderClasses(namespace: String?, logger: Logger) async throws(KubernetesClientError) -> Listed<SecretProviderClass> {
        state.withLock { state in
            Listed(items: state.classes.values.filter { namespace == nil || $0.namespace == namespace }, resourceVersion: String(state.version))
        }
    }

    package func watchSecretProviderClasses(namespace: String?, resourceVersion: String, logger: Logger) -> WatchStream<SecretProviderClass> {
        let (stream, continuation) = WatchStream<SecretProviderClass>.makeStream()
        let id = state.withLock { state in
            defer { state.nextWatcher += 1 }
            state.watchers[state.nextWatcher] = .classes(namespace: namespace, continuation)
            return state.nextWatcher
        }
        continuation.onTermination = { [weak self] _ in self?.state.withLock { _ = $0.watchers.removeValue(forKey: id) } }
        return stream
    }

    package func updateSecretProviderClassStatus(
        namespace: String,
        name: String,
        status: SecretProviderClassStatus,
        logger: Logger
    ) async throws(KubernetesClientError) {
        let found = state.withLock { state -> Bool in
            let key = Self.key(namespace, name)
            guard var spc = state.classes[key] else { return false }
            state.statuses[key] = status
            spc.resourceVersion = Self.bump(&state)
            state.classes[key] = spc
            Self.notify(&state, classEvent: .modified(spc))
            return true
        }
        if !found { throw .notFound("secretproviderclasses \"\(name)\" not found") }
    }

    package func recordEvent(_ event: SecretProviderClassEvent, logger: Logger) async throws(KubernetesClientError) {
        state.withLock { $0.events.append(event) }
    }

    package func listSecrets(namespace: String?, labelSelector: [String: String], logger: Logger) async throws(KubernetesClientError) -> Listed<KubernetesSecret> {
        state.withLock { state in
            Listed(
                items: state.secrets.values.filter { secret in
                    (namespace == nil || secret.namespace == namespace) && labelSelector.allSatisfy { secret.labels[$0.key] == $0.value }
                },
                resourceVersion: String(state.version)
            )
        }
    }

    package func watchSecrets(namespace: String?, labelSelector: [String: String], resourceVersion: String, logger: Logger) -> WatchStream<KubernetesSecret> {
        let (stream, continuation) = WatchStream<KubernetesSecret>.makeStream()
        let id = state.withLock { state in
            defer { state.nextWatcher += 1 }
            state.watchers[state.nextWatcher] = .secrets(namespace: namespace, selector: labelSelector, continuation)
            return state.nextWatcher
        }
        continuation.onTermination = { [weak self] _ in self?.state.withLock { _ = $0.watchers.removeValue(forKey: id) } }
        return stream
    }

    package func deleteSecret(namespace: String, name: String, logger: Logger) async throws(KubernetesClientError) {
        removeSecret(namespace: namespace, name: name)
    }

    package func serviceAccountExists(namespace: String, name: String, logger: Logger) async throws(KubernetesClientError) -> Bool {
        state.withLock { $0.serviceAccounts.contains(Self.key(namespace, name)) }
    }

    package func requestToken(
        namespace: String,
        serviceAccount: String,
        audience: String,
        expirationSeconds: Int,
        logger: Logger
    ) async throws(KubernetesClientError) -> ServiceAccountToken {
        let now = nowSeconds()
        let result: Result<Int, KubernetesClientError> = state.withLock { state in
            if let failure = state.tokenFailure { return .failure(failure) }
            guard state.serviceAccounts.contains(Self.key(namespace, serviceAccount)) else {
                return .failure(.notFound("serviceaccounts \"\(serviceAccount)\" not found"))
            }
            state.tokenRequests.append((namespace, serviceAccount, audience))
            return .success(state.tokenRequests.count)
        }
        let serial = try result.get()
        let expiry = now + Int64(expirationSeconds)
        return ServiceAccountToken(
            token: "token-\(namespace)-\(serviceAccount)-\(audience)-\(serial)",
            expirationTimestamp: UTCTimestamp.rfc3339(epochSeconds: expiry),
            expiresAtSeconds: expiry
        )
    }

    package func csiDriverTokenAudiences(driverName: String, logger: Logger) async throws(KubernetesClientError) -> [String] {
        guard let audiences = state.withLock({ $0.audiences }) else { throw .notFound("csidrivers \"\(driverName)\" not found") }
        return audiences
    }

    package func lease(namespace: String, name: String, logger: Logger) async throws(KubernetesClientError) -> LeaseRecord? {
        let result: Result<LeaseRecord?, KubernetesClientError> = state.withLock { state in
            state.leaseReads[logger.label, default: 0] += 1
            if let failure = state.leaseFailure { return .failure(failure) }
            return .success(state.leases[Self.key(namespace, name)])
        }
        return try result.get()
    }

    package func createLease(_ lease: LeaseRecord, logger: Logger) async throws(KubernetesClientError) -> LeaseRecord {
        let result: Result<LeaseRecord, KubernetesClientError> = state.withLock { state in
            if let failure = state.leaseFailure { return .failure(failure) }
            let key = Self.key(lease.namespace, lease.name)
            guard state.leases[key] == nil else { return .failure(.conflict("leases \"\(lease.name)\" already exists")) }
            var stored = lease
            stored.resourceVersion = Self.bump(&state)
            state.leases[key] = stored
            return .success(stored)
        }
        return try result.get()
    }

    package func updateLease(_ lease: LeaseRecord, logger: Logger) async throws(KubernetesClientError) -> LeaseRecord {
        let result: Result<LeaseRecord, KubernetesClientError> = state.withLock { state in
            if let failure = state.leaseFailure { return .failure(failure) }
            let key = Self.key(lease.namespace, lease.name)
            guard let existing = state.leases[key] else { return .failure(.notFound("leases \"\(lease.name)\" not found")) }
            guard existing.resourceVersion == lease.resourceVersion else { return .failure(.conflict("the object has been modified")) }
            var stored = lease
            stored.resourceVersion = Self.bump(&state)
            state.leases[key] = stored
            return .success(stored)
        }
        return try result.get()
    }
}
