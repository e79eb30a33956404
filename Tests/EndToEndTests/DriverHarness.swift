import CSIProtocol
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import SecretsStoreCore
import SecretsStoreCoreTesting
import SecretsStoreApplication
import SecretsStoreKubernetes
import SecretsStoreLinux
import SecretsStoreObservability
import SecretsStoreTesting

/// The whole driver as kubelet sees it: the production assembly serving on a real Unix socket, its Kubernetes
/// REST client talking to the fake API server over HTTP, a test provider on its own socket speaking v1alpha1,
/// and real tmpfs mounts when running as root (a recording mounter otherwise).
struct DriverHarness {
    let root: String
    let api: FakeKubernetesAPIServer
    let provider: TestProviderServer
    let logs: LogCapture
    let mounter: any Mounter
    let publisher: NodePublisher
    let metrics: PrometheusDriverMetrics
    /// The loopback port of the driver's `/metrics` and `/healthz` listener.
    let metricsPort: Int
    let node: Csi_V1_Node.Client<HTTP2ClientTransport.Posix>
    let identity: Csi_V1_Identity.Client<HTTP2ClientTransport.Posix>

    var providersDirectory: String { root + "/providers" }

    func targetPath(volume: String = "secrets", podUID: String = "uid-1") -> String {
        root + "/pods/\(podUID)/volumes/kubernetes.io~csi/\(volume)/mount"
    }

    static let statusPath = "/apis/secrets-store.csi.x-k8s.io/v1/namespaces/ns/secretproviderclasspodstatuses"

    /// The SecretProviderClassPodStatus `name` once the fake API server has it: the driver writes it after
    /// answering the publish, so it may land a moment later. Throws if it is not there within 20 s.
    func podStatus(_ name: String) async throws -> [String: Any]? {
        try await eventually("the pod status \(name)") { api.object(at: Self.statusPath + "/" + name) != nil }
        return api.object(at: Self.statusPath + "/" + name)
    }

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
    func isMounted(_ path: String) async throws -> Bool {
        try await mounter.state(of: path) == .mounted
    }
}

/// Starts everything, runs `body`, and tears everything down (unmounting anything left mounted).
///
/// The driver is the production assembly (``DriverAssembly``) with its group running: start-up recovery, the
/// CSI server on `<root>/csi.sock`, the metrics listener on a free loopback port and, with rotation on, the
/// rotation loop (parked: tests run cycles with `publisher.rotate`). What differs from production is only
/// what is injected: the Kubernetes REST client points at the fake API server, the provider directories are
/// under `root`, the mounter records when not root, and the wall clock is fixed. `builtInAzure` configures the assembly's own Azure
/// provider (wired to the driver's metrics as in production); a provider in `builtIn` wins over it by name.
func withDriver(
    rotation: RotationPolicy = .disabled,
    builtInAzure: DriverConfiguration.BuiltInAzure? = nil,
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
        // No kept-alive connections: start-up recovery's request would otherwise leave one in the REST client's
        // pool, and tests that shut the API server down expect it to be unreachable.
        let api = try await FakeKubernetesAPIServer(requiredToken: "driver-token")
        let provider = try await TestProviderServer(socketPath: root + "/providers/test.sock", behaviour: providerBehaviour)
        let mounter: any Mounter = runningAsRoot ? LinuxMounter(options: tmpfsOptions) : RecordingMounter(fileSystem: fileSystem)
        let logs = LogCapture()
        let logger = logs.logger(level: .trace, format: .text)
        let cleanup = { (publisher: NodePublisher?) in
            for volume in publisher?.publishedTargets ?? [] { try? await mounter.unmount(volume) }
            for target in ["secrets", "other"].map({ root + "/pods/uid-1/volumes/kubernetes.io~csi/\($0)/mount" }) {
                try? await mounter.unmount(target)
            }
            for index in 0..<200 {
                try? await mounter.unmount(root + "/pods/uid-\(index)/volumes/kubernetes.io~csi/secrets/mount")
            }
            provider.shutdown()
            try? await api.shutdown()
        }
        var assembly: DriverAssembly?
        do {
            let driver = try await DriverAssembly(
                configuration: DriverConfiguration(
                    socketPath: root + "/csi.sock",
                    nodeID: "node-1",
                    providerDirectories: [root + "/etc-providers", root + "/providers"],
                    maxReceiveMessageBytes: maxReceiveMessageBytes,
                    kubernetes: .configuration(KubernetesConfiguration(server: api.url, credentials: .token("driver-token"))),
                    rotation: rotation,
                    syncSecrets: syncSecrets,
                    metricsAddress: "127.0.0.1:0",
                    builtInAzure: builtInAzure
                ),
                seams: DriverAssembly.Seams(
                    builtInProviders: builtIn,
                    mounter: mounter,
                    fileSystem: fileSystem,
                    monotonicNow: { ContinuousClock.now - ContinuousClock.Instant.testOrigin },
                    wallClockSeconds: { 1_795_919_943 },
                    rotationSleep: DriverAssembly.Seams.parkedRotation
                ),
                logger: logger
            )
            assembly = driver
            try await driver.withRunning(maximumGracefulShutdownDuration: .seconds(10)) { listening in
                try await withCSIClient(socketPath: listening.socketPath) { client in
                    try await body(
                        DriverHarness(
                            root: root,
                            api: api,
                            provider: provider,
                            logs: logs,
                            mounter: mounter,
                            publisher: driver.publisher,
                            metrics: driver.metrics,
                            metricsPort: listening.metricsPort,
                            node: Csi_V1_Node.Client(wrapping: client),
                            identity: Csi_V1_Identity.Client(wrapping: client)
                        )
                    )
                }
            }
        } catch {
            await cleanup(assembly?.publisher)
            throw error
        }
        await cleanup(assembly?.publisher)
    }
}

extension ContinuousClock.Instant {
    static let testOrigin = ContinuousClock.now
}

/// Sends SIGTERM to `process` and waits for it to exit, at most `limit`; past that it is killed (SIGKILL) and
/// ``EventuallyTimedOut`` is thrown. `Process.waitUntilExit()` alone is synchronous, so a driver that ignores
/// SIGTERM would block the whole test run past every time limit.
func terminateAndWait(_ process: Process, within limit: Duration = .seconds(30)) async throws {
    process.terminate()
    do {
        try await eventually("process \(process.processIdentifier) exiting after SIGTERM", within: limit) { !process.isRunning }
    } catch {
        kill(process.processIdentifier, SIGKILL)
        try await onOwnThread { process.waitUntilExit() }
        throw error
    }
    try await onOwnThread { process.waitUntilExit() }
}
