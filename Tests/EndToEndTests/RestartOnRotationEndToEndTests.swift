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
import Testing

/// One simulated node: the production assembly serving CSI on its own socket, its REST client talking to the
/// shared fake API server, the shared test provider socket, and its own kubelet directory.
private struct Node {
    let name: String
    let root: String
    let publisher: NodePublisher
    let node: Csi_V1_Node.Client<HTTP2ClientTransport.Posix>

    func target(podUID: String) -> String {
        root + "/pods/\(podUID)/volumes/kubernetes.io~csi/secrets/mount"
    }

    /// NodePublishVolume as kubelet sends it for `pod` (with podInfoOnMount).
    func publish(pod: String, uid: String) async throws {
        var request = Csi_V1_NodePublishVolumeRequest()
        request.volumeID = "csi-\(uid)"
        request.targetPath = target(podUID: uid)
        request.readonly = true
        var capability = Csi_V1_VolumeCapability()
        capability.mount = Csi_V1_VolumeCapability.MountVolume()
        capability.accessMode.mode = .singleNodeReaderOnly
        request.volumeCapability = capability
        request.volumeContext = [
            "secretProviderClass": "spc",
            "csi.storage.k8s.io/pod.name": pod,
            "csi.storage.k8s.io/pod.namespace": "ns",
            "csi.storage.k8s.io/pod.uid": uid,
            "csi.storage.k8s.io/serviceAccount.name": "default",
            "csi.storage.k8s.io/ephemeral": "true",
        ]
        _ = try await node.nodePublishVolume(request)
    }

    func unpublish(uid: String) async throws {
        var request = Csi_V1_NodeUnpublishVolumeRequest()
        request.volumeID = "csi-\(uid)"
        request.targetPath = target(podUID: uid)
        _ = try await node.nodeUnpublishVolume(request)
    }
}

/// What the nodes share: one API server, one provider, one log.
private struct Cluster {
    let root: String
    let api: FakeKubernetesAPIServer
    let provider: TestProviderServer
    let logs: LogCapture

    static let deploymentPath = "/apis/apps/v1/namespaces/ns/deployments/web"
    static let sentinel = "ROTATED-VALUE-SENTINEL"

    /// The provider's answer: one file, its object at `version`.
    static func response(version: String) -> V1alpha1_MountResponse {
        var response = V1alpha1_MountResponse()
        var file = V1alpha1_File()
        file.path = "password"
        file.mode = 0o644
        file.contents = Data("\(sentinel)-\(version)".utf8)
        response.files = [file]
        var objectVersion = V1alpha1_ObjectVersion()
        objectVersion.id = "secret/password"
        objectVersion.version = version
        response.objectVersion = [objectVersion]
        return response
    }

    /// A Deployment `web` (opted in unless told otherwise), its ReplicaSet `web-5d9` and the SPC `spc`.
    func seedDeployment(optIn: Bool) throws {
        api.seed(
            path: "/apis/secrets-store.csi.x-k8s.io/v1/namespaces/ns/secretproviderclasses",
            object: ["metadata": ["name": "spc"], "spec": ["provider": "test", "parameters": ["objects": "a"]]]
        )
        api.seed(
            path: "/apis/apps/v1/namespaces/ns/deployments",
            object: [
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": ["name": "web", "annotations": optIn ? [RolloutTrigger.optInAnnotation: "true"] : ["team": "payments"]],
                "spec": [
                    "replicas": 2,
                    "template": ["metadata": ["labels": ["app": "web"]], "spec": ["containers": [["name": "app", "image": "nginx"]]]],
                ],
            ]
        )
        let deploymentUID = try #require(Self.metadata(api.object(at: Self.deploymentPath))["uid"] as? String)
        api.seed(
            path: "/apis/apps/v1/namespaces/ns/replicasets",
            object: [
                "metadata": [
                    "name": "web-5d9",
                    "ownerReferences": [["apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": deploymentUID, "controller": true]],
                ]
            ]
        )
    }

    /// A pod of ReplicaSet `web-5d9`; returns the UID the API server gave it.
    func seedPod(_ name: String) throws -> String {
        api.seed(
            path: "/api/v1/namespaces/ns/pods",
            object: [
                "metadata": [
                    "name": name,
                    "ownerReferences": [["apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d9", "uid": "uid-rs", "controller": true]],
                ]
            ]
        )
        return try #require(Self.metadata(api.object(at: "/api/v1/namespaces/ns/pods/\(name)"))["uid"] as? String)
    }

    static func metadata(_ object: [String: Any]?) -> [String: Any] { object?["metadata"] as? [String: Any] ?? [:] }

    var deployment: [String: Any]? { api.object(at: Self.deploymentPath) }
    var generation: Int? { Self.metadata(deployment)["generation"] as? Int }
    var resourceVersion: String? { Self.metadata(deployment)["resourceVersion"] as? String }
    var rotatedVersions: String? {
        let template = (deployment?["spec"] as? [String: Any])?["template"] as? [String: Any]
        return ((template?["metadata"] as? [String: Any])?["annotations"] as? [String: String])?[RolloutTrigger.rotatedVersionsAnnotation]
    }
    /// Every request to `apps/v1` (ReplicaSets and workloads).
    var appsRequests: [FakeKubernetesAPIServer.Request] { api.requests.filter { $0.path.hasPrefix("/apis/apps/") } }
    var patches: [FakeKubernetesAPIServer.Request] { appsRequests.filter { $0.method == "PATCH" } }
    /// The bodies of the events posted with `reason`.
    func events(_ reason: String) -> [[String: Any]] {
        api.requests.filter { $0.method == "POST" && $0.path.hasSuffix("/events") }
            .compactMap { try? JSONSerialization.jsonObject(with: Data($0.body.utf8)) as? [String: Any] }
            .filter { $0["reason"] as? String == reason }
    }

    /// Waits past the 1 ms rotation interval, then runs one rotation cycle on `node`.
    func rotate(_ node: Node) async throws -> [String: NodePublisher.PublishOutcome] {
        try await Task.sleep(for: .milliseconds(5))
        return await node.publisher.rotate(logger: logs.logger())
    }
}

/// The shared API server and provider, then `body`; everything torn down afterwards.
private func withCluster(_ body: (Cluster) async throws -> Void) async throws {
    try await withTemporaryDirectory { (root: String) async throws in
        try PosixFileSystem().createDirectories(at: root + "/providers", permissions: 0o755)
        let api = try await FakeKubernetesAPIServer(requiredToken: "driver-token")
        let provider = try await TestProviderServer(socketPath: root + "/providers/test.sock", behaviour: .respond(Cluster.response(version: "1")))
        let cluster = Cluster(root: root, api: api, provider: provider, logs: LogCapture())
        do {
            try await body(cluster)
        } catch {
            provider.shutdown()
            try? await api.shutdown()
            throw error
        }
        provider.shutdown()
        try await api.shutdown()
    }
}

/// One node's assembly, running, with `--enable-secret-rotation` (1 ms interval, the loop parked: tests run
/// cycles) and `--enable-rotation-restart` as told.
private func withNode(
    _ name: String,
    in cluster: Cluster,
    restartOnRotation: Bool = true,
    _ body: (Node) async throws -> Void
) async throws {
    let root = cluster.root + "/" + name
    let fileSystem = PosixFileSystem()
    try fileSystem.createDirectories(at: root, permissions: 0o755)
    let mounter: any Mounter = runningAsRoot ? LinuxMounter() : RecordingMounter(fileSystem: fileSystem)
    let driver = try await DriverAssembly(
        configuration: DriverConfiguration(
            socketPath: root + "/csi.sock",
            nodeID: name,
            providerDirectories: [cluster.root + "/providers"],
            kubernetes: .configuration(KubernetesConfiguration(server: cluster.api.url, credentials: .token("driver-token"))),
            rotation: RotationPolicy(enabled: true, interval: .milliseconds(1)),
            restartOnRotation: restartOnRotation,
            metricsAddress: "127.0.0.1:0",
            builtInAzure: nil
        ),
        seams: DriverAssembly.Seams(
            mounter: mounter,
            fileSystem: fileSystem,
            wallClockSeconds: { 1_795_919_943 },
            rotationSleep: DriverAssembly.Seams.parkedRotation
        ),
        logger: cluster.logs.logger(level: .trace, format: .text)
    )
    let cleanup = {
        for target in driver.publisher.publishedTargets { try? await mounter.unmount(target) }
    }
    do {
        try await driver.withRunning(maximumGracefulShutdownDuration: .seconds(10)) { listening in
            try await withCSIClient(socketPath: listening.socketPath) { client in
                try await body(Node(name: name, root: root, publisher: driver.publisher, node: Csi_V1_Node.Client(wrapping: client)))
            }
        }
    } catch {
        await cleanup()
        throw error
    }
    await cleanup()
}

@Suite("Restart on rotation end to end: two nodes, one API server", .serialized, .timeLimit(.minutes(3)))
struct RestartOnRotationEndToEndTests {
    @Test("two nodes rotating one Deployment's pods change its template once per new content, never on first publish")
    func twoNodesOneRolloutPerRotation() async throws {
        try await withCluster { cluster in
            try cluster.seedDeployment(optIn: true)
            let uidA = try cluster.seedPod("web-5d9-a")
            let uidB = try cluster.seedPod("web-5d9-b")
            try await withNode("node-a", in: cluster) { nodeA in
                try await withNode("node-b", in: cluster) { nodeB in
                    try await nodeA.publish(pod: "web-5d9-a", uid: uidA)
                    try await nodeB.publish(pod: "web-5d9-b", uid: uidB)
                    // First publishes: no workload is read, nothing is patched.
                    #expect(cluster.appsRequests.isEmpty)
                    #expect(cluster.generation == 1)
                    let initialVersion = cluster.resourceVersion

                    // New content in the store; both nodes rotate, one after the other.
                    cluster.provider.setBehaviour(.respond(Cluster.response(version: "2")))
                    #expect(try await cluster.rotate(nodeA)[nodeA.target(podUID: uidA)] == .refreshed(changed: true))
                    #expect(try await cluster.rotate(nodeB)[nodeB.target(podUID: uidB)] == .refreshed(changed: true))
                    let digest2 = RotatedVersions.digest(namespace: "ns", name: "spc", versions: [ObjectVersion(id: "secret/password", version: "2")])
                    #expect(cluster.patches.count == 1)
                    #expect(cluster.patches.first?.contentType == "application/merge-patch+json")
                    #expect(cluster.generation == 2)
                    #expect(cluster.rotatedVersions == "spc=\(digest2)")
                    let afterFirst = cluster.resourceVersion
                    #expect(afterFirst != initialVersion)
                    #expect(cluster.events("RolloutTriggered").count == 1)
                    let involved = cluster.events("RolloutTriggered").first?["involvedObject"] as? [String: Any]
                    #expect(involved?["kind"] as? String == "Deployment" && involved?["name"] as? String == "web")
                    #expect(involved?["apiVersion"] as? String == "apps/v1")

                    // Same content again: the files do not change and no workload is read.
                    let appsBefore = cluster.appsRequests.count
                    _ = try await cluster.rotate(nodeA)
                    _ = try await cluster.rotate(nodeB)
                    #expect(cluster.appsRequests.count == appsBefore)
                    #expect(cluster.resourceVersion == afterFirst)

                    // Newer content, both nodes rotating at the same time: still one template change (a node that
                    // read before the other patched loses the conditional patch, reads again and finds the digest).
                    cluster.provider.setBehaviour(.respond(Cluster.response(version: "3")))
                    try await Task.sleep(for: .milliseconds(5))
                    async let rotatedA = nodeA.publisher.rotate(logger: cluster.logs.logger())
                    async let rotatedB = nodeB.publisher.rotate(logger: cluster.logs.logger())
                    let (outcomesA, outcomesB) = await (rotatedA, rotatedB)
                    #expect(outcomesA[nodeA.target(podUID: uidA)] == .refreshed(changed: true))
                    #expect(outcomesB[nodeB.target(podUID: uidB)] == .refreshed(changed: true))
                    let digest3 = RotatedVersions.digest(namespace: "ns", name: "spc", versions: [ObjectVersion(id: "secret/password", version: "3")])
                    #expect(cluster.generation == 3)
                    #expect(cluster.rotatedVersions == "spc=\(digest3)")
                    #expect(cluster.events("RolloutTriggered").count == 2)
                    #expect(cluster.events("RolloutTriggerFailed").isEmpty)

                    // Nothing secret left the driver: not in events, not in the patches, not in the log.
                    for request in cluster.api.requests { #expect(!request.body.contains(Cluster.sentinel)) }
                    for line in cluster.logs.all { #expect(!line.contains(Cluster.sentinel)) }

                    try await nodeA.unpublish(uid: uidA)
                    try await nodeB.unpublish(uid: uidB)
                }
            }
        }
    }

    @Test("a Deployment without restart-on-rotation is read and never patched")
    func notOptedIn() async throws {
        try await withCluster { cluster in
            try cluster.seedDeployment(optIn: false)
            let uid = try cluster.seedPod("web-5d9-a")
            try await withNode("node-a", in: cluster) { node in
                try await node.publish(pod: "web-5d9-a", uid: uid)
                cluster.provider.setBehaviour(.respond(Cluster.response(version: "2")))
                #expect(try await cluster.rotate(node)[node.target(podUID: uid)] == .refreshed(changed: true))
                #expect(cluster.appsRequests.map { "\($0.method) \($0.path)" } == [
                    "GET /apis/apps/v1/namespaces/ns/replicasets/web-5d9",
                    "GET /apis/apps/v1/namespaces/ns/deployments/web",
                ])
                #expect(cluster.generation == 1)
                #expect(cluster.rotatedVersions == nil)
                #expect(cluster.events("RolloutTriggered").isEmpty)
                try await node.unpublish(uid: uid)
            }
        }
    }

    @Test("without --enable-rotation-restart no ReplicaSet or workload request is sent")
    func switchOff() async throws {
        try await withCluster { cluster in
            try cluster.seedDeployment(optIn: true)
            let uid = try cluster.seedPod("web-5d9-a")
            try await withNode("node-a", in: cluster, restartOnRotation: false) { node in
                try await node.publish(pod: "web-5d9-a", uid: uid)
                let podReads = cluster.api.requests.filter { $0.method == "GET" && $0.path.contains("/pods/") }.count
                cluster.provider.setBehaviour(.respond(Cluster.response(version: "2")))
                #expect(try await cluster.rotate(node)[node.target(podUID: uid)] == .refreshed(changed: true))
                #expect(cluster.appsRequests.isEmpty)
                // No extra pod read either.
                #expect(cluster.api.requests.filter { $0.method == "GET" && $0.path.contains("/pods/") }.count == podReads)
                #expect(cluster.generation == 1)
                try await node.unpublish(uid: uid)
            }
        }
    }

    @Test("a refused patch keeps the rotated files and warns on the pod with RolloutTriggerFailed")
    func forbiddenPatch() async throws {
        try await withCluster { cluster in
            try cluster.seedDeployment(optIn: true)
            let uid = try cluster.seedPod("web-5d9-a")
            try await withNode("node-a", in: cluster) { node in
                try await node.publish(pod: "web-5d9-a", uid: uid)
                cluster.provider.setBehaviour(.respond(Cluster.response(version: "2")))
                cluster.api.injectFailure(status: 403, forPathContaining: "/apis/apps/v1/namespaces/ns/replicasets/")
                #expect(try await cluster.rotate(node)[node.target(podUID: uid)] == .refreshed(changed: true))
                let contents = try PosixFileSystem().readFile(at: node.target(podUID: uid) + "/password")
                #expect(contents == Array("\(Cluster.sentinel)-2".utf8))
                let warning = try #require(cluster.events("RolloutTriggerFailed").first)
                #expect(warning["type"] as? String == "Warning")
                #expect((warning["involvedObject"] as? [String: Any])?["name"] as? String == "web-5d9-a")
                #expect((warning["message"] as? String)?.contains("install the chart with rotationRestart.enabled=true") == true)
                #expect(cluster.patches.isEmpty)
                try await node.unpublish(uid: uid)
            }
        }
    }

    @Test("the binary takes --enable-rotation-restart in Go syntax and warns when rotation is off")
    func flag() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let api = try await FakeKubernetesAPIServer(requiredToken: "driver-token")
            let socket = root + "/csi.sock"
            let (process, output) = try DriverProcessTests.start([
                "-endpoint=unix://" + socket, "--nodeid=node-a", "--enable-rotation-restart=true", "--enable-secret-rotation=false",
                "--provider-volume=" + root, "--kubeconfig=" + (try DriverProcessTests.kubeconfig(server: api.url, in: root)),
                "--log-format-json=true", "--metrics-addr=127.0.0.1:0",
            ])
            let (_, earlyLog) = try await DriverProcessTests.metricsPort(output)
            try await terminateAndWait(process)  // SIGTERM, bounded
            let log = earlyLog + String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(process.terminationStatus == 0)
            #expect(log.contains("\"rotation.restart\":\"true\""))
            #expect(log.contains("--enable-rotation-restart has no effect without --enable-secret-rotation"))
            try await api.shutdown()
        }
    }
}
