import Logging
import SecretsStoreCore
import Synchronization

/// An in-memory ``KubernetesClient`` for pipeline tests: SecretProviderClasses a test adds, pod statuses the
/// driver writes, and failures on demand.
package final class FakeKubernetesClient: KubernetesClient {
    private struct State {
        var classes: [String: SecretProviderClass] = [:]
        var statuses: [String: SecretProviderClassPodStatus] = [:]
        var failure: KubernetesClientError?
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

    package func secretProviderClass(namespace: String, name: String, logger: Logger) async throws -> SecretProviderClass {
        try state.withLock { state in
            if let failure = state.failure { throw failure }
            guard let spc = state.classes["\(namespace)/\(name)"] else {
                throw KubernetesClientError.notFound("secretproviderclasses \"\(name)\" not found")
            }
            return spc
        }
    }

    package func applyPodStatus(_ status: SecretProviderClassPodStatus, logger: Logger) async throws {
        try state.withLock { state in
            if let failure = state.failure { throw failure }
            state.statuses["\(status.namespace)/\(status.name)"] = status
        }
    }
}
