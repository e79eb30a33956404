import GRPCCore
import GRPCNIOTransportHTTP2
import CSIProtocol
import Logging
import SecretsStoreCSI
import SwiftProtobuf

/// Runs `body` with a gRPC client connected to the Unix socket at `socketPath`, as kubelet connects
/// (plaintext, `:authority` localhost).
package func withCSIClient<T: Sendable>(
    socketPath: String,
    isolation: isolated (any Actor)? = #isolation,
    _ body: (GRPCClient<HTTP2ClientTransport.Posix>) async throws -> T
) async throws -> T {
    try await withGRPCClient(
        transport: .http2NIOPosix(target: .unixDomainSocket(path: socketPath, authority: "localhost"), transportSecurity: .plaintext)
    ) { client in
        try await body(client)
    }
}

/// Whether the CSI server on `socketPath` answers Probe with ready; throws while nothing serves there.
package func probeCSI(socketPath: String) async throws -> Bool {
    try await withCSIClient(socketPath: socketPath) { client in
        try await Csi_V1_Identity.Client(wrapping: client).probe(Csi_V1_ProbeRequest()).ready.value
    }
}

/// The gRPC status code `call` failed with, or `nil` if it succeeded (`.unknown` for an error that is not an
/// `RPCError`).
package func statusCode(_ call: () async throws -> Void) async -> RPCError.Code? {
    do {
        try await call()
        return nil
    } catch let error as RPCError {
        return error.code
    } catch {
        return .unknown
    }
}
