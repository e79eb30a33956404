import Synchronization

/// Lets concurrent callers with the same key share one provider fetch: the first caller starts it, callers
/// that arrive while it is in flight get its answer (or its error), and nothing is kept once it finishes.
package final class SharedFetches: Sendable {
    private struct State {
        var inFlight: [String: Task<ProviderResponse, any Error>] = [:]
        var joined = 0
    }

    private let state = Mutex(State())

    package init() {}

    /// How many callers so far were served by a fetch another caller started.
    package var joinedCount: Int { state.withLock { $0.joined } }

    /// The answer of the fetch in flight for `key`, or of `fetch` started now when there is none.
    package func share(
        _ key: String,
        _ fetch: @escaping @Sendable () async throws(PublishError) -> ProviderResponse
    ) async throws(PublishError) -> ProviderResponse {
        let (task, started) = state.withLock { state -> (Task<ProviderResponse, any Error>, Bool) in
            if let running = state.inFlight[key] {
                state.joined += 1
                return (running, false)
            }
            let task = Task { () async throws -> ProviderResponse in try await fetch() }
            state.inFlight[key] = task
            return (task, true)
        }
        defer {
            if started { state.withLock { _ = $0.inFlight.removeValue(forKey: key) } }
        }
        do {
            return try await task.value
        } catch let error as PublishError {
            throw error
        } catch {
            throw .cancelled
        }
    }
}
