import Logging
import SecretsStoreCore
import SecretsStoreCoreTesting
import SecretsStoreApplication
import ServiceLifecycle
import Testing

/// The pod status writes end with the driver's group, before the assembly may shut the Kubernetes client down.
@Suite("Pod status writes are owned by the group", .timeLimit(.minutes(1)))
struct PodStatusWriterServiceTests {
    static func status() -> SecretProviderClassPodStatus {
        SecretProviderClassPodStatus(
            namespace: "ns", podName: "pod", podUID: "uid-1", nodeName: "node-1", secretProviderClassName: "spc",
            targetPath: "/t", objects: [ObjectVersion(id: "secret/a", version: "1")]
        )
    }

    /// Runs a group holding only the writer's service, with one write pending that keeps failing; `stop` ends
    /// the group. Returns once the group's `run` has returned: where the assembly shuts the client down.
    static func runGroup(
        _ kubernetes: InMemoryKubernetesAPI,
        writer: PodStatusWriter,
        drainBound: Duration,
        stop: @escaping @Sendable (ServiceGroup, Task<Void, any Error>) async -> Void
    ) async throws {
        let logger = Logger(label: "test")
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [.init(service: PodStatusWriterService(writer: writer, drainBound: drainBound))],
                logger: logger
            )
        )
        let running = Task { try await group.run() }
        writer.submit(status(), target: "/t", logger: logger) { _ in }
        try await eventually("a first attempt") { kubernetes.calls([.applyPodStatus]).count >= 1 }
        await stop(group, running)
        _ = await running.result
    }

    @Test("a write that can land does so at a graceful shutdown, before the group has ended")
    func gracefulShutdownLetsThePendingWriteLand() async throws {
        let kubernetes = InMemoryKubernetesAPI()
        kubernetes.fail([.applyPodStatus], with: .unavailable("api down"))
        let writer = PodStatusWriter(kubernetes: kubernetes, firstRetry: .milliseconds(20), maxRetry: .milliseconds(40))
        try await Self.runGroup(kubernetes, writer: writer, drainBound: .seconds(30)) { group, _ in
            kubernetes.fail([.applyPodStatus], with: nil)
            await group.triggerGracefulShutdown()
        }
        // The client would be shut down here: the write has landed and no write task is left.
        #expect(kubernetes.podStatuses["ns/pod-ns-spc"] != nil)
        #expect(writer.pendingTargets.isEmpty)
    }

    @Test("a write that cannot land within the bound is cancelled and has ended when the group has")
    func gracefulShutdownCancelsAWriteBeyondTheBound() async throws {
        let kubernetes = InMemoryKubernetesAPI()
        kubernetes.fail([.applyPodStatus], with: .unavailable("api down"))
        let writer = PodStatusWriter(kubernetes: kubernetes, firstRetry: .milliseconds(20), maxRetry: .milliseconds(40))
        try await Self.runGroup(kubernetes, writer: writer, drainBound: .milliseconds(100)) { group, _ in
            await group.triggerGracefulShutdown()
        }
        // A write task leaves `pendingTargets` as its last step, so none is running or can call the client now.
        #expect(writer.pendingTargets.isEmpty)
        #expect(kubernetes.podStatuses.isEmpty)
        let attempts = kubernetes.calls([.applyPodStatus]).count
        writer.submit(Self.status(), target: "/t", logger: Logger(label: "test")) { _ in }
        #expect(writer.pendingTargets.isEmpty, "no write starts once the writer is shut down")
        #expect(kubernetes.calls([.applyPodStatus]).count == attempts)
    }

    @Test("cancelling the group cancels the pending write, which has ended when the group has")
    func cancellationCancelsThePendingWrite() async throws {
        let kubernetes = InMemoryKubernetesAPI()
        kubernetes.fail([.applyPodStatus], with: .unavailable("api down"))
        let writer = PodStatusWriter(kubernetes: kubernetes, firstRetry: .milliseconds(20), maxRetry: .milliseconds(40))
        try await Self.runGroup(kubernetes, writer: writer, drainBound: .seconds(30)) { _, running in
            running.cancel()
        }
        #expect(writer.pendingTargets.isEmpty)
        #expect(kubernetes.podStatuses.isEmpty)
    }
}
