import GRPCCore
import GRPCNIOTransportHTTP2
import CSIProtocol
import Logging
import SecretsStoreCSI
import SwiftProtobuf

/// Serves `services` on a Unix socket at `socketPath` (the same server the driver runs), waits until it accepts
/// connections, runs `body` with a client connected to it (`:authority` localhost), then stops the server.
package func withServing<T: Sendable>(
    socketPath: String,
    services: [any RegistrableRPCService],
    logger: Logger,
    isolation: isolated (any Actor)? = #isolation,
    _ body: (GRPCClient<HTTP2ClientTransport.Posix>) async throws -> T
) async throws -> T {
    let (listening, continuation) = AsyncStream.makeStream(of: String.self)
    let server = CSIServer(socketPath: socketPath, services: services, logger: logger, onListening: { continuation.yield($0) })
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await server.run() }
        for await _ in listening { break }
        let result = try await withCSIClient(socketPath: socketPath) { client in
            try await body(client)
        }
        group.cancelAll()
        return result
    }
}

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
