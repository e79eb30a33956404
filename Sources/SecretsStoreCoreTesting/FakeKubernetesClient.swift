import Logging
import SecretsStoreCore
import Synchronization

/// An in-memory ``KubernetesClient`` for pipeline tests: SecretProviderClasses a test adds, pod statuses the
/// driver writes, and failures on demand.
package final class FakeKubernetesClient: KubernetesClient {
    private struct State {
        var classes: [String: SecretProviderClass] = [:]
        var statuses: [String: SecretProviderClassPodStatus] = [:]
        var pods: [String: PodInfo] = [:]
        var secrets: [String: KubernetesSecret] = [:]
        var events: [PodEvent] = []
        var failure: KubernetesClientError?
        var secretFailure: KubernetesClientError?
        var version = 0
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
    /// Secret writes fail with `failure` until it is set back to `nil`.
    package func failSecretWrites(with failure: KubernetesClientError?) { state.withLock { $0.secretFailure = failure } }

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
            if let failure = state.failure { throw failure }
            state.statuses["\(status.namespace)/\(status.name)"] = status
            return "uid-spcps-\(status.name)"
        }
    }
}
