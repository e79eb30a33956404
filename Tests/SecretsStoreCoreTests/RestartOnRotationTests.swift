import Logging
import SecretsStoreCore
import SecretsStoreCoreTesting
import SecretsStoreLinux
import Testing

/// Nodes for restart-on-rotation tests: publishers over one shared fake Kubernetes client and one provider,
/// each with its own directory of targets, as several driver instances on several nodes.
private struct Cluster {
    let root: String
    let kubernetes = InMemoryKubernetesAPI([Cluster.spc, Cluster.otherSPC])
    let provider = StaticProvider(Cluster.response(version: "1", value: "one"))
    let clock = ManualClock()
    let logs = LogCapture()

    static let spc = SecretProviderClass(namespace: "ns", name: "spc", provider: "test", parameters: ["objects": "a"])
    static let otherSPC = SecretProviderClass(namespace: "ns", name: "other", provider: "test", parameters: ["objects": "b"])
    static let rotation = RotationPolicy(enabled: true, interval: .seconds(60))
    static let sentinel = "SENTINEL-s3cr3t"

    /// An answer with one file whose object is at `version`.
    static func response(version: String, value: String) -> ProviderResponse {
        ProviderResponse(
            files: [SecretFile(path: "password", mode: 0o644, contents: Array("\(value)-\(sentinel)".utf8))],
            objectVersions: [ObjectVersion(id: "secret/password", version: version)]
        )
    }

    func node(_ name: String, restartOnRotation: Bool = true) -> NodePublisher {
        NodePublisher(
            kubernetes: kubernetes,
            providers: FixedProviderDirectory(["test": provider]),
            mounter: RecordingMounter(),
            fileSystem: PosixFileSystem(),
            monotonicNow: clock.read,
            wallClockSeconds: { 1_795_919_943 },
            configuration: .init(nodeID: name, rotation: Self.rotation, restartOnRotation: restartOnRotation)
        )
    }

    func target(_ podUID: String, volume: String = "secrets") -> String {
        root + "/pods/\(podUID)/volumes/kubernetes.io~csi/\(volume)/mount"
    }

    func request(pod: String, uid: String, spc: String = "spc", volume: String = "secrets") -> PublishRequest {
        PublishRequest(
            volumeID: "csi-\(uid)-\(volume)",
            targetPath: target(uid, volume: volume),
            accessType: .mount,
            readOnly: true,
            volumeContext: [
                "secretProviderClass": spc,
                "csi.storage.k8s.io/pod.name": pod,
                "csi.storage.k8s.io/pod.namespace": "ns",
                "csi.storage.k8s.io/pod.uid": uid,
                "csi.storage.k8s.io/serviceAccount.name": "default",
            ],
            secrets: ["clientsecret": Self.sentinel]
        )
    }

    /// A Deployment `web` (opted in unless told otherwise) with ReplicaSet `web-5d9`.
    func addDeployment(optIn: Bool = true, name: String = "web") {
        kubernetes.addReplicaSet(
            namespace: "ns",
            name: "\(name)-5d9",
            ownerReferences: [OwnerReference(apiVersion: "apps/v1", kind: "Deployment", name: name, uid: "uid-\(name)")]
        )
        kubernetes.add(
            Workload(
                reference: WorkloadReference(kind: .deployment, namespace: "ns", name: name, uid: "uid-\(name)"),
                annotations: optIn ? [RolloutTrigger.optInAnnotation: "true"] : ["unrelated": "x"],
                templateAnnotations: ["kubectl.kubernetes.io/default-container": "app"]
            )
        )
    }

    /// A pod of the Deployment's ReplicaSet.
    func addDeploymentPod(_ name: String, uid: String, deployment: String = "web") {
        kubernetes.add(
            PodInfo(
                namespace: "ns",
                name: name,
                uid: uid,
                ownerReferences: [OwnerReference(apiVersion: "apps/v1", kind: "ReplicaSet", name: "\(deployment)-5d9", uid: "uid-rs")]
            )
        )
    }

    var deployment: Workload? { kubernetes.workload(.deployment, namespace: "ns", name: "web") }
    var patches: [InMemoryKubernetesAPI.Call] {
        kubernetes.calls([.patchWorkload])
    }

    /// Moves the clock past the rotation interval and runs one cycle on `node`.
    @discardableResult
    func rotate(_ node: NodePublisher) async -> [String: NodePublisher.PublishOutcome] {
        await node.rotate(logger: logs.logger())
    }

    func newContent(version: String, value: String) {
        provider.respond(with: Self.response(version: version, value: value))
        clock.advance(by: .seconds(61))
    }
}

private func withCluster(_ body: (Cluster) async throws -> Void) async throws {
    try await withTemporaryDirectory { (root: String) async throws in
        try await body(Cluster(root: root))
    }
}

@Suite("Restart on rotation: rotated-versions digest and annotation value")
struct RotatedVersionsTests {
    @Test("the digest is FNV-1a 64 over namespace, name and sorted versions: 16 hex digits, order-independent")
    func digestIsStable() {
        let versions = [ObjectVersion(id: "secret/b", version: "2"), ObjectVersion(id: "secret/a", version: "1")]
        let digest = RotatedVersions.digest(namespace: "ns", name: "spc", versions: versions)
        #expect(digest.count == 16 && digest.allSatisfy(\.isHexDigit) && digest == digest.lowercased())
        #expect(RotatedVersions.digest(namespace: "ns", name: "spc", versions: versions.reversed()) == digest)
        // Every node must compute the same value, also across driver versions: pinned.
        #expect(digest == "e9fcc45541b82d74")
        #expect(RotatedVersions.digest(namespace: "ns", name: "spc", versions: [ObjectVersion(id: "secret/a", version: "1")]) != digest)
        #expect(RotatedVersions.digest(namespace: "ns2", name: "spc", versions: versions) != digest)
        #expect(RotatedVersions.digest(namespace: "ns", name: "spc2", versions: versions) != digest)
        #expect(RotatedVersions.digest(namespace: "ns", name: "spc", versions: [
            ObjectVersion(id: "secret/b", version: "3"), ObjectVersion(id: "secret/a", version: "1"),
        ]) != digest)
    }

    @Test("merging sets one class's entry, keeps the others, sorts by name and drops entries that do not parse")
    func merging() {
        #expect(RotatedVersions.merging(nil, secretProviderClassName: "spc", digest: "00ff") == "spc=00ff")
        #expect(RotatedVersions.merging("zeta=1,alpha=2", secretProviderClassName: "spc", digest: "3") == "alpha=2,spc=3,zeta=1")
        #expect(RotatedVersions.merging("spc=old,other=9", secretProviderClassName: "spc", digest: "new") == "other=9,spc=new")
        #expect(RotatedVersions.merging("garbage,=x,y=, spc = 1 ", secretProviderClassName: "b", digest: "2") == "b=2,spc=1")
        #expect(RotatedVersions.entries("a=1,b=2") == ["a": "1", "b": "2"])
    }

    @Test("the opt-in is the workload annotation restart-on-rotation set to true")
    func optIn() {
        #expect(RolloutTrigger.optInAnnotation == "secrets-store.csi.k8s.io/restart-on-rotation")
        #expect(RolloutTrigger.rotatedVersionsAnnotation == "secrets-store.csi.k8s.io/rotated-versions")
        #expect(RolloutTrigger.optedIn([RolloutTrigger.optInAnnotation: "true"]))
        #expect(RolloutTrigger.optedIn([RolloutTrigger.optInAnnotation: "True"]))
        #expect(!RolloutTrigger.optedIn([RolloutTrigger.optInAnnotation: "false"]))
        #expect(!RolloutTrigger.optedIn([RolloutTrigger.optInAnnotation: "yes"]))
        #expect(!RolloutTrigger.optedIn([:]))
    }
}

@Suite("Restart on rotation through the publisher (fakes, no root)")
struct RestartOnRotationTests {
    @Test("a rotation that changes the files patches the Deployment's template once and emits RolloutTriggered on it")
    func deploymentRollsOnce() async throws {
        try await withCluster { cluster in
            cluster.addDeployment()
            cluster.addDeploymentPod("web-5d9-a", uid: "ua")
            let node = cluster.node("node-1")
            #expect(try await node.publish(cluster.request(pod: "web-5d9-a", uid: "ua"), logger: cluster.logs.logger()) == .published)
            #expect(cluster.kubernetes.calls(.workloadCalls).isEmpty)  // a first publish never reads a workload

            cluster.newContent(version: "2", value: "two")
            let outcomes = await cluster.rotate(node)
            #expect(outcomes[cluster.target("ua")] == .refreshed(changed: true))
            let digest = RotatedVersions.digest(namespace: "ns", name: "spc", versions: [ObjectVersion(id: "secret/password", version: "2")])
            let deployment = try #require(cluster.deployment)
            #expect(deployment.templateAnnotations == [
                "kubectl.kubernetes.io/default-container": "app",
                RolloutTrigger.rotatedVersionsAnnotation: "spc=\(digest)",
            ])
            #expect(deployment.generation == 2)
            #expect(cluster.kubernetes.calls(.workloadCalls) == [
                .getReplicaSet(namespace: "ns", name: "web-5d9"),
                .getWorkload(.deployment, namespace: "ns", name: "web"),
                .patchWorkload(.deployment, namespace: "ns", name: "web", annotations: [RolloutTrigger.rotatedVersionsAnnotation: "spc=\(digest)"]),
            ])
            let event = try #require(cluster.kubernetes.workloadEvents.first)
            #expect(cluster.kubernetes.workloadEvents.count == 1)
            #expect(event.reason == "RolloutTriggered" && event.kind == .normal)
            #expect(event.workload == WorkloadReference(kind: .deployment, namespace: "ns", name: "web", uid: "uid-web"))
            #expect(event.message.contains("Deployment ns/web") && event.message.contains("spc ns/spc"))

            // The same content again: the files do not change, nothing is read.
            cluster.clock.advance(by: .seconds(61))
            #expect(await cluster.rotate(node)[cluster.target("ua")] == .refreshed(changed: false))
            #expect(cluster.kubernetes.calls(.workloadCalls).count == 3)

            // New content: one more template change.
            cluster.newContent(version: "3", value: "three")
            await cluster.rotate(node)
            #expect(cluster.patches.count == 2)
            #expect(cluster.deployment?.generation == 3)
            #expect(cluster.kubernetes.workloadEvents.count == 2)
            for line in cluster.logs.all + cluster.kubernetes.workloadEvents.map(\.message) + cluster.kubernetes.events.map(\.message) {
                #expect(!line.contains(Cluster.sentinel))
            }
        }
    }

    @Test("two nodes rotating the same SecretProviderClass for one Deployment: one patch, the second node finds the digest")
    func twoNodesOneRollout() async throws {
        try await withCluster { cluster in
            cluster.addDeployment()
            cluster.addDeploymentPod("web-5d9-a", uid: "ua")
            cluster.addDeploymentPod("web-5d9-b", uid: "ub")
            let nodeA = cluster.node("node-a")
            let nodeB = cluster.node("node-b")
            try await nodeA.publish(cluster.request(pod: "web-5d9-a", uid: "ua"), logger: cluster.logs.logger())
            try await nodeB.publish(cluster.request(pod: "web-5d9-b", uid: "ub"), logger: cluster.logs.logger())

            cluster.newContent(version: "2", value: "two")
            await cluster.rotate(nodeA)
            await cluster.rotate(nodeB)
            #expect(cluster.patches.count == 1)
            #expect(cluster.deployment?.generation == 2)
            #expect(cluster.kubernetes.workloadEvents.count == 1)

            cluster.newContent(version: "3", value: "three")
            await cluster.rotate(nodeB)
            await cluster.rotate(nodeA)
            #expect(cluster.patches.count == 2)
            #expect(cluster.deployment?.generation == 3)
        }
    }

    @Test("the trigger reports the second node's Deployment as already current")
    func alreadyCurrentOutcome() async throws {
        try await withCluster { cluster in
            cluster.addDeployment()
            cluster.addDeploymentPod("web-5d9-a", uid: "ua")
            let trigger = RolloutTrigger(kubernetes: cluster.kubernetes)
            let rotation = RolloutTrigger.Rotation(
                namespace: "ns", secretProviderClassName: "spc",
                objectVersions: [ObjectVersion(id: "secret/password", version: "2")],
                pods: [PodReference(namespace: "ns", name: "web-5d9-a", uid: "ua")]
            )
            let web = WorkloadReference(kind: .deployment, namespace: "ns", name: "web", uid: "uid-web")
            #expect(await trigger.trigger(rotation, logger: cluster.logs.logger()) == [.triggered(web)])
            #expect(await trigger.trigger(rotation, logger: cluster.logs.logger()) == [.alreadyCurrent(web)])
            #expect(cluster.patches.count == 1)
        }
    }

    @Test("pods of one Deployment on one node: one ReplicaSet read, one Deployment read, one patch")
    func podsOfOneDeploymentOnOneNode() async throws {
        try await withCluster { cluster in
            cluster.addDeployment()
            let node = cluster.node("node-1")
            for index in 0..<3 {
                cluster.addDeploymentPod("web-5d9-\(index)", uid: "u\(index)")
                try await node.publish(cluster.request(pod: "web-5d9-\(index)", uid: "u\(index)"), logger: cluster.logs.logger())
            }
            cluster.newContent(version: "2", value: "two")
            let outcomes = await cluster.rotate(node)
            #expect(outcomes.values.allSatisfy { $0 == .refreshed(changed: true) } && outcomes.count == 3)
            #expect(cluster.kubernetes.calls(.workloadCalls).count == 3)  // GET replicaset, GET deployment, PATCH
            #expect(cluster.patches.count == 1)
        }
    }

    @Test("without --enable-rotation-restart no workload or ReplicaSet is ever read, even for an opted-in Deployment")
    func switchOff() async throws {
        try await withCluster { cluster in
            cluster.addDeployment()
            cluster.addDeploymentPod("web-5d9-a", uid: "ua")
            let node = cluster.node("node-1", restartOnRotation: false)
            try await node.publish(cluster.request(pod: "web-5d9-a", uid: "ua"), logger: cluster.logs.logger())
            cluster.newContent(version: "2", value: "two")
            #expect(await cluster.rotate(node)[cluster.target("ua")] == .refreshed(changed: true))
            #expect(cluster.kubernetes.calls(.workloadCalls).isEmpty)
            #expect(cluster.kubernetes.workloadEvents.isEmpty)
            #expect(cluster.deployment?.generation == 1)
        }
    }

    @Test("a Deployment without the annotation is read, never patched")
    func notOptedIn() async throws {
        try await withCluster { cluster in
            cluster.addDeployment(optIn: false)
            cluster.addDeploymentPod("web-5d9-a", uid: "ua")
            let node = cluster.node("node-1")
            try await node.publish(cluster.request(pod: "web-5d9-a", uid: "ua"), logger: cluster.logs.logger())
            cluster.newContent(version: "2", value: "two")
            await cluster.rotate(node)
            #expect(cluster.patches.isEmpty)
            #expect(cluster.deployment?.generation == 1)
            #expect(cluster.kubernetes.workloadEvents.isEmpty)
            #expect(!cluster.kubernetes.events.contains { $0.reason == PodEvent.rolloutTriggerFailed })
        }
    }

    @Test(
        "a StatefulSet's and a DaemonSet's pods (direct owners) roll their workload",
        arguments: [WorkloadReference.Kind.statefulSet, .daemonSet]
    )
    func directOwners(kind: WorkloadReference.Kind) async throws {
        try await withCluster { cluster in
            let reference = WorkloadReference(kind: kind, namespace: "ns", name: "db", uid: "uid-db")
            cluster.kubernetes.add(Workload(reference: reference, annotations: [RolloutTrigger.optInAnnotation: "true"]))
            cluster.kubernetes.add(
                PodInfo(namespace: "ns", name: "db-0", uid: "u0", ownerReferences: [
                    OwnerReference(apiVersion: "apps/v1", kind: kind.rawValue, name: "db", uid: "uid-db")
                ])
            )
            let node = cluster.node("node-1")
            try await node.publish(cluster.request(pod: "db-0", uid: "u0"), logger: cluster.logs.logger())
            cluster.newContent(version: "2", value: "two")
            await cluster.rotate(node)
            let digest = RotatedVersions.digest(namespace: "ns", name: "spc", versions: [ObjectVersion(id: "secret/password", version: "2")])
            #expect(cluster.kubernetes.calls(.workloadCalls) == [
                .getWorkload(kind, namespace: "ns", name: "db"),
                .patchWorkload(kind, namespace: "ns", name: "db", annotations: [RolloutTrigger.rotatedVersionsAnnotation: "spc=\(digest)"]),
            ])
            let workload = try #require(cluster.kubernetes.workload(kind, namespace: "ns", name: "db"))
            #expect(workload.templateAnnotations[RolloutTrigger.rotatedVersionsAnnotation] == "spc=\(digest)")
            #expect(workload.generation == 2)
            #expect(cluster.kubernetes.workloadEvents.map(\.workload) == [reference])
            #expect(cluster.kubernetes.workloadEvents.first?.message.contains("\(kind.rawValue) ns/db") == true)
        }
    }

    @Test("bare pods, Job pods and pods being deleted are skipped: no workload is read or patched")
    func skippedPods() async throws {
        try await withCluster { cluster in
            cluster.kubernetes.add(PodInfo(namespace: "ns", name: "bare", uid: "u1", ownerReferences: []))
            cluster.kubernetes.add(
                PodInfo(namespace: "ns", name: "job-x", uid: "u2", ownerReferences: [
                    OwnerReference(apiVersion: "batch/v1", kind: "Job", name: "job", uid: "uid-job")
                ])
            )
            cluster.addDeployment()
            cluster.kubernetes.add(
                PodInfo(
                    namespace: "ns", name: "web-5d9-t", uid: "u3",
                    ownerReferences: [OwnerReference(apiVersion: "apps/v1", kind: "ReplicaSet", name: "web-5d9", uid: "uid-rs")],
                    terminating: true
                )
            )
            let node = cluster.node("node-1")
            for (pod, uid) in [("bare", "u1"), ("job-x", "u2"), ("web-5d9-t", "u3")] {
                try await node.publish(cluster.request(pod: pod, uid: uid), logger: cluster.logs.logger())
            }
            cluster.newContent(version: "2", value: "two")
            let outcomes = await cluster.rotate(node)
            #expect(outcomes.count == 3 && outcomes.values.allSatisfy { $0 == .refreshed(changed: true) })
            #expect(cluster.kubernetes.calls(.workloadCalls).isEmpty)
            #expect(cluster.kubernetes.events.filter { $0.reason == PodEvent.rolloutTriggerFailed }.isEmpty)
        }
    }

    @Test("a Deployment deleted and re-created under the same name (another UID) is not patched")
    func recreatedWorkload() async throws {
        try await withCluster { cluster in
            cluster.addDeployment()
            cluster.addDeploymentPod("web-5d9-a", uid: "ua")
            cluster.kubernetes.add(
                Workload(
                    reference: WorkloadReference(kind: .deployment, namespace: "ns", name: "web", uid: "uid-new"),
                    annotations: [RolloutTrigger.optInAnnotation: "true"]
                )
            )
            let node = cluster.node("node-1")
            try await node.publish(cluster.request(pod: "web-5d9-a", uid: "ua"), logger: cluster.logs.logger())
            cluster.newContent(version: "2", value: "two")
            await cluster.rotate(node)
            #expect(cluster.patches.isEmpty)
        }
    }

    @Test("a forbidden patch keeps the rotation, warns on the pod with RolloutTriggerFailed and says what to enable")
    func forbiddenPatch() async throws {
        try await withCluster { cluster in
            cluster.addDeployment()
            cluster.addDeploymentPod("web-5d9-a", uid: "ua")
            let node = cluster.node("node-1")
            try await node.publish(cluster.request(pod: "web-5d9-a", uid: "ua"), logger: cluster.logs.logger())
            cluster.newContent(version: "2", value: "two")
            cluster.kubernetes.fail(.workloadCalls, with: .forbidden(
                "replicasets.apps \"web-5d9\" is forbidden: User \"system:serviceaccount:kube-system:secrets-store-csi-driver\" cannot get resource \"replicasets\""
            ))
            let outcomes = await cluster.rotate(node)
            #expect(outcomes[cluster.target("ua")] == .refreshed(changed: true))
            #expect(try String(decoding: PosixFileSystem().readFile(at: cluster.target("ua") + "/password"), as: UTF8.self) == "two-\(Cluster.sentinel)")
            let warning = try #require(cluster.kubernetes.events.first { $0.reason == "RolloutTriggerFailed" })
            #expect(warning.kind == .warning)
            #expect(warning.pod.name == "web-5d9-a")
            #expect(warning.message.hasPrefix("failed to restart the workload of pod ns/web-5d9-a after spc ns/spc rotated: replicaset ns/web-5d9: "))
            #expect(warning.message.hasSuffix("(the driver may not read or patch workloads: install the chart with rotationRestart.enabled=true)"))
            #expect(cluster.kubernetes.events.contains { $0.reason == PodEvent.mountRotationComplete })
            #expect(cluster.logs.all.contains { $0.contains("failed to trigger a rollout after a rotation") })
            for line in cluster.logs.all + cluster.kubernetes.events.map(\.message) {
                #expect(!line.contains(Cluster.sentinel))
            }
        }
    }

    @Test("a patch that loses a race is read again and retried; one that keeps losing fails with a warning")
    func conflicts() async throws {
        try await withCluster { cluster in
            cluster.addDeployment()
            cluster.addDeploymentPod("web-5d9-a", uid: "ua")
            let trigger = RolloutTrigger(kubernetes: cluster.kubernetes)
            let pod = PodReference(namespace: "ns", name: "web-5d9-a", uid: "ua")
            let web = WorkloadReference(kind: .deployment, namespace: "ns", name: "web", uid: "uid-web")
            func rotation(_ version: String) -> RolloutTrigger.Rotation {
                .init(namespace: "ns", secretProviderClassName: "spc", objectVersions: [ObjectVersion(id: "secret/password", version: version)], pods: [pod])
            }
            cluster.kubernetes.fail([.patchWorkload], with: .conflict("the object has been modified"), times: 1)
            #expect(await trigger.trigger(rotation("2"), logger: cluster.logs.logger()) == [.triggered(web)])
            #expect(cluster.patches.count == 2)

            cluster.kubernetes.fail([.patchWorkload], with: .conflict("the object has been modified"), times: 100)
            let outcomes = await trigger.trigger(rotation("3"), logger: cluster.logs.logger())
            guard case .failed(let workload, let message)? = outcomes.first else {
                Issue.record("expected a failure, got \(outcomes)")
                return
            }
            #expect(workload == web)
            #expect(message.contains("failed to restart Deployment ns/web after spc ns/spc rotated: deployments ns/web kept changing after"))
            #expect(cluster.kubernetes.events.contains { $0.reason == PodEvent.rolloutTriggerFailed && $0.pod == pod })
        }
    }

    @Test("a pod mounting two SecretProviderClasses keeps one entry per class, so nodes agree whatever the order")
    func twoClassesInOnePod() async throws {
        try await withCluster { cluster in
            cluster.addDeployment()
            cluster.addDeploymentPod("web-5d9-a", uid: "ua")
            cluster.addDeploymentPod("web-5d9-b", uid: "ub")
            let nodeA = cluster.node("node-a")
            let nodeB = cluster.node("node-b")
            for (node, pod, uid) in [(nodeA, "web-5d9-a", "ua"), (nodeB, "web-5d9-b", "ub")] {
                try await node.publish(cluster.request(pod: pod, uid: uid), logger: cluster.logs.logger())
                try await node.publish(cluster.request(pod: pod, uid: uid, spc: "other", volume: "other"), logger: cluster.logs.logger())
            }
            cluster.newContent(version: "2", value: "two")
            await cluster.rotate(nodeA)
            #expect(cluster.patches.count == 2)  // one per class
            await cluster.rotate(nodeB)
            #expect(cluster.patches.count == 2)  // node B finds both entries
            let versions = [ObjectVersion(id: "secret/password", version: "2")]
            let value = "other=\(RotatedVersions.digest(namespace: "ns", name: "other", versions: versions)),"
                + "spc=\(RotatedVersions.digest(namespace: "ns", name: "spc", versions: versions))"
            #expect(cluster.deployment?.templateAnnotations[RolloutTrigger.rotatedVersionsAnnotation] == value)
        }
    }

    @Test("a kubelet republish that refreshes changed files triggers the rollout too")
    func republishTriggers() async throws {
        try await withCluster { cluster in
            cluster.addDeployment()
            cluster.addDeploymentPod("web-5d9-a", uid: "ua")
            let node = cluster.node("node-1")
            let request = cluster.request(pod: "web-5d9-a", uid: "ua")
            try await node.publish(request, logger: cluster.logs.logger())
            cluster.newContent(version: "2", value: "two")
            #expect(try await node.publish(request, logger: cluster.logs.logger()) == .refreshed(changed: true))
            #expect(cluster.patches.count == 1)
            #expect(cluster.deployment?.generation == 2)
        }
    }
}
