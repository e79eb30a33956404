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

    /// A provider that answers `response` until told otherwise.
    package init(_ response: ProviderResponse) {
        state = Mutex(State(result: .success(response)))
    }

    /// Makes fetches wait until ``release()`` (they are recorded when they start).
    package func hold() { state.withLock { $0.held = true } }
    /// Lets held fetches go on.
    package func release() { state.withLock { $0.held = false } }

    /// Every request received, in order.
    package var requests: [ProviderRequest] { state.withLock { $0.requests } }

    /// Makes later fetches succeed with `response`.
    package func respond(with response: ProviderResponse) { state.withLock { $0.result = .success(response) } }
    /// Makes later fetches fail with `failure`.
    package func fail(with failure: ProviderFailure) { state.withLock { $0.result = .failure(failure) } }

    /// Records `request`, waits while held (`.cancelled` if the task is), then answers.
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
    /// The providers by name.
    package var providers: [String: any SecretsProvider]

    /// A directory of exactly `providers`.
    package init(_ providers: [String: any SecretsProvider]) {
        self.providers = providers
    }

    /// The provider called `name`, or `.providerNotFound`.
    package func provider(named name: String) throws(PublishError) -> any SecretsProvider {
        guard let provider = providers[name] else { throw .providerNotFound(name: name, searched: ["(test)"]) }
        return provider
    }
}
