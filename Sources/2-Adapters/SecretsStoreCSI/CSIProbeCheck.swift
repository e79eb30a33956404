import CSIProtocol
import GRPCCore
import GRPCNIOTransportHTTP2
import SwiftProtobuf
import Synchronization

/// The liveness check behind `/healthz` when the driver runs without the livenessprobe sidecar: a CSI `Probe`
/// through the driver's own socket, as kubelet would reach it.
///
/// Promises:
/// - each check dials the socket afresh (a socket file that was removed or replaced fails the check, not only a
///   server that stopped answering) and gives the call ``timeout``;
/// - healthy means the call answered OK with `ready` unset or true, as the livenessprobe sidecar reads it;
/// - checks are shared: callers that arrive while a check is in flight, or within ``reuse`` of the last one
///   ending, get its result, so a flood of `/healthz` requests makes at most one connection per ``reuse``.
package final class CSIProbeCheck: Sendable {
    /// What one check found.
    package struct Result: Sendable, Equatable {
        /// The socket answered Probe with ready (or no readiness).
        package var healthy: Bool
        /// Why it is not healthy; empty when it is. Carries gRPC status messages, never request data.
        package var reason: String

        package init(healthy: Bool, reason: String) {
            self.healthy = healthy
            self.reason = reason
        }
    }

    /// The CSI socket to dial.
    package let socketPath: String
    /// The limit of one Probe call (the livenessprobe sidecar's `--probe-timeout` in the chart: 3 s).
    package let timeout: Duration
    /// How long a finished check's result answers later callers.
    package let reuse: Duration

    private struct State {
        var inFlight: Task<Result, Never>?
        var last: (result: Result, at: ContinuousClock.Instant)?
    }

    private let state = Mutex(State())

    /// A check of the CSI server on `socketPath`.
    package init(socketPath: String, timeout: Duration = .seconds(3), reuse: Duration = .seconds(1)) {
        self.socketPath = socketPath
        self.timeout = timeout
        self.reuse = reuse
    }

    /// The result of the check in flight, of one finished less than ``reuse`` ago, or of a new one.
    package func check() async -> Result {
        let task: Task<Result, Never> = state.withLock { state in
            if let inFlight = state.inFlight { return inFlight }
            if let last = state.last, ContinuousClock.now - last.at < reuse {
                let result = last.result
                return Task { result }
            }
            let task = Task { [self] in
                let result = await self.probeOnce()
                self.state.withLock { state in
                    state.inFlight = nil
                    state.last = (result, .now)
                }
                return result
            }
            state.inFlight = task
            return task
        }
        return await task.value
    }

    /// One Probe on a fresh connection.
    private func probeOnce() async -> Result {
        var options = CallOptions.defaults
        options.timeout = timeout
        options.waitForReady = false
        do {
            let response = try await withGRPCClient(
                transport: .http2NIOPosix(
                    target: .unixDomainSocket(path: socketPath, authority: "localhost"),
                    transportSecurity: .plaintext
                )
            ) { client in
                try await Csi_V1_Identity.Client(wrapping: client).probe(Csi_V1_ProbeRequest(), options: options)
            }
            if response.hasReady, !response.ready.value {
                return Result(healthy: false, reason: "the CSI driver answered Probe with ready=false")
            }
            return Result(healthy: true, reason: "")
        } catch let error as RPCError {
            return Result(healthy: false, reason: "CSI Probe on \(socketPath) failed: \(error.code): \(error.message)")
        } catch {
            return Result(healthy: false, reason: "CSI Probe on \(socketPath) failed: \(error)")
        }
    }
}
