import Logging
import SecretsStoreCore
import Synchronization

/// An in-process ``SecretsProvider`` whose answer a test sets, and which records every request.
package final class StaticProvider: SecretsProvider {
    private let state: Mutex<(result: Result<ProviderResponse, ProviderFailure>, requests: [ProviderRequest])>

    package init(_ response: ProviderResponse) {
        state = Mutex((.success(response), []))
    }

    package var requests: [ProviderRequest] { state.withLock { $0.requests } }

    package func respond(with response: ProviderResponse) { state.withLock { $0.result = .success(response) } }
    package func fail(with failure: ProviderFailure) { state.withLock { $0.result = .failure(failure) } }

    package func fetch(_ request: ProviderRequest, logger: Logger) async throws(ProviderFailure) -> ProviderResponse {
        let result = state.withLock { state in
            state.requests.append(request)
            return state.result
        }
        return try result.get()
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
