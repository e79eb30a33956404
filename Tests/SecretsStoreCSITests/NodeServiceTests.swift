#if canImport(Glibc)
import Glibc
#endif
import CSIProtocol
import GRPCCore
import GRPCInProcessTransport
import GRPCNIOTransportHTTP2
import Logging
import SecretsStoreCSI
import SecretsStoreCore
import SecretsStoreCoreTesting
import SecretsStoreApplication
import SecretsStoreTesting
import SecretsStoreLinux
import Synchronization
import Testing

/// A provider that answers only when released, and records whether it saw its task cancelled.
final class GatedProvider: SecretsProvider {
    private struct State {
        var started = 0
        var released = false
        var sawCancellation = false
    }
    private let state = Mutex(State())

    var started: Int { state.withLock { $0.started } }
    var sawCancellation: Bool { state.withLock { $0.sawCancellation } }
    func release() { state.withLock { $0.released = true } }

    func fetch(_ request: ProviderRequest, logger: Logger) async throws(ProviderFailure) -> ProviderResponse {
        state.withLock { $0.started += 1 }
        // Bounded: a test that forgets to release or cancel fails after 20 s instead of hanging.
        for _ in 0..<4000 {
            if Task.isCancelled {
                state.withLock { $0.sawCancellation = true }
                throw .cancelled
            }
            if state.withLock({ $0.released }) {
                return ProviderResponse(
                    files: [SecretFile(path: "password", mode: 0o644, contents: Array("value".utf8))],
                    objectVersions: [ObjectVersion(id: "secret/password", version: "1")]
                )
            }
            try? await Task.sleep(for: .milliseconds(5))
        }
        throw .unavailable("never released")
    }
}

/// The CSI Node service over GRPCCore's in-process transport (or, where the transport is the point, a real
/// Unix socket): a real generated client and the real service, error mapping and interceptor, with no root
/// and no cluster.
struct InProcessNode<Transport: ClientTransport> {
    let node: Csi_V1_Node.Client<Transport>
    let identity: Csi_V1_Identity.Client<Transport>
    let mounter: RecordingMounter
    let kubernetes: InMemoryKubernetesAPI
    let logs: LogCapture
    let root: String

    var target: String { target(uid: "uid-1") }

    func target(uid: String) -> String { root + "/pods/\(uid)/volumes/kubernetes.io~csi/secrets/mount" }

    func publishRequest(spc: String = "spc", uid: String = "uid-1") -> Csi_V1_NodePublishVolumeRequest {
        var request = Csi_V1_NodePublishVolumeRequest()
        request.volumeID = "csi-0123"
        request.targetPath = target(uid: uid)
        request.readonly = true
        request.volumeCapability.mount = Csi_V1_VolumeCapability.MountVolume()
        request.volumeContext = [
            "secretProviderClass": spc,
            "csi.storage.k8s.io/pod.name": "web-\(uid)",
            "csi.storage.k8s.io/pod.namespace": "ns",
            "csi.storage.k8s.io/pod.uid": uid,
            "csi.storage.k8s.io/serviceAccount.name": "default",
        ]
        return request
    }

    /// The services and fakes for one test.
    struct Parts {
        let services: [any RegistrableRPCService]
        let interceptors: [any ServerInterceptor]
        let mounter: RecordingMounter
        let kubernetes: InMemoryKubernetesAPI
        let logs: LogCapture
    }

    /// The Identity and Node services of the production assembly (never run: only its services are served
    /// here), over fakes of the Kubernetes client, provider and mounter.
    static func parts(provider: any SecretsProvider, root: String) async throws -> Parts {
        let mounter = RecordingMounter()
        let kubernetes = InMemoryKubernetesAPI([
            SecretProviderClass(namespace: "ns", name: "spc", provider: "test", parameters: ["objects": "array: []"])
        ])
        let logs = LogCapture()
        let logger = logs.logger(level: .debug)
        let driver = try await DriverAssembly(
            configuration: DriverConfiguration(socketPath: root + "/unused.sock", nodeID: "node-1", builtInAzure: nil),
            seams: DriverAssembly.Seams(
                kubernetes: kubernetes,
                providers: FixedProviderDirectory(["test": provider]),
                mounter: mounter,
                fileSystem: PosixFileSystem(),
                monotonicNow: { .seconds(1) },
                wallClockSeconds: { 1_795_919_943 }
            ),
            logger: logger
        )
        return Parts(
            services: [driver.identity, driver.node],
            interceptors: [RequestLogInterceptor(logger: logger)],
            mounter: mounter,
            kubernetes: kubernetes,
            logs: logs
        )
    }
}

extension InProcessNode where Transport == InProcessTransport.Client {
    /// Runs `body` against the services over the in-process transport.
    static func run(provider: any SecretsProvider, _ body: (Self) async throws -> Void) async throws {
        try await withTemporaryDirectory { root in
            let parts = try await parts(provider: provider, root: root)
            let transport = InProcessTransport()
            try await withGRPCServer(transport: transport.server, services: parts.services, interceptors: parts.interceptors) { _ in
                try await withGRPCClient(transport: transport.client) { client in
                    try await body(
                        Self(
                            node: Csi_V1_Node.Client(wrapping: client),
                            identity: Csi_V1_Identity.Client(wrapping: client),
                            mounter: parts.mounter,
                            kubernetes: parts.kubernetes,
                            logs: parts.logs,
                            root: root
                        )
                    )
                }
            }
        }
    }
}

extension InProcessNode where Transport == HTTP2ClientTransport.Posix {
    /// Runs `body` against the services on a real Unix socket: for what only a real transport reports, such
    /// as a client that hangs up (the in-process transport cancels calls only when the server shuts down).
    static func runOverUnixSocket(provider: any SecretsProvider, _ body: (Self) async throws -> Void) async throws {
        try await withTemporaryDirectory { root in
            let parts = try await parts(provider: provider, root: root)
            let socket = root + "/csi.sock"
            let (listening, signal) = AsyncStream.makeStream(of: String.self)
            let server = CSIServer(socketPath: socket, services: parts.services, logger: parts.logs.logger(), onListening: { signal.yield($0) })
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await server.run() }
                for await _ in listening { break }
                try await withCSIClient(socketPath: socket) { client in
                    try await body(
                        Self(
                            node: Csi_V1_Node.Client(wrapping: client),
                            identity: Csi_V1_Identity.Client(wrapping: client),
                            mounter: parts.mounter,
                            kubernetes: parts.kubernetes,
                            logs: parts.logs,
                            root: root
                        )
                    )
                }
                group.cancelAll()
            }
        }
    }
}


@Suite(.timeLimit(.minutes(3))) struct NodeServiceTests {
    @Test func answersInfoCapabilitiesAndUnimplemented() async throws {
        let provider = GatedProvider()
        try await InProcessNode.run(provider: provider) { harness in
            let info = try await harness.node.nodeGetInfo(Csi_V1_NodeGetInfoRequest())
            let capabilities = try await harness.node.nodeGetCapabilities(Csi_V1_NodeGetCapabilitiesRequest())
            let plugin = try await harness.identity.getPluginInfo(Csi_V1_GetPluginInfoRequest())
            #expect(info.nodeID == "node-1")
            // Exactly VOLUME_MOUNT_GROUP: kubelet then passes the pod's fsGroup instead of chowning the volume.
            #expect(capabilities.capabilities.map(\.rpc.type) == [.volumeMountGroup])
            #expect(plugin.name == "secrets-store.csi.k8s.io")
            #expect(await statusCode { _ = try await harness.node.nodeStageVolume(Csi_V1_NodeStageVolumeRequest()) } == .unimplemented)
            #expect(await statusCode { _ = try await harness.node.nodeGetVolumeStats(Csi_V1_NodeGetVolumeStatsRequest()) } == .unimplemented)
        }
    }

    @Test func mapsDomainErrorsThroughTheService() async throws {
        let provider = GatedProvider()
        provider.release()
        try await InProcessNode.run(provider: provider) { harness in
            var missingID = harness.publishRequest()
            missingID.volumeID = ""
            #expect(await statusCode { _ = try await harness.node.nodePublishVolume(missingID) } == .invalidArgument)
            #expect(await statusCode { _ = try await harness.node.nodePublishVolume(harness.publishRequest(spc: "nope")) } == .failedPrecondition)
            harness.kubernetes.fail(.all, with: .unavailable("connection refused"))
            #expect(await statusCode { _ = try await harness.node.nodePublishVolume(harness.publishRequest()) } == .unavailable)
            harness.kubernetes.fail(.all, with: .forbidden("system:serviceaccount:kube-system:csi cannot get"))
            #expect(await statusCode { _ = try await harness.node.nodePublishVolume(harness.publishRequest()) } == .permissionDenied)
            harness.kubernetes.fail(.all, with: nil)
            #expect(await statusCode { _ = try await harness.node.nodePublishVolume(harness.publishRequest()) } == nil)
            #expect(harness.mounter.mounted == [harness.target])
            var unpublish = Csi_V1_NodeUnpublishVolumeRequest()
            unpublish.volumeID = "csi-0123"
            unpublish.targetPath = harness.target
            #expect(await statusCode { _ = try await harness.node.nodeUnpublishVolume(unpublish) } == nil)
            #expect(harness.mounter.mounted.isEmpty)
        }
    }

    /// A kubelet that gives up mid-fetch: the provider sees its task cancelled, the tmpfs the publish mounted is
    /// unmounted, no pod status is written, and the failure is logged as a cancellation.
    @Test func aClientThatCancelsMidFetchLeavesNothing() async throws {
        let provider = GatedProvider()
        try await InProcessNode.runOverUnixSocket(provider: provider) { harness in
            let call = Task { try await harness.node.nodePublishVolume(harness.publishRequest()) }
            try await eventually("provider.started == 1") { provider.started == 1 }
            #expect(harness.mounter.mounted == [harness.target])
            call.cancel()
            _ = await call.result
            try await eventually("provider.sawCancellation && harness.mounter.mounted.isEmpty") { provider.sawCancellation && harness.mounter.mounted.isEmpty }
            #expect(provider.sawCancellation)
            #expect(harness.mounter.mounted.isEmpty)
            #expect(harness.mounter.calls == [.mount(harness.target), .unmount(harness.target)])
            #expect(harness.kubernetes.podStatuses.isEmpty)
            try await eventually("harness.logs.all.contains { $0.contains(\"publish failed\") }") { harness.logs.all.contains { $0.contains("publish failed") } }
            #expect(harness.logs.all.contains { $0.contains("publish failed") && $0.contains("cancelled") })
        }
    }

    /// A deadline set by the client: GRPCCore cancels the call when it passes, and the publish unwinds the same way.
    @Test func aDeadlineThatPassesMidFetchLeavesNothing() async throws {
        let provider = GatedProvider()
        try await InProcessNode.run(provider: provider) { harness in
            var options = CallOptions.defaults
            options.timeout = .milliseconds(300)
            let result = await statusCode { _ = try await harness.node.nodePublishVolume(harness.publishRequest(), options: options) }
            #expect(result == .deadlineExceeded)
            try await eventually("provider.sawCancellation && harness.mounter.mounted.isEmpty") { provider.sawCancellation && harness.mounter.mounted.isEmpty }
            #expect(provider.sawCancellation)
            #expect(harness.mounter.mounted.isEmpty)
            #expect(harness.kubernetes.podStatuses.isEmpty)
        }
    }

    /// Two pods of one Deployment publishing together share one fetch, each with its own deadline: the one
    /// whose deadline passes first fails and leaves nothing, the other gets the answer from the same fetch.
    @Test func twoJoinersWithDifferentDeadlinesKeepTheirOwn() async throws {
        let provider = GatedProvider()
        try await InProcessNode.run(provider: provider) { harness in
            let patient = Task { try await harness.node.nodePublishVolume(harness.publishRequest(uid: "uid-1")) }
            try await eventually("provider.started == 1") { provider.started == 1 }
            var short = CallOptions.defaults
            short.timeout = .milliseconds(300)
            let hasty = await statusCode { _ = try await harness.node.nodePublishVolume(harness.publishRequest(uid: "uid-2"), options: short) }
            #expect(hasty == .deadlineExceeded)
            try await eventually("!harness.mounter.mounted.contains(harness.target(uid: \"uid-2\"))") { !harness.mounter.mounted.contains(harness.target(uid: "uid-2")) }
            #expect(!harness.mounter.mounted.contains(harness.target(uid: "uid-2")))
            #expect(!provider.sawCancellation)
            provider.release()
            _ = try await patient.value
            #expect(provider.started == 1)
            #expect(harness.mounter.mounted == [harness.target(uid: "uid-1")])
            try await eventually("harness.kubernetes.podStatuses.count == 1") { harness.kubernetes.podStatuses.count == 1 }
            #expect(harness.kubernetes.podStatuses.count == 1)
        }
    }
}

/// The pod's fsGroup through the real service: `volume_capability.mount.volume_mount_group` reaches the mount
/// and the files, and a malformed one is INVALID_ARGUMENT before anything is touched.
@Suite(.timeLimit(.minutes(3))) struct NodeServiceMountGroupTests {
    /// A group the test may give files: any as root, its own otherwise.
    static var group: UInt32 { runningAsRoot ? 2000 : UInt32(getegid()) }

    @Test func passesTheMountGroupToTheMountAndTheFiles() async throws {
        let provider = GatedProvider()
        provider.release()
        try await InProcessNode.run(provider: provider) { harness in
            var request = harness.publishRequest()
            request.volumeCapability.mount.volumeMountGroup = String(Self.group)
            _ = try await harness.node.nodePublishVolume(request)
            #expect(harness.mounter.mountGroup(of: harness.target) == Self.group)
            let fileSystem = PosixFileSystem()
            #expect(try fileSystem.ownerGroup(of: harness.target + "/password") == Self.group)
            #expect(try fileSystem.permissions(of: harness.target + "/password") == 0o644)
            let data = try #require(try fileSystem.symbolicLinkDestination(at: harness.target + "/..data"))
            #expect(try fileSystem.ownerGroup(of: harness.target + "/" + data) == Self.group)
        }
    }

    @Test func withoutAMountGroupNothingIsChowned() async throws {
        let provider = GatedProvider()
        provider.release()
        try await InProcessNode.run(provider: provider) { harness in
            _ = try await harness.node.nodePublishVolume(harness.publishRequest())
            #expect(harness.mounter.mountGroup(of: harness.target) == nil)
            #expect(try PosixFileSystem().ownerGroup(of: harness.target + "/password") == UInt32(getegid()))
        }
    }

    @Test(arguments: ["abc", "-1", "4294967295", "20 00"])
    func aMalformedMountGroupIsInvalidArgument(value: String) async throws {
        let provider = GatedProvider()
        provider.release()
        try await InProcessNode.run(provider: provider) { harness in
            var request = harness.publishRequest()
            request.volumeCapability.mount.volumeMountGroup = value
            request.secrets = ["clientsecret": "GROUP-CASE-SECRET-SENTINEL"]
            do {
                _ = try await harness.node.nodePublishVolume(request)
                Issue.record("volume_mount_group \(value) was accepted")
            } catch let error as RPCError {
                #expect(error.code == .invalidArgument)
                #expect(error.message.contains("volume_capability.mount.volume_mount_group \"\(value)\" is not a group ID"))
                #expect(!error.message.contains("SENTINEL"))
            }
            #expect(harness.mounter.calls.isEmpty)
            #expect(provider.started == 0)
            #expect(!harness.logs.all.joined().contains("GROUP-CASE-SECRET-SENTINEL"))
        }
    }
}
