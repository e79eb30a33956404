import Synchronization

/// Lets concurrent callers with the same key share one provider fetch: the first caller starts it, callers
/// that arrive while it is in flight wait for its answer (or its error), and nothing is kept once it
/// finishes.
///
/// Every caller keeps its own cancellation (and so its own deadline, which GRPCCore enforces by cancelling
/// the call): a cancelled caller stops waiting at once and gets ``PublishError/cancelled``, while the others
/// keep waiting. The shared work is cancelled only when no caller waits for it any more. The provider request
/// carries the deadline of the caller that started it.
package final class SharedFetches: Sendable {
    private typealias Waiter = CheckedContinuation<Result<ProviderResponse, PublishError>, Never>

    /// One fetch in flight and the callers waiting for it.
    private struct Flight {
        /// Tells this flight apart from a later one for the same key.
        var id: Int
        var work: Task<Void, Never>?
        var waiters: [Int: Waiter] = [:]
    }

    private struct State {
        var flights: [String: Flight] = [:]
        var nextID = 0
        var joined = 0
    }

    private let state = Mutex(State())

    package init() {}

    /// How many callers so far were served by a fetch another caller started.
    package var joinedCount: Int { state.withLock { $0.joined } }

    /// How many fetches are in flight now.
    package var inFlightCount: Int { state.withLock { $0.flights.count } }

    /// The answer of the fetch in flight for `key`, or of `fetch` started now when there is none.
    package func share(
        _ key: String,
        _ fetch: @escaping @Sendable () async throws(PublishError) -> ProviderResponse
    ) async throws(PublishError) -> ProviderResponse {
        let waiterID = state.withLock { state in
            state.nextID += 1
            return state.nextID
        }
        let result = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: Waiter) in
                let startedFlight = state.withLock { state -> Int? in
                    if state.flights[key] != nil {
                        state.flights[key]?.waiters[waiterID] = continuation
                        state.joined += 1
                        return nil
                    }
                    state.nextID += 1
                    state.flights[key] = Flight(id: state.nextID, waiters: [waiterID: continuation])
                    return state.nextID
                }
                if let flightID = startedFlight {
                    // The work outlives any one caller, so it cannot be a child task of the first.
                    let work = Task { [self] in
                        let outcome: Result<ProviderResponse, PublishError>
                        do throws(PublishError) {
                            outcome = .success(try await fetch())
                        } catch {
                            outcome = .failure(error)
                        }
                        finish(key, flightID: flightID, with: outcome)
                    }
                    let cancelNow = state.withLock { state -> Bool in
                        guard state.flights[key]?.id == flightID else { return false }
                        state.flights[key]?.work = work
                        return state.flights[key]?.waiters.isEmpty ?? false
                    }
                    if cancelNow { work.cancel() }
                }
                // A caller cancelled before it was registered: its cancellation handler found nothing to resume.
                if Task.isCancelled { leave(key, waiterID: waiterID) }
            }
        } onCancel: {
            leave(key, waiterID: waiterID)
        }
        return try result.get()
    }

    /// A waiter stops waiting: it gets `.cancelled`, and the work is cancelled when nobody else waits.
    private func leave(_ key: String, waiterID: Int) {
        let (waiter, abandoned) = state.withLock { state -> (Waiter?, Task<Void, Never>?) in
            guard let waiter = state.flights[key]?.waiters.removeValue(forKey: waiterID) else { return (nil, nil) }
            guard let flight = state.flights[key], flight.waiters.isEmpty else { return (waiter, nil) }
            // Nobody waits any more: a later caller starts afresh instead of joining cancelled work.
            state.flights[key] = nil
            return (waiter, flight.work)
        }
        abandoned?.cancel()
        waiter?.resume(returning: .failure(.cancelled))
    }

    /// The work finished: every caller still waiting gets its outcome.
    private func finish(_ key: String, flightID: Int, with outcome: Result<ProviderResponse, PublishError>) {
        let waiters = state.withLock { state -> [Waiter] in
            guard let flight = state.flights[key], flight.id == flightID else { return [] }
            state.flights[key] = nil
            return Array(flight.waiters.values)
        }
        for waiter in waiters { waiter.resume(returning: outcome) }
    }
}
