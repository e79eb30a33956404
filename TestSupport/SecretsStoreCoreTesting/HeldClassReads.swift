import Logging
import SecretsStoreCore
import Synchronization

/// A ``KubernetesClient`` that holds every SecretProviderClass GET until ``release()`` (a test lets callers
/// pile up behind a GET in flight, then lets it answer), counts the GETs that arrived, and records whether a
/// GET was cancelled while held; every other verb, and the GET once released, is the wrapped client's own.
///
/// Holding waits on a continuation, not a timer; ``release()`` lets every held GET and every later one through.
package final class HeldClassReads: ForwardingKubernetesClient {
    package let wrapped: any KubernetesClient

    private struct State {
        var arrived = 0
        var released = false
        var held: [CheckedContinuation<Void, Never>] = []
        var sawCancellation = false
    }

    private let state = Mutex(State())

    /// Holds the class GETs sent to `base`.
    package init(_ base: any KubernetesClient) {
        self.wrapped = base
    }

    /// How many class GETs arrived (held or not).
    package var arrived: Int { state.withLock { $0.arrived } }

    /// Whether a GET found its task cancelled when it was let through.
    package var sawCancellation: Bool { state.withLock { $0.sawCancellation } }

    /// Lets every held GET through, and every later one straight away.
    package func release() {
        let held = state.withLock { state in
            state.released = true
            defer { state.held = [] }
            return state.held
        }
        for continuation in held { continuation.resume() }
    }

    package func secretProviderClass(namespace: String, name: String, logger: Logger) async throws(KubernetesClientError) -> SecretProviderClass {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let letThrough = state.withLock { state in
                state.arrived += 1
                if state.released { return true }
                state.held.append(continuation)
                return false
            }
            if letThrough { continuation.resume() }
        }
        if Task.isCancelled { state.withLock { $0.sawCancellation = true } }
        return try await wrapped.secretProviderClass(namespace: namespace, name: name, logger: logger)
    }
}
