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

    package init(_ classes: [SecretProviderClass] = []) {
        for spc in classes { add(spc) }
    }

    package func add(_ spc: SecretProviderClass) {
        state.withLock { $0.classes["\(spc.namespace)/\(spc.name)"] = spc }
    }

    /// Every call fails with `failure` until it is set back to `nil`.
    package func failAll(with failure: KubernetesClientError?) {
        state.withLock { $0.failure = failure }
    }

    package var podStatuses: [String: SecretProviderClassPodStatus] { state.withLock { $0.statuses } }
    package var secrets: [String: KubernetesSecret] { state.withLock { $0.secrets } }
    package var events: [PodEvent] { state.withLock { $0.events } }

    package func add(_ pod: PodInfo) { state.withLock { $0.pods["\(pod.namespace)/\(pod.name)"] = pod } }
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

    package func podStatuses(nodeName: String, logger: Logger) async throws -> [SecretProviderClassPodStatus] {
        state.withLock { Array($0.statuses.values.filter { $0.nodeName == nodeName }) }
    }

    package func pod(namespace: String, name: String, logger: Logger) async throws -> PodInfo {
        try state.withLock { state in
            if let failure = state.failure { throw failure }
            guard let pod = state.pods["\(namespace)/\(name)"] else { throw KubernetesClientError.notFound("pods \"\(name)\" not found") }
            return pod
        }
    }

    package func secret(namespace: String, name: String, logger: Logger) async throws -> KubernetesSecret? {
        state.withLock { $0.secrets["\(namespace)/\(name)"] }
    }

    package func createSecret(_ secret: KubernetesSecret, logger: Logger) async throws {
        try state.withLock { state in
            if let failure = state.secretFailure { throw failure }
            let key = "\(secret.namespace)/\(secret.name)"
            guard state.secrets[key] == nil else { throw KubernetesClientError.conflict("secrets \"\(secret.name)\" already exists") }
            state.version += 1
            var secret = secret
            secret.resourceVersion = String(state.version)
            state.secrets[key] = secret
        }
    }

    package func updateSecret(_ secret: KubernetesSecret, logger: Logger) async throws {
        try state.withLock { state in
            if let failure = state.secretFailure { throw failure }
            let key = "\(secret.namespace)/\(secret.name)"
            guard let existing = state.secrets[key] else { throw KubernetesClientError.notFound("secrets \"\(secret.name)\" not found") }
            guard secret.resourceVersion == existing.resourceVersion else { throw KubernetesClientError.conflict("the object has been modified") }
            state.version += 1
            var secret = secret
            secret.resourceVersion = String(state.version)
            state.secrets[key] = secret
        }
    }

    package func recordEvent(_ event: PodEvent, logger: Logger) async throws {
        state.withLock { $0.events.append(event) }
    }

    package func secretProviderClass(namespace: String, name: String, logger: Logger) async throws -> SecretProviderClass {
        try state.withLock { state in
            if let failure = state.failure { throw failure }
            guard let spc = state.classes["\(namespace)/\(name)"] else {
                throw KubernetesClientError.notFound("secretproviderclasses \"\(name)\" not found")
            }
            return spc
        }
    }

    @discardableResult
    package func applyPodStatus(_ status: SecretProviderClassPodStatus, logger: Logger) async throws -> String {
        try state.withLock { state in
            if let failure = state.failure { throw failure }
            state.statuses["\(status.namespace)/\(status.name)"] = status
            return "uid-spcps-\(status.name)"
        }
    }
}
