import CSIProtocol
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import SecretsStoreCore
import SecretsStoreCoreTesting
import SecretsStoreApplication
import SecretsStoreKubernetes
import SecretsStoreTesting
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The production assembly with in-memory fakes injected: what it starts, in which order, and how it stops.
@Suite("Driver assembly", .timeLimit(.minutes(3)))
struct DriverAssemblyTests {
    /// A configuration for a driver serving on `<root>/csi.sock` with no provider directories, the metrics
    /// listener on a free loopback port and no built-in Azure provider.
    static func configuration(root: String, rotation: RotationPolicy = .disabled, metricsAddress: String = "127.0.0.1:0") -> DriverConfiguration {
        DriverConfiguration(
            socketPath: root + "/csi.sock",
            nodeID: "node-1",
            providerDirectories: [],
            rotation: rotation,
            metricsAddress: metricsAddress,
            builtInAzure: nil
        )
    }

    @Test("recovery runs before the socket exists; then CSI and metrics listen; a graceful stop removes the socket")
    func startsInOrderAndStops() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let socket = root + "/csi.sock"
            let kubernetes = ObservingKubernetesClient { access(socket, F_OK) == 0 }
            let logs = LogCapture()
            let driver = try await DriverAssembly(
                configuration: Self.configuration(root: root),
                seams: DriverAssembly.Seams(kubernetes: kubernetes, providers: FixedProviderDirectory([:]), mounter: RecordingMounter()),
                logger: logs.logger()
            )
            try await driver.withRunning { (listening: DriverAssembly.Listening) async throws in
                #expect(listening.socketPath == socket)
                #expect(listening.metricsPort > 0)
                #expect(try await probeCSI(socketPath: socket))
                try await withCSIClient(socketPath: socket) { client in
                    let info = try await Csi_V1_Node.Client(wrapping: client).nodeGetInfo(Csi_V1_NodeGetInfoRequest())
                    #expect(info.nodeID == "node-1")
                }
            }
            #expect(kubernetes.podStatusListings == [false], "recovery listed once, before the socket was bound")
            #expect(access(socket, F_OK) != 0, "the socket is removed on a graceful stop")
            let lines = logs.all
            #expect(lines.contains { $0.contains("starting") && $0.contains("node.id=node-1") })
            #expect(lines.contains { $0.contains("metrics listening") })
            #expect(lines.contains { $0.contains("listening") && $0.contains("csi.endpoint=unix://\(socket)") })
        }
    }

    @Test("a failed recovery is logged and the driver serves anyway")
    func servesAfterFailedRecovery() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let kubernetes = ObservingKubernetesClient { false }
            kubernetes.failListing = true
            let logs = LogCapture()
            let driver = try await DriverAssembly(
                configuration: Self.configuration(root: root),
                seams: DriverAssembly.Seams(kubernetes: kubernetes, mounter: RecordingMounter()),
                logger: logs.logger()
            )
            try await driver.withRunning { (listening: DriverAssembly.Listening) async throws in
                #expect(try await probeCSI(socketPath: listening.socketPath))
            }
            #expect(logs.all.contains { $0.hasPrefix("WARNING could not list this node's pod statuses") })
        }
    }

    @Test("with rotation on, the loop runs cycles through the sleep seam and stops without an error")
    func rotationLoopRunsAndStopsCleanly() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let sleeps = Mutex(0)
            let logs = LogCapture()
            let driver = try await DriverAssembly(
                configuration: Self.configuration(root: root, rotation: RotationPolicy(enabled: true, interval: .seconds(60))),
                seams: DriverAssembly.Seams(
                    kubernetes: InMemoryKubernetesAPI(),
                    mounter: RecordingMounter(),
                    rotationSleep: { duration in
                        // The first wait ends at once; the next one lasts until the group stops.
                        if sleeps.withLock({ count in defer { count += 1 }; return count }) > 0 {
                            try await DriverAssembly.Seams.parkedRotation(duration)
                        }
                    }
                ),
                logger: logs.logger()
            )
            try await driver.withRunning { _ in
                try await eventually("a finished rotation cycle") { logs.all.contains { $0.contains("rotation cycle finished") } }
            }
            #expect(logs.all.filter { $0.contains("rotation cycle finished") }.count == 1)
            #expect(sleeps.withLock { $0 } == 2)
        }
    }

    @Test("a bad --metrics-addr fails the run, and whoever waits for listening hears of it")
    func badMetricsAddress() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let driver = try await DriverAssembly(
                configuration: Self.configuration(root: root, metricsAddress: "no-port"),
                seams: DriverAssembly.Seams(kubernetes: InMemoryKubernetesAPI(), mounter: RecordingMounter()),
                logger: LogCapture().logger()
            )
            await #expect(throws: (any Error).self) {
                try await driver.withRunning { _ in Issue.record("listened with a bad metrics address") }
            }
            await #expect(throws: (any Error).self) { try await driver.listening() }
        }
    }

    @Test("without an injected client the Kubernetes configuration is read, and its error comes out unchanged")
    func kubernetesConfiguration() async throws {
        let fixed = KubernetesConfiguration(server: "http://127.0.0.1:1", credentials: .token("t"))
        #expect(try DriverConfiguration.KubernetesSource.configuration(fixed).resolve() == fixed)
        #expect(throws: KubernetesConfiguration.LoadError.self) {
            try DriverConfiguration.KubernetesSource.kubeconfig(path: "/nonexistent/kubeconfig").resolve()
        }
        var configuration = Self.configuration(root: "/tmp")
        configuration.kubernetes = .kubeconfig(path: "/nonexistent/kubeconfig")
        await #expect(throws: KubernetesConfiguration.LoadError.self) {
            _ = try await DriverAssembly(configuration: configuration, seams: DriverAssembly.Seams(mounter: RecordingMounter()), logger: LogCapture().logger())
        }
        // A REST client it made itself is shut down with the assembly.
        configuration.kubernetes = .configuration(fixed)
        let driver = try await DriverAssembly(configuration: configuration, seams: DriverAssembly.Seams(mounter: RecordingMounter()), logger: LogCapture().logger())
        try await driver.shutdown()
        try await driver.shutdown()
    }

    @Test("the built-in Azure provider is made from the configuration, and an injected provider of that name wins")
    func builtInProviders() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            var configuration = Self.configuration(root: root)
            configuration.builtInAzure = .init()
            let kubernetes = InMemoryKubernetesAPI([SecretProviderClass(namespace: "ns", name: "spc", provider: "azure", parameters: ["a": "b"])])
            kubernetes.add(PodInfo(namespace: "ns", name: "pod", uid: "uid-1", ownerReferences: []))
            let injected = StaticProvider(
                ProviderResponse(
                    files: [SecretFile(path: "password", mode: 0o600, contents: Array("pw".utf8))],
                    objectVersions: [ObjectVersion(id: "secret/password", version: "1")]
                )
            )
            let driver = try await DriverAssembly(
                configuration: configuration,
                seams: DriverAssembly.Seams(kubernetes: kubernetes, builtInProviders: ["azure": injected], mounter: RecordingMounter()),
                logger: LogCapture().logger()
            )
            let target = root + "/pods/uid-1/volumes/kubernetes.io~csi/secrets/mount"
            let logger = LogCapture().logger()
            let outcome = try await driver.publisher.publish(
                PublishRequest(
                    volumeID: "v", targetPath: target, accessType: .mount, readOnly: true,
                    volumeContext: [
                        "secretProviderClass": "spc", "csi.storage.k8s.io/pod.name": "pod",
                        "csi.storage.k8s.io/pod.namespace": "ns", "csi.storage.k8s.io/pod.uid": "uid-1",
                        "csi.storage.k8s.io/serviceAccount.name": "default",
                    ],
                    secrets: [:]
                ),
                logger: logger
            )
            #expect(outcome == .published)
            #expect(injected.requests.count == 1)
            try await driver.publisher.unpublish(UnpublishRequest(volumeID: "v", targetPath: target), logger: logger)
            // The Azure HTTPS client it made is shut down even though the driver never ran.
            try await driver.shutdown()
        }
    }
}

/// A ``KubernetesClient`` over ``InMemoryKubernetesAPI`` that records, for every pod-status listing, what
/// `probe` said at that moment, and can fail the listing.
final class ObservingKubernetesClient: ForwardingKubernetesClient {
    let wrapped: any KubernetesClient = InMemoryKubernetesAPI()
    private let probe: @Sendable () -> Bool
    private let state = Mutex<(listings: [Bool], fail: Bool)>(([], false))

    init(probe: @escaping @Sendable () -> Bool) {
        self.probe = probe
    }

    /// What `probe` said at each listing, in order.
    var podStatusListings: [Bool] { state.withLock { $0.listings } }
    /// Makes listings fail.
    var failListing: Bool {
        get { state.withLock { $0.fail } }
        set { state.withLock { $0.fail = newValue } }
    }

    func podStatuses(nodeName: String, logger: Logger) async throws(KubernetesClientError) -> [SecretProviderClassPodStatus] {
        let seen = probe()
        let fail = state.withLock { state in
            state.listings.append(seen)
            return state.fail
        }
        if fail { throw .unavailable("connection refused") }
        return try await wrapped.podStatuses(nodeName: nodeName, logger: logger)
    }
}
