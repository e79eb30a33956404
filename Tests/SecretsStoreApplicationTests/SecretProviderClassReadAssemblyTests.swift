import Logging
import SecretsStoreCore
import SecretsStoreCoreTesting
import SecretsStoreApplication
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// How the assembled node plugin reads SecretProviderClasses (GETs shared by concurrent reads of one class; no
/// list, no watch), and the rotation loop's wait following the shortest `spec.refreshInterval`.
@Suite("Driver assembly: SecretProviderClass reads and refresh intervals", .timeLimit(.minutes(3)))
struct SecretProviderClassReadAssemblyTests {
    static let spc = SecretProviderClass(namespace: "ns", name: "spc", provider: "test", parameters: ["objects": "a"])
    static let files = ProviderResponse(
        files: [SecretFile(path: "username", mode: 0o644, contents: Array("admin".utf8))],
        objectVersions: [ObjectVersion(id: "secret/username", version: "1")]
    )

    static func request(target: String, spc: String = "spc", pod: Int = 1) -> PublishRequest {
        PublishRequest(
            volumeID: "csi-\(pod)",
            targetPath: target,
            accessType: .mount,
            readOnly: true,
            volumeContext: [
                "secretProviderClass": spc,
                "csi.storage.k8s.io/pod.name": "pod-\(pod)",
                "csi.storage.k8s.io/pod.namespace": "ns",
                "csi.storage.k8s.io/pod.uid": "uid-\(pod)",
                "csi.storage.k8s.io/serviceAccount.name": "default",
            ],
            secrets: [:]
        )
    }

    func assembly(root: String, kubernetes: any KubernetesClient) async throws -> DriverAssembly {
        try await DriverAssembly(
            configuration: DriverConfiguration(
                socketPath: root + "/csi.sock",
                nodeID: "node-1",
                providerDirectories: [],
                metricsAddress: "127.0.0.1:0",
                builtInAzure: nil
            ),
            seams: DriverAssembly.Seams(
                kubernetes: kubernetes,
                providers: FixedProviderDirectory(["test": StaticProvider(Self.files)]),
                mounter: RecordingMounter()
            ),
            logger: LogCapture().logger()
        )
    }

    @Test("with a client that could watch, a publish reads its class with one GET, and no class is ever listed or watched")
    func publishReadsTheClassWithAGETAndNothingIsWatched() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            // The in-memory API can list and watch classes (it is a ControllerKubernetesClient), as the REST client can.
            let api = InMemoryKubernetesAPI()
            api.add(Self.spc)
            let driver = try await assembly(root: root, kubernetes: api)
            let target = root + "/target"
            #expect(mkdir(target, 0o750) == 0)
            try await driver.withRunning { (_: DriverAssembly.Listening) async throws in
                #expect(try await driver.publisher.publish(Self.request(target: target), logger: Logger(label: "test")) == .published)
            }
            // After a publish that read the class and the whole run of the driver's services.
            #expect(api.calls([.getSecretProviderClass]).count == 1)
            #expect(api.calls([.listSecretProviderClasses, .watchSecretProviderClasses]).isEmpty)
        }
    }

    @Test("twenty publishes of one class starting together send one GET of it")
    func concurrentPublishesShareOneGET() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let api = InMemoryKubernetesAPI()
            api.add(Self.spc)
            let held = HeldClassReads(api)
            defer { held.release() }
            let driver = try await assembly(root: root, kubernetes: held)
            let targets = (1...20).map { root + "/target-\($0)" }
            for target in targets { #expect(mkdir(target, 0o750) == 0) }
            try await driver.withRunning { (_: DriverAssembly.Listening) async throws in
                try await withThrowingTaskGroup(of: NodePublisher.PublishOutcome.self) { group in
                    // Whatever happens below, no publish stays parked behind the held GET.
                    defer { held.release() }
                    for (index, target) in targets.enumerated() {
                        group.addTask { try await driver.publisher.publish(Self.request(target: target, pod: index + 1), logger: Logger(label: "test")) }
                    }
                    try await eventually("19 publishes joined the first one's GET") { driver.joinedClassReadCount == 19 }
                    held.release()
                    var published = 0
                    for try await outcome in group where outcome == .published { published += 1 }
                    #expect(published == 20)
                }
            }
            #expect(api.calls([.getSecretProviderClass]).count == 1)
        }
    }

    @Test("the rotation loop waits the shortest refreshInterval among published volumes, else the poll interval")
    func rotationWaitFollowsTheShortestInterval() async throws {
        let fileSystem = InMemoryFileSystem()
        let target = "/pods/uid-1/volumes/kubernetes.io~csi/secrets/mount"
        try fileSystem.createDirectories(at: target, permissions: 0o750)
        var fast = Self.spc
        fast.name = "fast"
        fast.refreshInterval = "10s"
        let publisher = NodePublisher(
            kubernetes: InMemoryKubernetesAPI([fast]),
            providers: FixedProviderDirectory(["test": StaticProvider(Self.files)]),
            mounter: RecordingMounter(fileSystem: fileSystem),
            fileSystem: fileSystem,
            monotonicNow: { .seconds(1000) },
            wallClockSeconds: { 1_795_919_943 },
            configuration: .init(nodeID: "node-1", rotation: RotationPolicy(enabled: true, interval: .seconds(120)))
        )

        func waits() async throws -> [Duration] {
            let waits = Mutex<[Duration]>([])
            let service = RotationService(publisher: publisher, interval: .seconds(120), logger: Logger(label: "test")) { duration in
                let count = waits.withLock { $0.append(duration); return $0.count }
                if count > 1 { throw CancellationError() }
            }
            try await service.run()
            return waits.withLock { $0 }
        }

        let before = try await waits()
        #expect(before.count == 2)
        #expect(before.allSatisfy { $0 >= .seconds(120) && $0 <= .seconds(132) })

        #expect(try await publisher.publish(Self.request(target: target, spc: "fast"), logger: Logger(label: "test")) == .published)
        let after = try await waits()
        #expect(after.count == 2)
        #expect(after.allSatisfy { $0 >= .seconds(10) && $0 <= .seconds(11) })
    }
}
