import Synchronization

/// Lets concurrent callers with the same key share one piece of async work (single flight): the first caller
/// starts it, callers that arrive while it is in flight wait for its answer (or its error), and nothing is
/// kept once it finishes: a caller that asks after it finished starts the work again.
///
/// Every caller keeps its own cancellation (and so its own deadline, which GRPCCore enforces by cancelling the
/// call): a cancelled caller stops waiting at once and gets the failure given as `cancelled`, while the others
/// keep waiting. The shared work is cancelled only when no caller waits for it any more. It runs in a task of
/// its own (it outlives any one caller), with whatever the caller that started it captured in it (its logger,
/// its request).
///
/// Used for the provider fetches of first publishes (``SharedFetches``) and the SecretProviderClass reads of
/// the node plugin (``SharedSecretProviderClassReads``).
package final class SharedFlights<Value: Sendable, Failure: Error>: Sendable {
    private typealias Waiter = CheckedContinuation<Result<Value, Failure>, Never>

    /// One piece of work in flight and the callers waiting for it.
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
    /// What a caller that stops waiting because it was cancelled gets.
    private let cancelled: Failure

    /// Shares work per key; a cancelled caller gets `cancelled`.
    package init(cancelled: Failure) {
        self.cancelled = cancelled
    }

    /// How many callers so far were served by work another caller started.
    package var joinedCount: Int { state.withLock { $0.joined } }

    /// How many pieces of work are in flight now.
    package var inFlightCount: Int { state.withLock { $0.flights.count } }

    /// The answer of the work in flight for `key`, or of `work` started now when there is none.
    package func share(
        _ key: String,
        _ work: @escaping @Sendable () async throws(Failure) -> Value
    ) async throws(Failure) -> Value {
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
                    let task = Task { [self] in
                        let outcome: Result<Value, Failure>
                        do throws(Failure) {
                            outcome = .success(try await work())
                        } catch {
                            outcome = .failure(error)
                        }
                        finish(key, flightID: flightID, with: outcome)
                    }
                    let cancelNow = state.withLock { state -> Bool in
                        guard state.flights[key]?.id == flightID else { return false }
                        state.flights[key]?.work = task
                        return state.flights[key]?.waiters.isEmpty ?? false
                    }
                    if cancelNow { task.cancel() }
                }
                // A caller cancelled before it was registered: its cancellation handler found nothing to resume.
                if Task.isCancelled { leave(key, waiterID: waiterID) }
            }
        } onCancel: {
            leave(key, waiterID: waiterID)
        }
        return try result.get()
    }

    /// A waiter stops waiting: it gets ``cancelled``, and the work is cancelled when nobody else waits.
    private func leave(_ key: String, waiterID: Int) {
        let (waiter, abandoned) = state.withLock { state -> (Waiter?, Task<Void, Never>?) in
            guard let waiter = state.flights[key]?.waiters.removeValue(forKey: waiterID) else { return (nil, nil) }
            guard let flight = state.flights[key], flight.waiters.isEmpty else { return (waiter, nil) }
            // Nobody waits any more: a later caller starts afresh instead of joining cancelled work.
            state.flights[key] = nil
            return (waiter, flight.work)
        }
        abandoned?.cancel()
        waiter?.resume(returning: .failure(cancelled))
    }

    /// The work finished: every caller still waiting gets its outcome.
    private func finish(_ key: String, flightID: Int, with outcome: Result<Value, Failure>) {
        let waiters = state.withLock { state -> [Waiter] in
            guard let flight = state.flights[key], flight.id == flightID else { return [] }
            state.flights[key] = nil
            return Array(flight.waiters.values)
        }
        for waiter in waiters { waiter.resume(returning: outcome) }
    }
}
