import Logging
import SecretsStoreCore
import Synchronization

/// An in-process ``SecretsProvider`` whose answer a test sets, and which records every request.
package final class StaticProvider: SecretsProvider {
    private struct State {
        var result: Result<ProviderResponse, ProviderFailure>
        var requests: [ProviderRequest] = []
        var held = false
    }

    private let state: Mutex<State>

    package init(_ response: ProviderResponse) {
        state = Mutex(State(result: .success(response)))
    }

    /// Makes fetches wait until ``release()`` (they are recorded when they start).
    package func hold() { state.withLock { $0.held = true } }
    package func release() { state.withLock { $0.held = false } }

    package var requests: [ProviderRequest] { state.withLock { $0.requests } }

    package func respond(with response: ProviderResponse) { state.withLock { $0.result = .success(response) } }
    package func fail(with failure: ProviderFailure) { state.withLock { $0.result = .failure(failure) } }

    package func fetch(_ request: ProviderRequest, logger: Logger) async throws(ProviderFailure) -> ProviderResponse {
        state.withLock { $0.requests.append(request) }
        while state.withLock({ $0.held }) {
            do {
                try await Task.sleep(for: .milliseconds(2))
            } catch {
                throw .cancelled
            }
        }
        return try state.withLock { $0.result }.get()
    }
}

/// A ``ProviderDirectory`` over a fixed dictionary.
package struct FixedProviderDirectory: ProviderDirectory {
    package var providers: [String: any SecretsProvider]

    package init(_ providers: [String: any SecretsProvider]) {
        self.providers = providers
    }

    package func provider(named name: String) throws(PublishError) -> any SecretsProvider {
        guard let provider = providers[name] else { throw .providerNotFound(name: name, searched: ["(test)"]) }
        return provider
    }
}
