import Logging
import SecretsStoreCore
import SecretsStoreCoreTesting
import SecretsStoreLinux
import Synchronization
import Testing

/// A monotonic clock a test moves by hand.
final class ManualClock: Sendable {
    private let now = Mutex<Duration>(.seconds(1000))
    func advance(by duration: Duration) { now.withLock { $0 += duration } }
    var read: @Sendable () -> Duration { { [self] in now.withLock { $0 } } }
}

/// The publish pipeline over fakes: a recording mounter, an in-memory Kubernetes client, an in-process provider,
/// and real files in a temporary directory. No root, no gRPC, no cluster.
struct PipelineHarness {
    let root: String
    let target: String
    let mounter = RecordingMounter()
    let kubernetes: InMemoryKubernetesAPI
    let provider: StaticProvider
    let clock = ManualClock()
    let logs = LogCapture()
    let publisher: NodePublisher
    let fileSystem = PosixFileSystem()

    static let spc = SecretProviderClass(
        namespace: "ns",
        name: "spc",
        provider: "test",
        parameters: ["objects": "array:\n  - |\n    objectName: a\n"]
    )

    static let files = ProviderResponse(
        files: [
            SecretFile(path: "username", mode: 0o644, contents: Array("admin".utf8)),
            SecretFile(path: "password", mode: 0o600, contents: Array("s3cr3t-value".utf8)),
            SecretFile(path: "certs/tls.crt", mode: 0o640, contents: Array("CERT".utf8)),
        ],
        objectVersions: [ObjectVersion(id: "secret/username", version: "1"), ObjectVersion(id: "secret/password", version: "7")]
    )

    init(
        root: String,
        rotation: RotationPolicy = .disabled,
        syncSecrets: Bool = false,
        spc: SecretProviderClass = PipelineHarness.spc,
        response: ProviderResponse = PipelineHarness.files
    ) {
        self.root = root
        self.target = root + "/pods/uid-1/volumes/kubernetes.io~csi/secrets/mount"
        self.kubernetes = InMemoryKubernetesAPI([spc])
        self.kubernetes.add(PodInfo(namespace: "ns", name: "pod", uid: "uid-1", ownerReferences: []))
        self.provider = StaticProvider(response)
        let clock = self.clock
        self.publisher = NodePublisher(
            kubernetes: kubernetes,
            providers: FixedProviderDirectory(["test": provider]),
            mounter: mounter,
            fileSystem: PosixFileSystem(),
            monotonicNow: clock.read,
            wallClockSeconds: { 1_795_919_943 },
            configuration: .init(nodeID: "node-1", rotation: rotation, syncSecrets: syncSecrets)
        )
    }

    /// Another publisher over the same fakes, as after a driver restart.
    func restartedPublisher() -> NodePublisher {
        NodePublisher(
            kubernetes: kubernetes,
            providers: FixedProviderDirectory(["test": provider]),
            mounter: mounter,
            fileSystem: PosixFileSystem(),
            monotonicNow: clock.read,
            wallClockSeconds: { 1_795_919_999 },
            configuration: .init(nodeID: "node-1", rotation: RotationPolicy(enabled: true, interval: .seconds(60)), syncSecrets: true)
        )
    }

    func request(
        context extra: [String: String] = [:],
        secrets: [String: String] = [:],
        pod: String = "pod",
        uid: String = "uid-1",
        target: String? = nil
    ) -> PublishRequest {
        var context = [
            "secretProviderClass": "spc",
            "csi.storage.k8s.io/pod.name": pod,
            "csi.storage.k8s.io/pod.namespace": "ns",
            "csi.storage.k8s.io/pod.uid": uid,
            "csi.storage.k8s.io/serviceAccount.name": "default",
        ]
        context.merge(extra) { _, new in new }
        return PublishRequest(
            volumeID: "csi-123",
            targetPath: target ?? self.target,
            accessType: .mount,
            readOnly: true,
            volumeContext: context,
            secrets: secrets
        )
    }

    @discardableResult
    func publish(_ request: PublishRequest? = nil) async throws(PublishError) -> NodePublisher.PublishOutcome {
        try await publisher.publish(request ?? self.request(), logger: logs.logger())
    }

    func read(_ path: String) throws -> String {
        String(decoding: try fileSystem.readFile(at: target + "/" + path), as: UTF8.self)
    }

    func entries() throws -> [String] {
        try fileSystem.contentsOfDirectory(at: target).sorted()
    }
}

@Suite("Publish pipeline with fakes", .timeLimit(.minutes(3)))
struct NodePublisherTests {
    @Test func publishesFilesAndRecordsPodStatus() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let harness = PipelineHarness(root: root)
            #expect(try await harness.publish() == .published)
            #expect(harness.mounter.calls == [.mount(harness.target)])
            #expect(try harness.read("username") == "admin")
            #expect(try harness.read("certs/tls.crt") == "CERT")
            #expect(try harness.fileSystem.permissions(of: harness.target + "/password") == 0o600)
            #expect(try harness.entries().filter { !$0.hasPrefix("..") } == ["certs", "password", "username"])

            await harness.publisher.podStatusWrites.settle()
            let status = try #require(harness.kubernetes.podStatuses["ns/pod-ns-spc"])
            #expect(status.nodeName == "node-1")
            #expect(status.podUID == "uid-1")
            #expect(status.targetPath == harness.target)
            #expect(status.objects.map(\.id) == ["secret/password", "secret/username"])
            #expect(harness.provider.requests.count == 1)
            #expect(harness.provider.requests[0].attributes["objects"] != nil)
        }
    }

    @Test func secondPublishIsIdempotentWithoutRotation() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let harness = PipelineHarness(root: root)
            try await harness.publish()
            #expect(try await harness.publish() == .alreadyPublished)
            #expect(harness.provider.requests.count == 1)
            #expect(harness.mounter.calls.count == 1)
        }
    }

    @Test func missingSecretProviderClassMountsNothing() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let harness = PipelineHarness(root: root)
            let error = await #expect(throws: PublishError.self) {
                try await harness.publish(harness.request(context: ["secretProviderClass": "nope"]))
            }
            #expect(error == .secretProviderClassNotFound(namespace: "ns", name: "nope"))
            #expect(error?.description == "failed to get secretproviderclass ns/nope, error: not found")
            #expect(harness.mounter.calls.isEmpty)
        }
    }

    @Test(
        "an unusable SecretProviderClass is named in the error",
        arguments: [
            (SecretProviderClass(namespace: "ns", name: "spc", provider: "", parameters: ["a": "b"]), "provider not set"),
            (SecretProviderClass(namespace: "ns", name: "spc", provider: "test", parameters: [:]), "parameters not set"),
            (SecretProviderClass(namespace: "ns", name: "spc", provider: "../x", parameters: ["a": "b"]), "must match"),
        ]
    )
    func invalidSecretProviderClass(spc: SecretProviderClass, reason: String) async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let harness = PipelineHarness(root: root)
            harness.kubernetes.add(spc)
            let error = await #expect(throws: PublishError.self) { try await harness.publish() }
            #expect(error?.description.contains("secretproviderclass ns/spc is invalid") == true)
            #expect(error?.description.contains(reason) == true)
            #expect(harness.mounter.mounted.isEmpty)
        }
    }

    @Test func providerFailureUnmountsWhatItMounted() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let harness = PipelineHarness(root: root)
            harness.provider.fail(with: .unavailable("vault down"))
            await #expect(throws: PublishError.provider(name: "test", .unavailable("vault down"))) {
                try await harness.publish()
            }
            #expect(harness.mounter.calls == [.mount(harness.target), .unmount(harness.target)])
            #expect(harness.mounter.mounted.isEmpty)
            #expect(harness.kubernetes.podStatuses.isEmpty)
        }
    }

    @Test(arguments: ["../../etc/passwd", "/etc/shadow", "..data", "a/../../b"])
    func traversalFromProviderWritesNothing(path: String) async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let response = ProviderResponse(
                files: [SecretFile(path: "ok", mode: 0o644, contents: [1]), SecretFile(path: path, mode: 0o644, contents: [2])],
                objectVersions: [ObjectVersion(id: "secret/x", version: "1")]
            )
            let harness = PipelineHarness(root: root, response: response)
            let error = await #expect(throws: PublishError.self) { try await harness.publish() }
            guard case .invalidPayload(let rejected, _) = error else {
                Issue.record("expected invalidPayload, got \(String(describing: error))")
                return
            }
            #expect(rejected == path)
            #expect(try harness.entries().isEmpty)
            #expect(harness.mounter.mounted.isEmpty)
        }
    }

    @Test func answerWithoutObjectVersionsIsRejected() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let harness = PipelineHarness(
                root: root,
                response: ProviderResponse(files: [SecretFile(path: "a", mode: 0o644, contents: [1])], objectVersions: [])
            )
            await #expect(throws: PublishError.provider(name: "test", .invalidResponse("missing object versions"))) {
                try await harness.publish()
            }
            #expect(harness.mounter.mounted.isEmpty)
        }
    }

    @Test func emptyVolumeIsNeverReportedAsPublished() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let harness = PipelineHarness(
                root: root,
                response: ProviderResponse(files: [], objectVersions: [ObjectVersion(id: "secret/a", version: "1")])
            )
            await #expect(throws: PublishError.emptyVolume(provider: "test")) { try await harness.publish() }
            #expect(harness.mounter.mounted.isEmpty)
        }
    }

    @Test func duplicateAndFileDirectoryClashesAreRejected() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let versions = [ObjectVersion(id: "secret/a", version: "1")]
            let harness = PipelineHarness(
                root: root,
                response: ProviderResponse(
                    files: [SecretFile(path: "a", mode: 0o644, contents: [1]), SecretFile(path: "a/b", mode: 0o644, contents: [2])],
                    objectVersions: versions
                )
            )
            await #expect(throws: PublishError.self) { try await harness.publish() }
            harness.provider.respond(
                with: ProviderResponse(
                    files: [SecretFile(path: "a", mode: 0o644, contents: [1]), SecretFile(path: "a", mode: 0o644, contents: [2])],
                    objectVersions: versions
                )
            )
            await #expect(throws: PublishError.self) { try await harness.publish() }
            #expect(harness.mounter.mounted.isEmpty)
        }
    }

    @Test func kubernetesFailuresMapToTheirKinds() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let harness = PipelineHarness(root: root)
            harness.kubernetes.fail(.all, with: .unavailable("connection refused"))
            await #expect(throws: PublishError.kubernetesUnavailable("connection refused")) { try await harness.publish() }
            harness.kubernetes.fail(.all, with: .forbidden("secretproviderclasses is forbidden"))
            await #expect(throws: PublishError.kubernetesForbidden("secretproviderclasses is forbidden")) {
                try await harness.publish()
            }
            #expect(harness.mounter.mounted.isEmpty)
        }
    }

    @Test func concurrentPublishForOneTargetIsAborted() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let gate = GatedProvider()
            let harness = PipelineHarness(root: root)
            let publisher = NodePublisher(
                kubernetes: harness.kubernetes,
                providers: FixedProviderDirectory(["test": gate]),
                mounter: harness.mounter,
                fileSystem: PosixFileSystem(),
                monotonicNow: harness.clock.read,
                wallClockSeconds: { 0 },
                configuration: .init(nodeID: "n")
            )
            let request = harness.request()
            let logger = harness.logs.logger()
            async let first: NodePublisher.PublishOutcome = publisher.publish(request, logger: logger)
            try await eventually("the provider called") { gate.called }
            await #expect(throws: PublishError.operationPending(targetPath: harness.target)) {
                try await publisher.publish(request, logger: logger)
            }
            gate.release()
            #expect(try await first == .published)
        }
    }

    @Test func staleMountIsCleanedAndReported() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let harness = PipelineHarness(root: root)
            try harness.fileSystem.createDirectories(at: harness.target, permissions: 0o750)
            harness.mounter.markCorrupt(harness.target)
            let error = await #expect(throws: PublishError.self) { try await harness.publish() }
            guard case .mountFailed = error else {
                Issue.record("expected mountFailed, got \(String(describing: error))")
                return
            }
            #expect(harness.mounter.calls == [.unmount(harness.target)])
            #expect(try await harness.publish() == .published)
        }
    }

    @Test("an empty tmpfs left by a crash is filled, not reported as published")
    func emptyMountFromACrashIsFilled() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let harness = PipelineHarness(root: root)
            try harness.fileSystem.createDirectories(at: harness.target, permissions: 0o750)
            try await harness.mounter.mountTmpfs(at: harness.target)
            #expect(try await harness.publish() == .published)
            #expect(try harness.read("username") == "admin")
        }
    }

    @Test func rotationRefetchesOnlyWhenDueAndSendsCurrentVersions() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let harness = PipelineHarness(root: root, rotation: RotationPolicy(enabled: true, interval: .seconds(120)))
            try await harness.publish()
            harness.clock.advance(by: .seconds(60))
            #expect(try await harness.publish() == .alreadyPublished)
            #expect(harness.provider.requests.count == 1)

            harness.clock.advance(by: .seconds(61))
            #expect(try await harness.publish() == .refreshed(changed: false))
            #expect(harness.provider.requests.count == 2)
            #expect(harness.provider.requests[1].currentObjectVersions.map(\.id) == ["secret/password", "secret/username"])

            var rotated = PipelineHarness.files
            rotated.files[0].contents = Array("root".utf8)
            rotated.objectVersions[0].version = "2"
            harness.provider.respond(with: rotated)
            harness.clock.advance(by: .seconds(121))
            #expect(try await harness.publish() == .refreshed(changed: true))
            #expect(try harness.read("username") == "root")
            await harness.publisher.podStatusWrites.settle()
            #expect(harness.kubernetes.podStatuses["ns/pod-ns-spc"]?.objects.first { $0.id == "secret/username" }?.version == "2")
        }
    }

    @Test func failedRotationKeepsTheOldFiles() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let harness = PipelineHarness(root: root, rotation: RotationPolicy(enabled: true, interval: .seconds(1)))
            try await harness.publish()
            harness.provider.fail(with: .throttled("429"))
            harness.clock.advance(by: .seconds(2))
            #expect(try await harness.publish() == .refreshFailed(.provider(name: "test", .throttled("429"))))
            #expect(try harness.read("username") == "admin")
            #expect(harness.mounter.mounted == [harness.target])
        }
    }

    @Test func unpublishIsIdempotent() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let harness = PipelineHarness(root: root)
            let logger = harness.logs.logger()
            try await harness.publish()
            try await harness.publisher.unpublish(UnpublishRequest(volumeID: "csi-123", targetPath: harness.target), logger: logger)
            #expect(harness.mounter.mounted.isEmpty)
            #expect(try harness.fileSystem.kind(of: harness.target) == nil)
            try await harness.publisher.unpublish(UnpublishRequest(volumeID: "csi-123", targetPath: harness.target), logger: logger)
            await #expect(throws: PublishError.invalidRequest("Volume ID missing in request")) {
                try await harness.publisher.unpublish(UnpublishRequest(volumeID: "", targetPath: harness.target), logger: logger)
            }
            await #expect(throws: PublishError.invalidRequest("Target path missing in request")) {
                try await harness.publisher.unpublish(UnpublishRequest(volumeID: "v", targetPath: ""), logger: logger)
            }
        }
    }

    @Test func noSecretOrTokenReachesTheLogs() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let harness = PipelineHarness(root: root)
            let token = "eyJhbGciOiJSUzI1NiJ9.TOKEN-SENTINEL"
            try await harness.publish(
                harness.request(
                    context: ["csi.storage.k8s.io/serviceAccount.tokens": "{\"api://AzureADTokenExchange\":{\"token\":\"\(token)\"}}"],
                    secrets: ["clientsecret": "CLIENT-SECRET-SENTINEL"]
                )
            )
            harness.provider.fail(with: .permissionDenied("AADSTS700016"))
            try await harness.publisher.unpublish(UnpublishRequest(volumeID: "csi-123", targetPath: harness.target), logger: harness.logs.logger())
            _ = try? await harness.publish()
            let output = harness.logs.all.joined(separator: "\n")
            #expect(!harness.logs.all.isEmpty)
            for sentinel in ["TOKEN-SENTINEL", "CLIENT-SECRET-SENTINEL", "s3cr3t-value"] {
                #expect(!output.contains(sentinel))
            }
        }
    }
}

/// A provider that blocks until released, to hold a publish in flight.
final class GatedProvider: SecretsProvider {
    private let state = Mutex<(called: Bool, released: Bool)>((false, false))

    var called: Bool { state.withLock { $0.called } }

    func release() { state.withLock { $0.released = true } }

    func fetch(_ request: ProviderRequest, logger: Logger) async throws(ProviderFailure) -> ProviderResponse {
        state.withLock { $0.called = true }
        while !state.withLock({ $0.released }) { try? await Task.sleep(for: .milliseconds(5)) }
        return PipelineHarness.files
    }
}
