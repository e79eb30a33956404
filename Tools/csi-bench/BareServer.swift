import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import SecretsStoreCore
import SecretsStoreCoreTesting
import SecretsStoreApplication

#if canImport(Glibc)
import Glibc
#endif

/// The floor for start-up time, idle memory and gRPC round trips: grpc-swift serving the same Identity and Node
/// services on a Unix socket, with nothing else (no interceptors, no Kubernetes or HTTPS clients, no metrics
/// listener, no service group). Run as `csi-bench bare-server <socket>`; SIGTERM stops it.
///
/// The services come from the driver's assembly, made with in-memory fakes and never run: only its Identity
/// and Node services are served, by a bare `GRPCServer`.
enum BareServer {
    static func run(socketPath: String) async throws {
        unlink(socketPath)
        let logger = Logger(label: "bare", factory: { _ in SwiftLogNoOpLogHandler() })
        let driver = try await DriverAssembly(
            configuration: DriverConfiguration(socketPath: socketPath, nodeID: "bare", providerDirectories: [], builtInAzure: nil),
            seams: DriverAssembly.Seams(
                kubernetes: InMemoryKubernetesAPI([]),
                providers: FixedProviderDirectory([:]),
                mounter: RecordingMounter(),
                monotonicNow: { .zero },
                wallClockSeconds: { 0 }
            ),
            logger: logger
        )
        let server = GRPCServer(
            transport: .http2NIOPosix(address: .unixDomainSocket(path: socketPath), transportSecurity: .plaintext),
            services: [driver.identity, driver.node]
        )
        signal(SIGTERM, SIG_DFL)
        try await server.serve()
    }
}
