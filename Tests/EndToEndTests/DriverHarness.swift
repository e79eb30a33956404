import CSIProtocol
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import SecretsStoreCSI
import SecretsStoreCore
import SecretsStoreKubernetes
import SecretsStoreLinux
import SecretsStoreObservability
import SecretsStoreTesting

/// The whole driver as kubelet sees it: the real CSI server on a real Unix socket, the real Kubernetes REST
/// client talking to the fake API server over HTTP, a test provider on its own socket speaking v1alpha1, and
/// real tmpfs mounts when running as root (a recording mounter otherwise).
struct DriverHarness {
    let root: String
    let api: FakeKubernetesAPIServer
    let provider: TestProviderServer
    let logs: LogCapture
    let mounter: any Mounter
    let publisher: NodePublisher
    let metrics: PrometheusDriverMetrics
    let node: Csi_V1_Node.Client<HTTP2ClientTransport.Posix>
    let identity: Csi_V1_Identity.Client<HTTP2ClientTransport.Posix>

    var providersDirectory: String { root + "/providers" }

    func targetPath(volume: String = "secrets", podUID: String = "uid-1") -> String {
        root + "/pods/\(podUID)/volumes/kubernetes.io~csi/\(volume)/mount"
    }

    static let statusPath = "/apis/secrets-store.csi.x-k8s.io/v1/namespaces/ns/secretproviderclasspodstatuses"

    /// A request as kubelet sends it for an inline volume of a pod with podInfoOnMount.
    func publishRequest(
        spc: String = "spc",
        target: String? = nil,
        extraContext: [String: String] = [:],
        secrets: [String: String] = [:]
    ) -> Csi_V1_NodePublishVolumeRequest {
        var request = Csi_V1_NodePublishVolumeRequest()
        request.volumeID = "csi-0123456789abcdef"
        request.targetPath = target ?? targetPath()
        request.readonly = true
        var capability = Csi_V1_VolumeCapability()
        capability.mount = Csi_V1_VolumeCapability.MountVolume()
        capability.accessMode.mode = .singleNodeReaderOnly
        request.volumeCapability = capability
        request.volumeContext = [
            "secretProviderClass": spc,
            "csi.storage.k8s.io/pod.name": "web-0",
            "csi.storage.k8s.io/pod.namespace": "ns",
            "csi.storage.k8s.io/pod.uid": "uid-1",
            "csi.storage.k8s.io/serviceAccount.name": "default",
            "csi.storage.k8s.io/ephemeral": "true",
        ].merging(extraContext) { _, new in new }
        request.secrets = secrets
        return request
    }

    func unpublishRequest(target: String? = nil) -> Csi_V1_NodeUnpublishVolumeRequest {
        var request = Csi_V1_NodeUnpublishVolumeRequest()
        request.volumeID = "csi-0123456789abcdef"
        request.targetPath = target ?? targetPath()
        return request
    }

    func seedSecretProviderClass(name: String = "spc", provider: String = "test", parameters: [String: String]? = nil) {
        api.seed(
            path: "/apis/secrets-store.csi.x-k8s.io/v1/namespaces/ns/secretproviderclasses",
            object: [
                "apiVersion": "secrets-store.csi.x-k8s.io/v1", "kind": "SecretProviderClass",
                "metadata": ["name": name, "namespace": "ns"],
                "spec": ["provider": provider, "parameters": parameters ?? ["keyvaultName": "kv", "objects": "array: []"]],
            ]
        )
    }

    /// Whether `path` is a mount point right now (from the kernel when root, else the recording mounter).
    func isMounted(_ path: String) throws -> Bool {
        try mounter.state(of: path) == .mounted
    }
}

/// Starts everything, runs `body`, and tears everything down (unmounting anything left mounted).
func withDriver(
    rotation: RotationPolicy = .disabled,
    maxReceiveMessageBytes: Int = 4_194_304,
    builtIn: [String: any SecretsProvider] = [:],
    syncSecrets: Bool = false,
    tmpfsOptions: String = "mode=0755",
    providerBehaviour: TestProviderServer.Behaviour = .respond(
        TestProviderServer.response(files: [("username", "admin"), ("password", "p@ss-SENTINEL")])
    ),
    _ body: (DriverHarness) async throws -> Void
) async throws {
    try await withTemporaryDirectory { (root: String) async throws in
        let fileSystem = PosixFileSystem()
        try fileSystem.createDirectories(at: root + "/providers", permissions: 0o755)
        let api = try await FakeKubernetesAPIServer(requiredToken: "driver-token")
        let kubernetes = try RESTKubernetesClient(
            configuration: KubernetesConfiguration(server: api.url, credentials: .token("driver-token"))
        )
        let provider = try await TestProviderServer(socketPath: root + "/providers/test.sock", behaviour: providerBehaviour)
        let mounter: any Mounter = runningAsRoot ? LinuxMounter(options: tmpfsOptions) : RecordingMounter()
        let logs = LogCapture()
        let logger = logs.logger(level: .trace)
        let metrics = PrometheusDriverMetrics()
        let publisher = NodePublisher(
            kubernetes: kubernetes,
            providers: ProviderSocketDirectory(
                builtIn: builtIn,
                directories: [root + "/etc-providers", root + "/providers"],
                maxReceiveMessageBytes: maxReceiveMessageBytes
            ),
            mounter: mounter,
            fileSystem: fileSystem,
            monotonicNow: { ContinuousClock.now - ContinuousClock.Instant.testOrigin },
            wallClockSeconds: { 1_795_919_943 },
            configuration: .init(nodeID: "node-1", rotation: rotation, syncSecrets: syncSecrets),
            metrics: metrics
        )
        let services: [any RegistrableRPCService] = [
            IdentityService(driverName: "secrets-store.csi.k8s.io", vendorVersion: DriverVersion.current),
            NodeService(publisher: publisher, nodeID: "node-1", logger: logger),
        ]
        let cleanup = {
            for volume in publisher.volumes.targets { try? mounter.unmount(volume) }
            for target in ["secrets", "other"].map({ root + "/pods/uid-1/volumes/kubernetes.io~csi/\($0)/mount" }) {
                try? mounter.unmount(target)
            }
            for index in 0..<200 {
                try? mounter.unmount(root + "/pods/uid-\(index)/volumes/kubernetes.io~csi/secrets/mount")
            }
            provider.shutdown()
            try? await kubernetes.shutdown()
            try? await api.shutdown()
        }
        do {
            try await withServing(socketPath: root + "/csi.sock", services: services, logger: logger) { client in
                    try await body(
                        DriverHarness(
                            root: root,
                            api: api,
                            provider: provider,
                            logs: logs,
                            mounter: mounter,
                            publisher: publisher,
                            metrics: metrics,
                            node: Csi_V1_Node.Client(wrapping: client),
                            identity: Csi_V1_Identity.Client(wrapping: client)
                        )
                    )
            }
        } catch {
            await cleanup()
            throw error
        }
        await cleanup()
    }
}

extension ContinuousClock.Instant {
    static let testOrigin = ContinuousClock.now
}

/// The gRPC status code a call failed with, or `nil` if it succeeded.
func statusCode(_ call: () async throws -> Void) async -> RPCError.Code? {
    do {
        try await call()
        return nil
    } catch let error as RPCError {
        return error.code
    } catch {
        return .unknown
    }
}
