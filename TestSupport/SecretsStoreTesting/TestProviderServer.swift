import CSIProtocol
import GRPCCore
import GRPCNIOTransportHTTP2
import Foundation
import Synchronization

/// A provider speaking the real v1alpha1 `CSIDriverProvider` API on a Unix socket, whose behaviour a test
/// chooses per call. Records every MountRequest and the `:authority` it came with.
package final class TestProviderServer: Sendable {
    /// What the next Mount calls do.
    package enum Behaviour: Sendable {
        /// Answer with these files and versions.
        case respond(V1alpha1_MountResponse)
        /// Fail with this gRPC status.
        case fail(RPCError.Code, String)
        /// Never answer (until the call is cancelled).
        case hang
    }

    private struct State {
        var behaviour: Behaviour
        var requests: [V1alpha1_MountRequest] = []
        var authorities: [String] = []
    }

    /// The state the service and the test share.
    private final class Shared: Sendable {
        let state: Mutex<State>
        init(_ state: State) { self.state = Mutex(state) }
    }

    private let shared: Shared
    private let server: GRPCServer<HTTP2ServerTransport.Posix>
    /// The Unix socket it serves on.
    package let socketPath: String

    /// Starts serving on `socketPath`; returns once the socket accepts connections.
    package init(socketPath: String, behaviour: Behaviour) async throws {
        let shared = Shared(State(behaviour: behaviour))
        self.shared = shared
        self.socketPath = socketPath
        self.server = GRPCServer(
            transport: .http2NIOPosix(address: .unixDomainSocket(path: socketPath), transportSecurity: .plaintext),
            services: [Service(shared: shared)]
        )
        let server = self.server
        Task { try? await server.serve() }
        _ = try await server.listeningAddress
    }

    /// Stops serving (calls in flight finish first).
    package func shutdown() {
        server.beginGracefulShutdown()
    }

    /// Every MountRequest received, in order.
    package var requests: [V1alpha1_MountRequest] { shared.state.withLock { $0.requests } }
    /// Forgets the recorded requests (long runs that measure memory).
    package func removeRecordedRequests() { shared.state.withLock { $0.requests.removeAll() } }
    /// The `:authority` of every call, in order.
    package var authorities: [String] { shared.state.withLock { $0.authorities } }
    /// What later calls do.
    package func setBehaviour(_ behaviour: Behaviour) { shared.state.withLock { $0.behaviour = behaviour } }

    /// A response with one file per `(path, contents)` and version `v1` for each.
    package static func response(files: [(String, String)], mode: Int32 = 0o644) -> V1alpha1_MountResponse {
        var response = V1alpha1_MountResponse()
        for (path, contents) in files {
            var file = V1alpha1_File()
            file.path = path
            file.mode = mode
            file.contents = Data(contents.utf8)
            response.files.append(file)
            var version = V1alpha1_ObjectVersion()
            version.id = "secret/\(path)"
            version.version = "v1"
            response.objectVersion.append(version)
        }
        return response
    }

    private struct Service: V1alpha1_CSIDriverProvider.ServiceProtocol {
        let shared: Shared

        func version(
            request: ServerRequest<V1alpha1_VersionRequest>,
            context: ServerContext
        ) async throws -> ServerResponse<V1alpha1_VersionResponse> {
            var response = V1alpha1_VersionResponse()
            response.version = "v1alpha1"
            response.runtimeName = "test-provider"
            response.runtimeVersion = "0.0.1"
            return ServerResponse(message: response)
        }

        func mount(
            request single: ServerRequest<V1alpha1_MountRequest>,
            context: ServerContext
        ) async throws -> ServerResponse<V1alpha1_MountResponse> {
            let authority = single.metadata[stringValues: ":authority"].first(where: { _ in true }) ?? ""
            let behaviour = shared.state.withLock { state in
                state.requests.append(single.message)
                state.authorities.append(authority)
                return state.behaviour
            }
            switch behaviour {
            case .respond(let response):
                return ServerResponse(message: response)
            case .fail(let code, let message):
                throw RPCError(code: code, message: message)
            case .hang:
                try await Task.sleep(for: .seconds(3600))
                throw RPCError(code: .deadlineExceeded, message: "hung")
            }
        }
    }
}
