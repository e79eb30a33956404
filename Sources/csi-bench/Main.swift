import CSIProtocol
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import SecretsStoreCSI
import SecretsStoreCore
import SecretsStoreKubernetes
import SecretsStoreLinux
import SecretsStoreTesting

#if canImport(Glibc)
import Glibc
#endif

/// Publish latency through the real server on a Unix socket, with a v1alpha1 test provider on its own socket,
/// the Kubernetes REST client against the fake API server on loopback, and real tmpfs mounts when root.
/// Prints p50/p90/p99 for each object count.
@main
struct Bench {
    static func main() async throws {
        let iterations = Int(CommandLine.arguments.dropFirst().first ?? "") ?? 200
        let fileSystem = PosixFileSystem()
        let root = try fileSystem.makeUniqueDirectory(in: "/tmp", prefix: "bench-")
        defer { try? fileSystem.removeItem(at: root) }
        try fileSystem.createDirectories(at: root + "/providers", permissions: 0o755)

        let api = try await FakeKubernetesAPIServer()
        api.seed(
            path: "/apis/secrets-store.csi.x-k8s.io/v1/namespaces/ns/secretproviderclasses",
            object: ["metadata": ["name": "spc"], "spec": ["provider": "test", "parameters": ["a": "b"]]]
        )
        let kubernetes = try RESTKubernetesClient(configuration: KubernetesConfiguration(server: api.url))
        let provider = try await TestProviderServer(socketPath: root + "/providers/test.sock", behaviour: .hang)
        let mounter: any Mounter = runningAsRoot ? LinuxMounter() : RecordingMounter()
        let logger = Logger(label: "bench", factory: { _ in SwiftLogNoOpLogHandler() })
        let publisher = NodePublisher(
            kubernetes: kubernetes,
            providers: ProviderSocketDirectory(directories: [root + "/providers"], maxReceiveMessageBytes: 4 << 20),
            mounter: mounter,
            fileSystem: fileSystem,
            monotonicNow: { ContinuousClock.now - ContinuousClock.Instant.benchOrigin },
            wallClockSeconds: { Int64(time(nil)) },
            configuration: .init(nodeID: "bench")
        )
        let services: [any RegistrableRPCService] = [
            IdentityService(driverName: "secrets-store.csi.k8s.io", vendorVersion: DriverVersion.current),
            NodeService(publisher: publisher, nodeID: "bench", logger: logger),
        ]
        print("mounts: \(runningAsRoot ? "real tmpfs" : "recording mounter (not root)"), iterations: \(iterations)")
        print("objects  p50_ms  p90_ms  p99_ms")
        try await withServing(socketPath: root + "/csi.sock", services: services, logger: logger) { client in
                let node = Csi_V1_Node.Client(wrapping: client)
                for objects in [1, 10, 50] {
                    provider.setBehaviour(
                        .respond(TestProviderServer.response(files: (0..<objects).map { ("secret-\($0)", String(repeating: "s", count: 64)) }))
                    )
                    var samples: [Double] = []
                    for index in 0..<(iterations + 10) {
                        let target = root + "/pods/uid/volumes/kubernetes.io~csi/v\(index % 4)/mount"
                        var request = Csi_V1_NodePublishVolumeRequest()
                        request.volumeID = "v"
                        request.targetPath = target
                        request.readonly = true
                        request.volumeCapability.mount = .init()
                        request.volumeContext = [
                            "secretProviderClass": "spc", "csi.storage.k8s.io/pod.name": "p",
                            "csi.storage.k8s.io/pod.namespace": "ns", "csi.storage.k8s.io/pod.uid": "uid",
                        ]
                        let start = ContinuousClock.now
                        _ = try await node.nodePublishVolume(request)
                        let elapsed = ContinuousClock.now - start
                        var unpublish = Csi_V1_NodeUnpublishVolumeRequest()
                        unpublish.volumeID = "v"
                        unpublish.targetPath = target
                        _ = try await node.nodeUnpublishVolume(unpublish)
                        if index >= 10 { samples.append(Double(elapsed.components.attoseconds) / 1e15 + Double(elapsed.components.seconds) * 1000) }
                    }
                    samples.sort()
                    func percentile(_ p: Double) -> String {
                        let value = samples[min(samples.count - 1, Int(Double(samples.count) * p))]
                        return String(Double(Int(value * 1000)) / 1000)
                    }
                    print("\(objects)        \(percentile(0.5))   \(percentile(0.9))   \(percentile(0.99))")
                }
        }
        provider.shutdown()
        try await kubernetes.shutdown()
        try await api.shutdown()
        try await RotationBench.run(volumes: 110, objects: 10, root: root)
    }
}

extension ContinuousClock.Instant {
    static let benchOrigin = ContinuousClock.now
}
