import CSIProtocol
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import SecretsStoreCSI
import SecretsStoreCore
import SecretsStoreLinux
import SecretsStoreTesting

#if canImport(Glibc)
import Glibc
#endif

/// The floor for start-up time, idle memory and gRPC round trips: grpc-swift serving the same Identity and Node
/// services on a Unix socket, with nothing else (no interceptors, no Kubernetes or HTTPS clients, no metrics
/// listener, no service group). Run as `csi-bench bare-server <socket>`; SIGTERM stops it.
enum BareServer {
    static func run(socketPath: String) async throws {
        unlink(socketPath)
        let publisher = NodePublisher(
            kubernetes: FakeKubernetesClient([]),
            providers: FixedProviderDirectory([:]),
            mounter: RecordingMounter(),
            fileSystem: PosixFileSystem(),
            monotonicNow: { .zero },
            wallClockSeconds: { 0 },
            configuration: .init(nodeID: "bare")
        )
        let logger = Logger(label: "bare", factory: { _ in SwiftLogNoOpLogHandler() })
        let server = GRPCServer(
            transport: .http2NIOPosix(address: .unixDomainSocket(path: socketPath), transportSecurity: .plaintext),
            services: [
                IdentityService(driverName: "secrets-store.csi.k8s.io", vendorVersion: DriverVersion.current),
                NodeService(publisher: publisher, nodeID: "bare", logger: logger),
            ]
        )
        signal(SIGTERM, SIG_DFL)
        try await server.serve()
    }
}
