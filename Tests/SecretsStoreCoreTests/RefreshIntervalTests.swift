import Logging
import SecretsStoreCore
import SecretsStoreCoreTesting
import Testing

/// `spec.refreshInterval` of a SecretProviderClass: the volumes mounted from it are refreshed on that
/// interval instead of `--rotation-poll-interval`, over in-memory fakes and a manual clock.
@Suite("Per-class refreshInterval for mounted volumes")
struct RefreshIntervalTests {
    static let global = RotationPolicy(enabled: true, interval: .seconds(120))

    /// Two pods in `ns`, one volume each: `fast` mounts class `fast`, `slow` mounts class `slow`.
    struct Node {
        let fileSystem = InMemoryFileSystem()
        let kubernetes: InMemoryKubernetesAPI
        let provider = StaticProvider(PipelineHarness.files)
        let clock = ManualClock()
        let logs = LogCapture()
        let publisher: NodePublisher

        static let fastTarget = "/pods/uid-fast/volumes/kubernetes.io~csi/secrets/mount"
        static let slowTarget = "/pods/uid-slow/volumes/kubernetes.io~csi/secrets/mount"

        init(fast: String?, slow: String? = nil, rotation: RotationPolicy = RefreshIntervalTests.global) throws {
            kubernetes = InMemoryKubernetesAPI([Self.spc("fast", refreshInterval: fast), Self.spc("slow", refreshInterval: slow)])
            for target in [Self.fastTarget, Self.slowTarget] {
                try fileSystem.createDirectories(at: target, permissions: 0o750)
            }
            publisher = NodePublisher(
                kubernetes: kubernetes,
                providers: FixedProviderDirectory(["test": provider]),
                mounter: RecordingMounter(fileSystem: fileSystem),
                fileSystem: fileSystem,
                monotonicNow: clock.read,
                wallClockSeconds: { 1_795_919_943 },
                configuration: .init(nodeID: "node-1", rotation: rotation)
            )
        }

        static func spc(_ name: String, refreshInterval: String?) -> SecretProviderClass {
            SecretProviderClass(
                namespace: "ns",
                name: name,
                provider: "test",
                parameters: PipelineHarness.spc.parameters,
                refreshInterval: refreshInterval
            )
        }

        static func request(_ name: String, target: String) -> PublishRequest {
            PublishRequest(
                volumeID: "csi-\(name)",
                targetPath: target,
                accessType: .mount,
                readOnly: true,
                volumeContext: [
                    "secretProviderClass": name,
                    "csi.storage.k8s.io/pod.name": "pod-\(name)",
                    "csi.storage.k8s.io/pod.namespace": "ns",
                    "csi.storage.k8s.io/pod.uid": "uid-\(name)",
                    "csi.storage.k8s.io/serviceAccount.name": "default",
                ],
                secrets: [:]
            )
        }

        func publishBoth() async throws {
            #expect(try await publisher.publish(Self.request("fast", target: Self.fastTarget), logger: logs.logger()) == .published)
            #expect(try await publisher.publish(Self.request("slow", target: Self.slowTarget), logger: logs.logger()) == .published)
        }

        /// Moves the clock, runs one rotation cycle, and returns the targets it refreshed.
        func rotate(after duration: Duration) async -> Set<String> {
            clock.advance(by: duration)
            return Set(await publisher.rotate(logger: logs.logger()).keys)
        }

        var refreshWarnings: [String] {
            logs.all.filter { $0.hasPrefix("WARNING") && $0.contains("spec.refreshInterval") }
        }
    }

    @Test("a 10s class is refreshed every 10 s, a class without one on the 2 m poll interval")
    func shorterIntervalIsHonoured() async throws {
        let node = try Node(fast: "10s")
        try await node.publishBoth()
        #expect(node.publisher.volume(at: Node.fastTarget)?.refreshInterval == .seconds(10))
        #expect(node.publisher.volume(at: Node.slowTarget)?.refreshInterval == nil)

        #expect(await node.rotate(after: .seconds(9)) == [])
        #expect(await node.rotate(after: .seconds(1)) == [Node.fastTarget])
        #expect(node.provider.requests.count == 3)
        // 120 s after the publish: the slow volume's turn, and the fast one's (110 s since its last fetch).
        #expect(await node.rotate(after: .seconds(110)) == [Node.fastTarget, Node.slowTarget])
        #expect(node.refreshWarnings.isEmpty)
    }

    @Test("the rotation loop waits the shortest interval among the published volumes, never more than the global one")
    func rotationWaitIsTheShortestInterval() async throws {
        let node = try Node(fast: "10s", slow: "45s")
        #expect(node.publisher.rotationWait(atMost: .seconds(120)) == .seconds(120))
        try await node.publishBoth()
        #expect(node.publisher.rotationWait(atMost: .seconds(120)) == .seconds(10))
        #expect(node.publisher.rotationWait(atMost: .seconds(5)) == .seconds(5))
    }

    @Test("an interval longer than the poll interval holds the volume back until it has passed")
    func longerIntervalIsHonoured() async throws {
        let node = try Node(fast: "5m")
        try await node.publishBoth()
        #expect(await node.rotate(after: .seconds(120)) == [Node.slowTarget])
        #expect(await node.rotate(after: .seconds(120)) == [Node.slowTarget])
        // 300 s after the publish; the slow volume was fetched 60 s ago.
        #expect(await node.rotate(after: .seconds(60)) == [Node.fastTarget])
        #expect(node.publisher.rotationWait(atMost: .seconds(120)) == .seconds(120))
    }

    @Test(
        "an invalid refreshInterval warns naming the field and falls back to the poll interval",
        arguments: ["soon", "4s", "-10s", ""]
    )
    func invalidIntervalFallsBack(text: String) async throws {
        let node = try Node(fast: text)
        try await node.publishBoth()
        #expect(node.publisher.volume(at: Node.fastTarget)?.refreshInterval == nil)
        let warning = try #require(node.refreshWarnings.first)
        #expect(warning.contains("ns/fast"))
        #expect(warning.contains("spc.field=spec.refreshInterval"))

        #expect(await node.rotate(after: .seconds(10)) == [])
        #expect(await node.rotate(after: .seconds(110)) == [Node.fastTarget, Node.slowTarget])
    }

    @Test("an edit of the class takes effect at the volume's next refresh")
    func intervalFollowsEdits() async throws {
        let node = try Node(fast: nil)
        try await node.publishBoth()
        node.kubernetes.add(Node.spc("fast", refreshInterval: "10s"))
        #expect(await node.rotate(after: .seconds(10)) == [])
        #expect(await node.rotate(after: .seconds(110)) == [Node.fastTarget, Node.slowTarget])
        #expect(node.publisher.volume(at: Node.fastTarget)?.refreshInterval == .seconds(10))
        #expect(await node.rotate(after: .seconds(10)) == [Node.fastTarget])

        node.kubernetes.add(Node.spc("fast", refreshInterval: nil))
        #expect(await node.rotate(after: .seconds(10)) == [Node.fastTarget])
        #expect(node.publisher.volume(at: Node.fastTarget)?.refreshInterval == nil)
        #expect(await node.rotate(after: .seconds(10)) == [])
    }

    @Test("a republish by kubelet follows the class's interval too")
    func republishUsesTheVolumeInterval() async throws {
        let node = try Node(fast: "10s")
        try await node.publishBoth()
        node.clock.advance(by: .seconds(10))
        let fast = try await node.publisher.publish(Node.request("fast", target: Node.fastTarget), logger: node.logs.logger())
        let slow = try await node.publisher.publish(Node.request("slow", target: Node.slowTarget), logger: node.logs.logger())
        guard case .refreshed = fast else { Issue.record("expected a refresh, got \(fast)"); return }
        #expect(slow == .alreadyPublished)
    }

    @Test("with rotation off the field is not read: no warning, no refresh")
    func rotationOffIgnoresTheField() async throws {
        let node = try Node(fast: "soon", rotation: .disabled)
        try await node.publishBoth()
        #expect(node.refreshWarnings.isEmpty)
        #expect(await node.rotate(after: .seconds(600)) == [])
    }
}
