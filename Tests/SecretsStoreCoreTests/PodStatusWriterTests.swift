import Logging
import SecretsStoreCore
import SecretsStoreCoreTesting
import SecretsStoreLinux
import Synchronization
import Testing

@Suite("Pod status written after the answer (fakes, no root)", .timeLimit(.minutes(3)))
struct PodStatusWriterTests {
    @Test("the publish answers before its pod status lands, and a failed write is retried until it does")
    func publishDoesNotWaitForThePodStatus() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let harness = PipelineHarness(root: root)
            harness.kubernetes.fail([.applyPodStatus], with: .unavailable("api server restarting"))
            #expect(try await harness.publish() == .published)
            #expect(try harness.read("username") == "admin")
            try await eventually("a retry") { harness.kubernetes.calls([.applyPodStatus]).count >= 2 }
            #expect(harness.kubernetes.podStatuses.isEmpty)
            #expect(harness.publisher.volume(at: harness.target)?.podStatusUID == "")
            #expect(harness.publisher.podStatusWrites.pendingTargets == [harness.target])
            #expect(harness.logs.all.contains { $0.contains("failed to write pod status; retrying") && $0.contains("api server restarting") })

            harness.kubernetes.fail([.applyPodStatus], with: nil)
            await harness.publisher.podStatusWrites.settle()
            let status = try #require(harness.kubernetes.podStatuses["ns/pod-ns-spc"])
            #expect(status.objects.map(\.id) == ["secret/password", "secret/username"])
            #expect(harness.publisher.volume(at: harness.target)?.podStatusUID == "uid-spcps-pod-ns-spc")
            #expect(harness.publisher.podStatusWrites.pendingTargets.isEmpty)
        }
    }

    @Test("once the write landed, a refresh with the same object versions writes no status again")
    func landedWriteIsRemembered() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let harness = PipelineHarness(root: root, rotation: RotationPolicy(enabled: true, interval: .seconds(60)))
            try await harness.publish()
            await harness.publisher.podStatusWrites.settle()
            let attempts = harness.kubernetes.calls([.applyPodStatus]).count
            #expect(attempts == 1)
            harness.clock.advance(by: .seconds(61))
            #expect(try await harness.publish() == .refreshed(changed: false))
            await harness.publisher.podStatusWrites.settle()
            #expect(harness.kubernetes.calls([.applyPodStatus]).count == attempts)
        }
    }

    @Test("unpublish stops a pending pod status write")
    func unpublishCancelsThePendingWrite() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let harness = PipelineHarness(root: root)
            harness.kubernetes.fail([.applyPodStatus], with: .unavailable("api down"))
            try await harness.publish()
            try await eventually("a first attempt") { harness.kubernetes.calls([.applyPodStatus]).count >= 1 }
            try await harness.publisher.unpublish(UnpublishRequest(volumeID: "csi-123", targetPath: harness.target), logger: harness.logs.logger())
            #expect(harness.publisher.podStatusWrites.pendingTargets.isEmpty)
            harness.kubernetes.fail([.applyPodStatus], with: nil)
            // settle() returns once the cancelled write's task has ended: it had its chance to write, and did not.
            await harness.publisher.podStatusWrites.settle()
            #expect(harness.kubernetes.podStatuses.isEmpty)
        }
    }

    @Test("a newer status for a target replaces a pending one: the newest wins")
    func newestStatusWins() async throws {
        let kubernetes = InMemoryKubernetesAPI()
        kubernetes.fail([.applyPodStatus], with: .unavailable("api down"))
        let writer = PodStatusWriter(kubernetes: kubernetes, firstRetry: .milliseconds(20), maxRetry: .milliseconds(40))
        let uids = UIDs()
        func status(version: String) -> SecretProviderClassPodStatus {
            SecretProviderClassPodStatus(
                namespace: "ns", podName: "pod", podUID: "uid-1", nodeName: "node-1", secretProviderClassName: "spc",
                targetPath: "/t", objects: [ObjectVersion(id: "secret/a", version: version)]
            )
        }
        writer.submit(status(version: "1"), target: "/t", logger: Logger(label: "test")) { uids.add("1:" + $0) }
        try await eventually("a first attempt") { kubernetes.calls([.applyPodStatus]).count >= 1 }
        writer.submit(status(version: "2"), target: "/t", logger: Logger(label: "test")) { uids.add("2:" + $0) }
        #expect(writer.pendingTargets == ["/t"])
        kubernetes.fail([.applyPodStatus], with: nil)
        await writer.settle()
        #expect(kubernetes.podStatuses["ns/pod-ns-spc"]?.objects.first?.version == "2")
        #expect(uids.all == ["2:uid-spcps-pod-ns-spc"])
    }

    @Test("shutdown lets a pending write land within its bound, then refuses new writes")
    func shutdownDrainsThenRefuses() async throws {
        let kubernetes = InMemoryKubernetesAPI()
        kubernetes.fail([.applyPodStatus], with: .unavailable("api down"))
        let writer = PodStatusWriter(kubernetes: kubernetes, firstRetry: .milliseconds(20), maxRetry: .milliseconds(40))
        let logs = LogCapture()
        let status = SecretProviderClassPodStatus(
            namespace: "ns", podName: "pod", podUID: "uid-1", nodeName: "node-1", secretProviderClassName: "spc",
            targetPath: "/t", objects: [ObjectVersion(id: "secret/a", version: "1")]
        )
        writer.submit(status, target: "/t", logger: logs.logger()) { _ in }
        try await eventually("a first attempt") { kubernetes.calls([.applyPodStatus]).count >= 1 }
        kubernetes.fail([.applyPodStatus], with: nil)
        await writer.shutdown(drainingFor: .seconds(30))
        #expect(kubernetes.podStatuses["ns/pod-ns-spc"] != nil)
        #expect(writer.pendingTargets.isEmpty)
        let attempts = kubernetes.calls([.applyPodStatus]).count
        writer.submit(status, target: "/t", logger: logs.logger()) { _ in }
        #expect(writer.pendingTargets.isEmpty)
        #expect(kubernetes.calls([.applyPodStatus]).count == attempts)
        #expect(logs.all.contains { $0.contains("pod status not written: the driver is shutting down") })
    }

    @Test("shutdown cancels a write still failing at its bound and returns only once it has ended")
    func shutdownCancelsBeyondTheBound() async throws {
        let kubernetes = InMemoryKubernetesAPI()
        kubernetes.fail([.applyPodStatus], with: .unavailable("api down"))
        let writer = PodStatusWriter(kubernetes: kubernetes, firstRetry: .milliseconds(20), maxRetry: .milliseconds(40))
        let status = SecretProviderClassPodStatus(
            namespace: "ns", podName: "pod", podUID: "uid-1", nodeName: "node-1", secretProviderClassName: "spc",
            targetPath: "/t", objects: [ObjectVersion(id: "secret/a", version: "1")]
        )
        writer.submit(status, target: "/t", logger: Logger(label: "test")) { _ in }
        try await eventually("a first attempt") { kubernetes.calls([.applyPodStatus]).count >= 1 }
        await writer.shutdown(drainingFor: .milliseconds(100))
        // A write task leaves `pendingTargets` as its last step: none is left to call the client.
        #expect(writer.pendingTargets.isEmpty)
        #expect(kubernetes.podStatuses.isEmpty)
    }

    @Test("with Secrets to sync, the status is written before the answer, and its failure fails the publish")
    func syncedSecretsNeedTheStatusFirst() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let objects = [SecretProviderClass.SecretObject(secretName: "app", type: "Opaque", data: [.init(objectName: "username", key: "user")])]
            let spc = SecretProviderClass(namespace: "ns", name: "spc", provider: "test", parameters: ["a": "b"], secretObjects: objects)
            let harness = PipelineHarness(root: root, syncSecrets: true, spc: spc)
            harness.kubernetes.fail([.applyPodStatus], with: .unavailable("api down"))
            await #expect(throws: PublishError.self) { try await harness.publish() }
            #expect(harness.mounter.mounted.isEmpty)
            harness.kubernetes.fail([.applyPodStatus], with: nil)
            #expect(try await harness.publish() == .published)
            #expect(harness.kubernetes.podStatuses["ns/pod-ns-spc"] != nil)
            #expect(harness.publisher.podStatusWrites.pendingTargets.isEmpty)
        }
    }
}

/// The UIDs a writer reported, in order.
private final class UIDs: Sendable {
    private let values = Mutex<[String]>([])
    func add(_ value: String) { values.withLock { $0.append(value) } }
    var all: [String] { values.withLock { $0 } }
}
