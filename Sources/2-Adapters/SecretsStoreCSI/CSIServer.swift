import CSIProtocol
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import SecretsStoreCore
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#endif

/// A gRPC endpoint on a Unix socket (the driver's Identity + Node, or a provider's v1alpha1 service), run as
/// a `Service` so it starts and stops with the rest of the process under one `ServiceGroup`.
///
/// Before binding it takes an exclusive lock on `<socket>.lock` (unless made with `lockFile: false`): a second
/// instance fails at once instead of silently replacing the socket of a running one. It then removes a stale
/// socket file, binds, and sets the socket's mode to 0660 (kubelet connects as root). The socket file is removed
/// when the server stops.
package struct CSIServer: Service {
    /// The Unix socket to serve on; `<socketPath>.lock` guards it.
    package var socketPath: String
    /// Whether `<socketPath>.lock` guards the socket. The registration socket goes without: kubelet's plugin
    /// watcher owns that directory, and the CSI socket's lock already keeps a second instance out.
    package var lockFile: Bool
    private let services: [any RegistrableRPCService]
    private let logger: Logger
    private let onListening: @Sendable (String) -> Void

    /// A server for `services`; `onListening` gets the socket path once it is bound (mode 0660).
    package init(
        socketPath: String,
        services: [any RegistrableRPCService],
        lockFile: Bool = true,
        logger: Logger,
        onListening: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.socketPath = socketPath
        self.lockFile = lockFile
        self.services = services
        self.logger = logger
        self.onListening = onListening
    }

    /// The CSI driver's endpoint: Identity and Node.
    package init(
        socketPath: String,
        identity: IdentityService,
        node: NodeService,
        logger: Logger,
        onListening: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.init(socketPath: socketPath, services: [identity, node], logger: logger, onListening: onListening)
    }

    /// Locks, binds and serves until graceful shutdown, then removes the socket.
    ///
    /// - Throws: ``CSIServerError`` when the lock file cannot be opened, another instance holds it, or a stale
    ///   socket cannot be removed; the transport's error when binding or serving fails.
    package func run() async throws {
        let lock = lockFile ? try SocketLock(socketPath: socketPath) : nil
        defer { lock?.release() }
        if unlink(socketPath) != 0 && errno != ENOENT {
            throw CSIServerError(message: "cannot remove stale socket \(socketPath): \(String(cString: strerror(errno)))")
        }
        let server = GRPCServer(
            transport: .http2NIOPosix(address: .unixDomainSocket(path: socketPath), transportSecurity: .plaintext),
            services: services,
            interceptors: [RequestLogInterceptor(logger: logger)]
        )
        try await withGracefulShutdownHandler {
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask { try await server.serve() }
                if (try? await server.listeningAddress) != nil {
                    chmod(socketPath, 0o660)
                    logger.info("listening", metadata: ["csi.endpoint": "unix://\(socketPath)"])
                    onListening(socketPath)
                }
            }
        } onGracefulShutdown: {
            server.beginGracefulShutdown()
        }
        unlink(socketPath)
    }
}

/// The server could not start.
package struct CSIServerError: Error, CustomStringConvertible {
    /// What failed, with the path and the system's reason.
    package var message: String
    /// ``message``.
    package var description: String { message }
}

/// An exclusive `flock` on `<socket>.lock`, held while the server runs.
struct SocketLock {
    private let descriptor: Int32

    init(socketPath: String) throws {
        let path = socketPath + ".lock"
        descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw CSIServerError(message: "cannot open \(path): \(String(cString: strerror(errno)))")
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            close(descriptor)
            throw CSIServerError(message: "another driver instance is serving \(socketPath) (\(path) is locked)")
        }
    }

    func release() {
        close(descriptor)
    }
}
