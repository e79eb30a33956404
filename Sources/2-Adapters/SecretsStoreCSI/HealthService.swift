import CSIProtocol
import GRPCCore
import GRPCNIOTransportHTTP2
import Synchronization

/// The serving status of each service a server hosts, for `grpc.health.v1.Health`.
///
/// Promises (those of the gRPC health checking specification): the empty name `""` stands for the server as
/// a whole and is always known; a name never registered is unknown; every ``updates(for:)`` stream first
/// yields the status at the time it starts, then each change (only the latest one when a reader falls
/// behind); after ``shutDown()`` every known service is `NOT_SERVING`, later changes are ignored, and every
/// stream yields `NOT_SERVING` and ends, so a server's graceful shutdown is never held up by a `Watch`.
package final class HealthStatusBoard: Sendable {
    /// One service's status as the protocol spells it.
    package typealias Status = Grpc_Health_V1_HealthCheckResponse.ServingStatus

    private struct State {
        var statuses: [String: Status]
        var watchers: [UInt64: (service: String, continuation: AsyncStream<Status>.Continuation)] = [:]
        var nextWatcher: UInt64 = 0
        var shutDown = false
    }

    private let state: Mutex<State>

    /// A board where `services` (full names such as `v1alpha1.CSIDriverProvider`) and the server (`""`) have
    /// `status`.
    package init(services: [String], status: Status = .serving) {
        var statuses: [String: Status] = ["": status]
        for service in services { statuses[service] = status }
        state = Mutex(State(statuses: statuses))
    }

    /// The status of `service`, or `nil` when it is not known.
    package func status(of service: String) -> Status? {
        state.withLock { $0.statuses[service] }
    }

    /// Sets the status of `service` (registering it when new) and tells its watchers when it changed. Ignored
    /// after ``shutDown()``.
    package func setStatus(_ status: Status, for service: String) {
        state.withLock { state in
            guard !state.shutDown, state.statuses[service] != status else { return }
            state.statuses[service] = status
            // Yielded under the lock, so watchers see changes in the order they were made.
            for watcher in state.watchers.values where watcher.service == service { watcher.continuation.yield(status) }
        }
    }

    /// Every known service becomes `NOT_SERVING`; watchers hear it and their streams end. Idempotent.
    package func shutDown() {
        let watchers = state.withLock { state -> [(service: String, continuation: AsyncStream<Status>.Continuation)] in
            guard !state.shutDown else { return [] }
            state.shutDown = true
            for key in state.statuses.keys { state.statuses[key] = .notServing }
            defer { state.watchers = [:] }
            return Array(state.watchers.values)
        }
        for watcher in watchers {
            watcher.continuation.yield(.notServing)
            watcher.continuation.finish()
        }
    }

    /// The status of `service` now (`SERVICE_UNKNOWN` when unknown), then every change, until the reader stops
    /// iterating or the board shuts down.
    package func updates(for service: String) -> AsyncStream<Status> {
        let (stream, continuation) = AsyncStream.makeStream(of: Status.self, bufferingPolicy: .bufferingNewest(1))
        let (id, ended) = state.withLock { state -> (UInt64, Bool) in
            // The current status goes first, under the lock, so no change made meanwhile can be overtaken.
            continuation.yield(state.statuses[service] ?? .serviceUnknown)
            if state.shutDown { return (0, true) }
            let id = state.nextWatcher
            state.nextWatcher += 1
            state.watchers[id] = (service, continuation)
            return (id, false)
        }
        if ended {
            continuation.finish()
        } else {
            continuation.onTermination = { [weak self] _ in
                _ = self?.state.withLock { $0.watchers.removeValue(forKey: id) }
            }
        }
        return stream
    }
}

/// `grpc.health.v1.Health` over a ``HealthStatusBoard``: `Check` answers the service's status, or `NOT_FOUND`
/// naming the service when the board does not know it; `Watch` streams the status now and every change, ends
/// when the client cancels or the board shuts down, and reports an unknown service as `SERVICE_UNKNOWN`
/// without ending the call (the specification's rules). `List` is not served (UNIMPLEMENTED).
package struct HealthService: Grpc_Health_V1_Health.SimpleServiceProtocol {
    /// The statuses served.
    package let board: HealthStatusBoard

    /// Serves `board`.
    package init(board: HealthStatusBoard) {
        self.board = board
    }

    /// The status of `request.service`; NOT_FOUND for a service the board does not know.
    package func check(
        request: Grpc_Health_V1_HealthCheckRequest,
        context: ServerContext
    ) async throws -> Grpc_Health_V1_HealthCheckResponse {
        guard let status = board.status(of: request.service) else {
            throw RPCError(code: .notFound, message: "unknown service \"\(request.service)\"")
        }
        var response = Grpc_Health_V1_HealthCheckResponse()
        response.status = status
        return response
    }

    /// The status of `request.service` now, then each change, until cancelled or the board shuts down.
    package func watch(
        request: Grpc_Health_V1_HealthCheckRequest,
        response: RPCWriter<Grpc_Health_V1_HealthCheckResponse>,
        context: ServerContext
    ) async throws {
        for await status in board.updates(for: request.service) {
            var message = Grpc_Health_V1_HealthCheckResponse()
            message.status = status
            try await response.write(message)
        }
    }
}

/// A `grpc.health.v1.Health` client for a server on a Unix socket, as the upstream Azure provider's `/healthz`
/// handler and probes use it.
package enum HealthCheckClient {
    /// What a health endpoint answers: `nil` when `Check` of the whole server on `socketPath` says `SERVING`
    /// within `timeout`, else why not, naming the socket (`health check of unix://<path> failed: <status>`).
    package static func problem(socketPath: String, timeout: Duration) async -> String? {
        do {
            let status = try await check(socketPath: socketPath, timeout: timeout)
            return status == .serving ? nil : "health check of unix://\(socketPath) answered \(status)"
        } catch {
            return "health check of unix://\(socketPath) failed: \(error)"
        }
    }

    /// One `Check` of `service` (`""`: the whole server) on a fresh connection to `socketPath`, within
    /// `timeout`.
    ///
    /// - Throws: the call's `RPCError` (UNAVAILABLE when nothing listens, DEADLINE_EXCEEDED past `timeout`,
    ///   NOT_FOUND for an unknown service).
    package static func check(socketPath: String, service: String = "", timeout: Duration) async throws -> HealthStatusBoard.Status {
        var options = CallOptions.defaults
        options.timeout = timeout
        options.waitForReady = false
        var request = Grpc_Health_V1_HealthCheckRequest()
        request.service = service
        return try await withGRPCClient(
            transport: .http2NIOPosix(
                target: .unixDomainSocket(path: socketPath, authority: "localhost"),
                transportSecurity: .plaintext
            )
        ) { client in
            try await Grpc_Health_V1_Health.Client(wrapping: client).check(request, options: options).status
        }
    }
}
