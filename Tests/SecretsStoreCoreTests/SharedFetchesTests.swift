import SecretsStoreCore
import SecretsStoreCoreTesting
import Synchronization
import Testing

/// Shared first-publish fetches: each caller keeps its own cancellation, and the shared work stops only when
/// nobody waits for it.
@Suite(.timeLimit(.minutes(3))) struct SharedFetchesTests {
    /// A fetch that waits until released and records whether it saw cancellation.
    final class GatedFetch: Sendable {
        private let state = Mutex<(started: Int, released: Bool, sawCancellation: Bool)>((0, false, false))
        var started: Int { state.withLock { $0.started } }
        var sawCancellation: Bool { state.withLock { $0.sawCancellation } }
        func release() { state.withLock { $0.released = true } }

        /// Asks `shared` for key `k`, with this gate as the fetch, and returns the outcome.
        func join(_ shared: SharedFetches) async -> Result<ProviderResponse, PublishError> {
            do throws(PublishError) {
                return .success(try await shared.share("k") { [self] () async throws(PublishError) -> ProviderResponse in try await run() })
            } catch {
                return .failure(error)
            }
        }

        func run() async throws(PublishError) -> ProviderResponse {
            state.withLock { $0.started += 1 }
            while !state.withLock({ $0.released }) {
                if Task.isCancelled {
                    state.withLock { $0.sawCancellation = true }
                    throw .cancelled
                }
                try? await Task.sleep(for: .milliseconds(5))
            }
            return ProviderResponse(files: [], objectVersions: [ObjectVersion(id: "a", version: "1")])
        }
    }

    @Test func aCancelledJoinerLeavesWhileTheOtherGetsTheAnswer() async throws {
        let shared = SharedFetches()
        let gate = GatedFetch()
        let first = Task { await gate.join(shared) }
        try await eventually("gate.started == 1") { gate.started == 1 }
        let joiner = Task { await gate.join(shared) }
        try await eventually("shared.joinedCount == 1") { shared.joinedCount == 1 }

        // The joiner's deadline comes first: it leaves at once, the work goes on for the first caller.
        joiner.cancel()
        #expect(await joiner.value.failure == .cancelled)
        #expect(!gate.sawCancellation)
        gate.release()
        #expect(try await first.value.get().objectVersions.count == 1)
        #expect(gate.started == 1)
        #expect(shared.inFlightCount == 0)
    }

    @Test func theStarterLeavingDoesNotStopTheJoiner() async throws {
        let shared = SharedFetches()
        let gate = GatedFetch()
        let first = Task { await gate.join(shared) }
        try await eventually("gate.started == 1") { gate.started == 1 }
        let joiner = Task { await gate.join(shared) }
        try await eventually("shared.joinedCount == 1") { shared.joinedCount == 1 }

        // The caller that started the fetch has the shorter deadline.
        first.cancel()
        #expect(await first.value.failure == .cancelled)
        #expect(!gate.sawCancellation)
        gate.release()
        #expect(try await joiner.value.get().objectVersions.count == 1)
    }

    @Test func theWorkStopsWhenNobodyWaits() async throws {
        let shared = SharedFetches()
        let gate = GatedFetch()
        let first = Task { await gate.join(shared) }
        try await eventually("gate.started == 1") { gate.started == 1 }
        let joiner = Task { await gate.join(shared) }
        try await eventually("shared.joinedCount == 1") { shared.joinedCount == 1 }
        first.cancel()
        joiner.cancel()
        #expect(await first.value.failure == .cancelled)
        #expect(await joiner.value.failure == .cancelled)
        try await eventually("gate.sawCancellation") { gate.sawCancellation }
        #expect(gate.sawCancellation)
        #expect(shared.inFlightCount == 0)

        // A later caller starts afresh instead of joining the cancelled work.
        let gate2 = GatedFetch()
        gate2.release()
        let later = try await gate2.join(shared).get()
        #expect(later.objectVersions.count == 1)
        #expect(gate2.started == 1)
    }

    @Test func aCallerCancelledBeforeItAsksGetsCancelled() async throws {
        let shared = SharedFetches()
        let gate = GatedFetch()
        let task = Task { () async -> Result<ProviderResponse, PublishError> in
            withUnsafeCurrentTask { $0?.cancel() }
            return await gate.join(shared)
        }
        #expect(await task.value.failure == .cancelled)
        try await eventually("shared.inFlightCount == 0") { shared.inFlightCount == 0 }
    }
}

extension Result {
    /// The failure, or `nil` for a success.
    var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
