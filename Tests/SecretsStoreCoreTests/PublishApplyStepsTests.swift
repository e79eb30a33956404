import Logging
import SecretsStoreCore
import SecretsStoreCoreTesting
import Synchronization
import Testing

/// The steps of ``ApplyStep`` one by one, each over only the seams it takes, and their composition: what a
/// failure in one step leaves of the others. In memory: no root, no temporary directory, no cluster.
@Suite("Applying an answer, step by step (fakes, no root)", .timeLimit(.minutes(1)))
struct PublishApplyStepsTests {
    static let target = "/pods/uid-1/volumes/kubernetes.io~csi/secrets/mount"
    static let pod = PodReference(namespace: "ns", name: "pod", uid: "uid-1")
    static let opaque = SecretProviderClass.SecretObject(
        secretName: "app", type: "Opaque", data: [.init(objectName: "username", key: "user")]
    )
    static let syncingClass = SecretProviderClass(
        namespace: "ns", name: "spc", provider: "test", parameters: ["a": "b"], secretObjects: [opaque]
    )
    static let plainClass = SecretProviderClass(namespace: "ns", name: "spc", provider: "test", parameters: ["a": "b"])
    static let answer = ProviderResponse(
        files: [SecretFile(path: "username", mode: 0o644, contents: Array("admin".utf8))],
        objectVersions: [ObjectVersion(id: "secret/username", version: "1")]
    )

    static func request() throws -> ValidatedPublishRequest {
        try ValidatedPublishRequest(
            PublishRequest(
                volumeID: "csi-1",
                targetPath: target,
                accessType: .mount,
                readOnly: true,
                volumeContext: [
                    "secretProviderClass": "spc", "csi.storage.k8s.io/pod.name": "pod",
                    "csi.storage.k8s.io/pod.namespace": "ns", "csi.storage.k8s.io/pod.uid": "uid-1",
                ],
                secrets: [:]
            )
        )
    }

    /// A volume record as ``VolumeRecordStep`` writes it.
    static func record(objects: [ObjectVersion], podStatusUID: String) throws -> PublishedVolumes.Volume {
        let volumes = PublishedVolumes()
        VolumeRecordStep(volumes: volumes, rotation: .disabled, monotonicNow: { .zero }).record(
            try request(), spc: plainClass, objects: objects, podStatusUID: podStatusUID, secretSyncPending: false, at: target,
            logger: Logger(label: "test")
        )
        return try #require(volumes.volume(at: target))
    }

    // MARK: Write files

    @Test("write files: the answer's files are swapped in, and a change is reported only when they differ")
    func writeFilesReportsChanges() throws {
        let fileSystem = InMemoryFileSystem()
        try fileSystem.createDirectories(at: Self.target, permissions: 0o750)
        let step = WriteFilesStep(writer: AtomicWriter(fileSystem: fileSystem, now: { 1_795_919_943 }), fileSystem: fileSystem)
        #expect(try step.write(Self.answer, to: Self.target, provider: "test", group: nil))
        #expect(try fileSystem.readFile(at: Self.target + "/username") == Array("admin".utf8))
        #expect(try !step.write(Self.answer, to: Self.target, provider: "test", group: nil))
        var rotated = Self.answer
        rotated.files[0].contents = Array("root".utf8)
        #expect(try step.write(rotated, to: Self.target, provider: "test", group: nil))
        #expect(try fileSystem.readFile(at: Self.target + "/username") == Array("root".utf8))
    }

    @Test("write files: a provider that writes itself must have left something; an empty target is an empty volume")
    func writeFilesOfAProviderThatWritesItself() throws {
        let fileSystem = InMemoryFileSystem()
        try fileSystem.createDirectories(at: Self.target, permissions: 0o750)
        let step = WriteFilesStep(writer: AtomicWriter(fileSystem: fileSystem, now: { 1_795_919_943 }), fileSystem: fileSystem)
        let selfWritten = ProviderResponse(files: [], objectVersions: Self.answer.objectVersions)
        #expect(throws: PublishError.emptyVolume(provider: "test")) {
            try step.write(selfWritten, to: Self.target, provider: "test", group: nil)
        }
        try fileSystem.createFile(at: Self.target + "/written-by-the-provider", contents: [1], permissions: 0o644)
        #expect(try step.write(selfWritten, to: Self.target, provider: "test", group: nil))
        let missing = Self.target + "/absent"
        let error = #expect(throws: PublishError.self) { try step.write(selfWritten, to: missing, provider: "test", group: nil) }
        guard case .writeFailed(let path, _) = error else {
            Issue.record("expected writeFailed, got \(String(describing: error))")
            return
        }
        #expect(path == missing)
    }

    // MARK: Pod status

    @Test(
        "pod status: written on a first publish, when the versions changed, and until a write landed",
        arguments: [
            (nil, true),
            (["1"], false),
            (["2"], true),
        ] as [([String]?, Bool)]
    )
    func podStatusNeedsWrite(previousVersions: [String]?, expected: Bool) throws {
        let status = SecretProviderClassPodStatus(
            namespace: "ns", podName: "pod", podUID: "uid-1", nodeName: "node-1", secretProviderClassName: "spc",
            targetPath: Self.target, objects: [ObjectVersion(id: "secret/username", version: "1")]
        )
        let previous = try previousVersions.map { versions in
            try Self.record(objects: versions.map { ObjectVersion(id: "secret/username", version: $0) }, podStatusUID: "uid-status")
        }
        #expect(PodStatusStep.needsWrite(status, previous: previous) == expected)
        if var notLanded = previous, previousVersions == ["1"] {
            notLanded.podStatusUID = ""
            #expect(PodStatusStep.needsWrite(status, previous: notLanded))
        }
    }

    @Test("pod status: a write after the answer puts its UID into the record only while the record holds its objects")
    func podStatusUIDLandsInTheMatchingRecord() async throws {
        let kubernetes = InMemoryKubernetesAPI()
        let volumes = PublishedVolumes()
        let writer = PodStatusWriter(kubernetes: kubernetes)
        let step = PodStatusStep(kubernetes: kubernetes, writer: writer, volumes: volumes, nodeID: "node-1")
        let request = try Self.request()
        let status = step.status(for: request, spc: Self.plainClass, target: Self.target, objects: Self.answer.objectVersions)
        #expect(status.nodeName == "node-1" && status.podUID == "uid-1" && status.targetPath == Self.target)
        let record = try Self.record(objects: status.objects, podStatusUID: "")
        volumes.record(record, at: Self.target)
        step.writeAfterAnswer(status, target: Self.target, logger: Logger(label: "test"))
        await writer.settle()
        #expect(volumes.volume(at: Self.target)?.podStatusUID == "uid-spcps-pod-ns-spc")

        // The record moved on to other versions before this write landed: its UID is not taken.
        var moved = record
        moved.objectVersions = [ObjectVersion(id: "secret/username", version: "2")]
        volumes.record(moved, at: Self.target)
        step.writeAfterAnswer(status, target: Self.target, logger: Logger(label: "test"))
        await writer.settle()
        #expect(kubernetes.calls([.applyPodStatus]).count == 2)
        #expect(volumes.volume(at: Self.target)?.podStatusUID == "")
    }

    @Test("pod status: a write before the answer fails the caller with the client's error translated")
    func podStatusWriteBeforeTheAnswerFails() async throws {
        let kubernetes = InMemoryKubernetesAPI()
        kubernetes.fail([.applyPodStatus], with: .unavailable("api down"))
        let step = PodStatusStep(kubernetes: kubernetes, writer: PodStatusWriter(kubernetes: kubernetes), volumes: PublishedVolumes(), nodeID: "node-1")
        let status = step.status(for: try Self.request(), spc: Self.syncingClass, target: Self.target, objects: Self.answer.objectVersions)
        await #expect(throws: PublishError.kubernetesUnavailable("api down")) {
            try await step.writeBeforeAnswer(status, logger: Logger(label: "test"))
        }
        kubernetes.fail([.applyPodStatus], with: nil)
        #expect(try await step.writeBeforeAnswer(status, logger: Logger(label: "test")) == "uid-spcps-pod-ns-spc")
    }

    // MARK: Optional objects

    @Test("missing optional objects: a warning on a first publish and when the objects held change, not otherwise")
    func missingObjectsWarning() async throws {
        let missing = [MissingObject(id: "secret/password", path: "password")]
        let held = [ObjectVersion(id: "secret/username", version: "1")]
        #expect(MissingObjectsWarning.isDue(missing: missing, objects: held, previous: nil))
        #expect(!MissingObjectsWarning.isDue(missing: missing, objects: held, previous: [ObjectVersion(id: "secret/username", version: "0")]))
        #expect(MissingObjectsWarning.isDue(missing: missing, objects: held, previous: []))
        #expect(!MissingObjectsWarning.isDue(missing: [], objects: held, previous: nil))

        let kubernetes = InMemoryKubernetesAPI()
        let warning = MissingObjectsWarning(events: PodEventRecorder(kubernetes: kubernetes))
        var response = Self.answer
        response.missingOptionalObjects = missing
        await warning.warnIfDue(response, pod: Self.pod, spc: Self.plainClass, previous: held, logger: Logger(label: "test"))
        #expect(kubernetes.events.isEmpty)
        await warning.warnIfDue(response, pod: Self.pod, spc: Self.plainClass, previous: nil, logger: Logger(label: "test"))
        #expect(kubernetes.events == [
            PodEvent(pod: Self.pod, kind: .warning, reason: PodEvent.optionalObjectsMissing,
                     message: "mounted spc ns/spc without optional objects the store does not have: secret/password (password)")
        ])
    }

    // MARK: Secret sync

    @Test("Secret sync: only with the flag on and secretObjects in the class")
    func secretSyncIsOnlyForSyncingClasses() {
        let kubernetes = InMemoryKubernetesAPI()
        func step(enabled: Bool) -> SecretSyncStep {
            SecretSyncStep(enabled: enabled, syncer: SecretSyncer(kubernetes: kubernetes), events: PodEventRecorder(kubernetes: kubernetes), metrics: NoMetrics())
        }
        #expect(step(enabled: true).syncs(Self.syncingClass))
        #expect(!step(enabled: false).syncs(Self.syncingClass))
        #expect(!step(enabled: true).syncs(Self.plainClass))
    }

    @Test("Secret sync: a failure is an event per Secret, FailedToCreateSecret first and SecretRotationFailed after, and stays pending")
    func secretSyncFailure() async throws {
        let kubernetes = InMemoryKubernetesAPI()
        kubernetes.add(PodInfo(namespace: "ns", name: "pod", uid: "uid-1", ownerReferences: []))
        kubernetes.fail(.secretWrites, with: .forbidden("secrets is forbidden"))
        let metrics = SyncMetrics()
        let step = SecretSyncStep(enabled: true, syncer: SecretSyncer(kubernetes: kubernetes), events: PodEventRecorder(kubernetes: kubernetes), metrics: metrics)
        let logger = Logger(label: "test")
        #expect(await step.sync(Self.syncingClass, pod: Self.pod, podStatus: ("pod-ns-spc", "u"), response: Self.answer, isFirstSync: true, volumeChanged: true, logger: logger))
        #expect(await step.sync(Self.syncingClass, pod: Self.pod, podStatus: ("pod-ns-spc", "u"), response: Self.answer, isFirstSync: false, volumeChanged: true, logger: logger))
        #expect(kubernetes.events.map(\.reason) == [PodEvent.failedToCreateSecret, PodEvent.secretRotationFailed])
        #expect(kubernetes.events.allSatisfy { $0.kind == .warning && $0.pod == Self.pod })
        #expect(kubernetes.events.count == 2)
        #expect(metrics.synced == 0)
    }

    @Test("Secret sync: success is the metric on the first sync; afterwards metric and SecretRotationComplete only when something happened")
    func secretSyncSuccess() async throws {
        let kubernetes = InMemoryKubernetesAPI()
        kubernetes.add(PodInfo(namespace: "ns", name: "pod", uid: "uid-1", ownerReferences: []))
        let metrics = SyncMetrics()
        let logs = LogCapture()
        let step = SecretSyncStep(enabled: true, syncer: SecretSyncer(kubernetes: kubernetes), events: PodEventRecorder(kubernetes: kubernetes), metrics: metrics)
        func sync(first: Bool, changed: Bool) async -> Bool {
            await step.sync(Self.syncingClass, pod: Self.pod, podStatus: ("pod-ns-spc", "u"), response: Self.answer, isFirstSync: first, volumeChanged: changed, logger: logs.logger())
        }
        #expect(await !sync(first: true, changed: true))
        #expect(kubernetes.secrets["ns/app"]?.data == ["user": Array("admin".utf8)])
        #expect(metrics.synced == 1 && kubernetes.events.isEmpty)

        // A refresh that finds the Secret as desired and the files unchanged records nothing.
        #expect(await !sync(first: false, changed: false))
        #expect(metrics.synced == 1 && kubernetes.events.isEmpty)

        // The files changed: metric and event.
        #expect(await !sync(first: false, changed: true))
        #expect(metrics.synced == 2)
        #expect(kubernetes.events.map(\.reason) == [PodEvent.secretRotationComplete])
        #expect(kubernetes.events.last?.message == "successfully rotated K8s secrets for spc ns/spc")

        // Someone edited the Secret: restoring it counts too, and says so in the log.
        var edited = try #require(kubernetes.secrets["ns/app"])
        edited.data["user"] = Array("intruder".utf8)
        kubernetes.add(edited)
        #expect(await !sync(first: false, changed: false))
        #expect(metrics.synced == 3)
        #expect(kubernetes.events.map(\.reason) == [PodEvent.secretRotationComplete, PodEvent.secretRotationComplete])
        #expect(logs.all.contains { $0.contains("restored synced secrets") && $0.contains("k8s.secrets=app") })
    }

    // MARK: Volume record

    @Test("volume record: the request, objects, fetch time, status UID, pending sync and the class's valid refreshInterval")
    func volumeRecord() throws {
        let volumes = PublishedVolumes()
        let logs = LogCapture()
        let rotation = RotationPolicy(enabled: true, interval: .seconds(120))
        let step = VolumeRecordStep(volumes: volumes, rotation: rotation, monotonicNow: { .seconds(1000) })
        let request = try Self.request()
        var spc = Self.plainClass
        spc.refreshInterval = "30s"
        step.record(request, spc: spc, objects: Self.answer.objectVersions, podStatusUID: "u", secretSyncPending: true, at: Self.target, logger: logs.logger())
        let recorded = try #require(volumes.volume(at: Self.target))
        #expect(recorded.request == request && recorded.pod == Self.pod)
        #expect(recorded.secretProviderClassName == "spc" && recorded.provider == "test")
        #expect(recorded.objectVersions == Self.answer.objectVersions)
        #expect(recorded.fetchedAt == .seconds(1000))
        #expect(recorded.podStatusUID == "u" && recorded.secretSyncPending)
        #expect(recorded.refreshInterval == .seconds(30))

        spc.refreshInterval = "soon"
        #expect(step.refreshInterval(of: spc, logger: logs.logger()) == nil)
        #expect(logs.all.contains { $0.contains("ignoring invalid spec.refreshInterval") && $0.contains("k8s.secretproviderclass=ns/spc") })
        spc.refreshInterval = "30s"
        let rotationOff = VolumeRecordStep(volumes: volumes, rotation: .disabled, monotonicNow: { .seconds(1000) })
        #expect(rotationOff.refreshInterval(of: spc, logger: logs.logger()) == nil)
    }

    // MARK: The steps together

    /// An ``ApplyStep`` over in-memory fakes, built from its steps as ``NodePublisher`` builds it.
    struct Pipeline {
        let fileSystem = InMemoryFileSystem()
        let kubernetes = InMemoryKubernetesAPI()
        let volumes = PublishedVolumes()
        let writer: PodStatusWriter
        let metrics = SyncMetrics()
        let apply: ApplyStep

        init() throws {
            try fileSystem.createDirectories(at: PublishApplyStepsTests.target, permissions: 0o750)
            kubernetes.add(PodInfo(namespace: "ns", name: "pod", uid: "uid-1", ownerReferences: []))
            writer = PodStatusWriter(kubernetes: kubernetes)
            let events = PodEventRecorder(kubernetes: kubernetes)
            apply = ApplyStep(
                files: WriteFilesStep(writer: AtomicWriter(fileSystem: fileSystem, now: { 1_795_919_943 }), fileSystem: fileSystem),
                podStatus: PodStatusStep(kubernetes: kubernetes, writer: writer, volumes: volumes, nodeID: "node-1"),
                missingObjects: MissingObjectsWarning(events: events),
                secrets: SecretSyncStep(enabled: true, syncer: SecretSyncer(kubernetes: kubernetes), events: events, metrics: metrics),
                record: VolumeRecordStep(volumes: volumes, rotation: .disabled, monotonicNow: { .seconds(1000) }),
                volumes: volumes
            )
        }
    }

    @Test("a failed Secret sync fails nothing: the files and the pod status are written, the volume recorded with the sync pending")
    func failedSecretSyncLeavesTheRest() async throws {
        let pipeline = try Pipeline()
        pipeline.kubernetes.fail(.secretWrites, with: .forbidden("secrets is forbidden"))
        var response = Self.answer
        response.missingOptionalObjects = [MissingObject(id: "secret/password", path: "password")]
        let changed = try await pipeline.apply.run(response, to: Self.target, request: try Self.request(), spc: Self.syncingClass, logger: Logger(label: "test"))
        #expect(changed)
        #expect(try pipeline.fileSystem.readFile(at: Self.target + "/username") == Array("admin".utf8))
        // The status was written before the answer (the Secrets would be owned by it); nothing is left to write.
        #expect(pipeline.kubernetes.podStatuses["ns/pod-ns-spc"]?.objects == Self.answer.objectVersions)
        #expect(pipeline.writer.pendingTargets.isEmpty)
        let record = try #require(pipeline.volumes.volume(at: Self.target))
        #expect(record.secretSyncPending)
        #expect(record.podStatusUID == "uid-spcps-pod-ns-spc")
        #expect(record.objectVersions == Self.answer.objectVersions)
        #expect(pipeline.kubernetes.secrets.isEmpty)
        // The steps ran in order: the warning about the answer, then the sync's failure.
        #expect(pipeline.kubernetes.events.map(\.reason) == [PodEvent.optionalObjectsMissing, PodEvent.failedToCreateSecret])
        #expect(pipeline.metrics.synced == 0)
    }

    @Test("a failed pod status write before a Secret sync fails the apply: the files stay written, nothing is synced or recorded")
    func failedPodStatusStopsTheSteps() async throws {
        let pipeline = try Pipeline()
        pipeline.kubernetes.fail([.applyPodStatus], with: .unavailable("api down"))
        await #expect(throws: PublishError.kubernetesUnavailable("api down")) {
            try await pipeline.apply.run(Self.answer, to: Self.target, request: try Self.request(), spc: Self.syncingClass, logger: Logger(label: "test"))
        }
        #expect(try pipeline.fileSystem.readFile(at: Self.target + "/username") == Array("admin".utf8))
        #expect(pipeline.volumes.volume(at: Self.target) == nil)
        #expect(pipeline.kubernetes.secrets.isEmpty)
        #expect(pipeline.kubernetes.events.isEmpty)
    }

    @Test("without Secrets to sync, the volume is recorded before its pod status is written, which then fills in the UID")
    func statusAfterTheRecordWithoutSync() async throws {
        let pipeline = try Pipeline()
        pipeline.kubernetes.fail([.applyPodStatus], with: .unavailable("api down"))
        #expect(try await pipeline.apply.run(Self.answer, to: Self.target, request: try Self.request(), spc: Self.plainClass, logger: Logger(label: "test")))
        #expect(pipeline.volumes.volume(at: Self.target)?.podStatusUID == "")
        #expect(pipeline.writer.pendingTargets == [Self.target])
        pipeline.kubernetes.fail([.applyPodStatus], with: nil)
        await pipeline.writer.settle()
        #expect(pipeline.volumes.volume(at: Self.target)?.podStatusUID == "uid-spcps-pod-ns-spc")
        #expect(pipeline.kubernetes.secrets.isEmpty)
    }
}

/// Counts ``DriverMetrics/secretSynced(provider:duration:)``; ignores the rest.
final class SyncMetrics: DriverMetrics {
    private let count = Mutex(0)
    var synced: Int { count.withLock { $0 } }
    func published(provider: String) {}
    func publishFailed(provider: String, errorType: ErrorType) {}
    func unpublished() {}
    func unpublishFailed() {}
    func rotated(provider: String, changed: Bool, duration: Duration) {}
    func rotationFailed(provider: String, errorType: ErrorType) {}
    func secretSynced(provider: String, duration: Duration) { count.withLock { $0 += 1 } }
    func providerFetched(provider: String, duration: Duration) {}
}
