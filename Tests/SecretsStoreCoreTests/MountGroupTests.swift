import Logging
import SecretsStoreCore
import SecretsStoreCoreTesting
import Testing

/// The pod's fsGroup (`volume_capability.mount.volume_mount_group`): how it is parsed, and what the writer and
/// the publish pipeline do with it, over an in-memory file system (owners and modes no non-root process could
/// set on real files).
@Suite("fsGroup: volume_mount_group")
struct MountGroupTests {
    // MARK: Parsing

    @Test(
        "a decimal gid from 0 to 4294967294 is accepted; empty means none",
        arguments: [
            ("", nil), ("0", 0), ("2000", 2000), ("007", 7), ("65534", 65534), ("4294967294", 4_294_967_294),
        ] as [(String, UInt32?)]
    )
    func parsesGroup(text: String, group: UInt32?) throws {
        #expect(try ValidatedPublishRequest.parseMountGroup(text) == group)
        var request = PublishRequestTests.request()
        request.volumeMountGroup = text
        #expect(try ValidatedPublishRequest(request).mountGroup == group)
    }

    @Test(
        "anything but a decimal gid that fits is INVALID_ARGUMENT naming the field",
        arguments: [
            "abc", "-1", "+5", " 5", "5 ", "1.5", "0x10", "1e3", "٣", "２０００", "4294967295", "4294967296",
            "99999999999999999999999999999999999999999999",
        ]
    )
    func rejectsGroup(text: String) {
        var request = PublishRequestTests.request()
        request.volumeMountGroup = text
        let error = #expect(throws: PublishError.self) { try ValidatedPublishRequest(request) }
        guard case .invalidRequest(let message) = error else {
            Issue.record("expected invalidRequest, got \(String(describing: error))")
            return
        }
        #expect(message.hasPrefix("volume_capability.mount.volume_mount_group \""))
        #expect(message.contains("is not a group ID"))
        #expect(message.contains(String(text.prefix(32))))
        #expect(message.count < 200)
    }

    @Test func aRequestWithoutAGroupHasNone() throws {
        #expect(try ValidatedPublishRequest(PublishRequestTests.request()).mountGroup == nil)
    }

    // MARK: The writer

    static let target = "/pods/uid-1/volumes/kubernetes.io~csi/secrets/mount"
    static let files = [
        SecretFile(path: "password", mode: 0o600, contents: Array("p@ss".utf8)),
        SecretFile(path: "public", mode: 0o644, contents: Array("pub".utf8)),
        SecretFile(path: "dir/sub/key", mode: 0o400, contents: Array("key".utf8)),
        SecretFile(path: "dir/other", mode: 0o640, contents: Array("other".utf8)),
        SecretFile(path: "setuid", mode: 0o4750, contents: Array("s".utf8)),
    ]

    func fileSystem(umask: UInt32 = 0o022) throws -> InMemoryFileSystem {
        let fileSystem = InMemoryFileSystem(umask: umask)
        try fileSystem.createDirectories(at: Self.target, permissions: 0o755)
        return fileSystem
    }

    func writer(_ fileSystem: InMemoryFileSystem, at seconds: Int64 = 1_795_919_943) -> AtomicWriter {
        AtomicWriter(fileSystem: fileSystem, now: { seconds })
    }

    /// With umask 0o077 the writer's directories would be 0700 on their own: the group must still be able to
    /// search them, so they are set to 0755 explicitly.
    @Test("with a group, every directory and file is group-owned, files gain group read, links stay root's")
    func writesWithGroup() throws {
        let fileSystem = try fileSystem(umask: 0o077)
        #expect(try writer(fileSystem).write(Self.files, to: Self.target, group: 2000) == .written)

        let data = try #require(try fileSystem.symbolicLinkDestination(at: Self.target + "/..data"))
        let directory = Self.target + "/" + data
        for path in [directory, directory + "/dir", directory + "/dir/sub"] {
            #expect(fileSystem.entry(at: path)?.group == 2000, "\(path)")
            #expect(fileSystem.entry(at: path)?.mode == 0o755, "\(path)")
        }
        let expectedModes: [String: UInt32] = [
            "password": 0o640, "public": 0o644, "dir/sub/key": 0o440, "dir/other": 0o640, "setuid": 0o4750,
        ]
        for (path, mode) in expectedModes {
            let entry = try #require(fileSystem.entry(at: directory + "/" + path))
            #expect(entry.kind == .regularFile)
            #expect(entry.group == 2000, "\(path)")
            #expect(entry.mode == mode, "\(path): \(String(entry.mode, radix: 8))")
            // Read through the user-visible link, as the application does.
            #expect(try fileSystem.permissions(of: Self.target + "/" + path) == mode)
            #expect(try fileSystem.ownerGroup(of: Self.target + "/" + path) == 2000)
        }
        // The links decide nothing (links are not permission-checked) and are left as created.
        for link in ["..data", "password", "public", "dir", "setuid"] {
            #expect(fileSystem.entry(at: Self.target + "/" + link)?.kind == .symbolicLink)
            #expect(fileSystem.entry(at: Self.target + "/" + link)?.group == 0)
        }
        #expect(!fileSystem.groupChanges.contains { !$0.hasPrefix(directory) })
        // The tmpfs root is the mounter's business (gid= option), not the writer's.
        #expect(fileSystem.entry(at: Self.target)?.group == 0)
    }

    @Test("without a group nothing is chowned and every mode is exactly the provider's")
    func writesWithoutGroupAsBefore() throws {
        let fileSystem = try fileSystem()
        #expect(try writer(fileSystem).write(Self.files, to: Self.target) == .written)
        #expect(fileSystem.groupChanges.isEmpty)
        let data = try #require(try fileSystem.symbolicLinkDestination(at: Self.target + "/..data"))
        let directory = Self.target + "/" + data
        #expect(fileSystem.entry(at: directory)?.mode == 0o755)
        #expect(fileSystem.entry(at: directory + "/dir")?.mode == 0o755)
        for file in Self.files {
            #expect(fileSystem.entry(at: directory + "/" + file.path)?.mode == file.mode & 0o7777, "\(file.path)")
            #expect(fileSystem.entry(at: directory + "/" + file.path)?.group == 0)
        }
        // Same layout, entry for entry, as a write with a group.
        let grouped = try self.fileSystem()
        try writer(grouped).write(Self.files, to: Self.target, group: 2000)
        #expect(fileSystem.paths(under: Self.target) == grouped.paths(under: Self.target))
    }

    @Test("a rewrite with the same group changes nothing; a different group or a changed owner rewrites")
    func unchangedDetectionIncludesTheGroup() throws {
        let fileSystem = try fileSystem()
        try writer(fileSystem).write(Self.files, to: Self.target, group: 2000)
        let first = try fileSystem.symbolicLinkDestination(at: Self.target + "/..data")
        #expect(try writer(fileSystem, at: 1_900_000_000).write(Self.files, to: Self.target, group: 2000) == .unchanged)
        #expect(try fileSystem.symbolicLinkDestination(at: Self.target + "/..data") == first)

        #expect(try writer(fileSystem, at: 1_900_000_001).write(Self.files, to: Self.target, group: 3000) == .written)
        #expect(try fileSystem.ownerGroup(of: Self.target + "/password") == 3000)

        // Files written before the pod had a group (e.g. by a driver without fsGroup support) are rewritten.
        let plain = try self.fileSystem()
        try writer(plain).write([SecretFile(path: "a", mode: 0o640, contents: [1])], to: Self.target)
        #expect(try writer(plain).write([SecretFile(path: "a", mode: 0o640, contents: [1])], to: Self.target, group: 2000) == .written)
        #expect(try plain.ownerGroup(of: Self.target + "/a") == 2000)
    }

    // MARK: The publish pipeline

    /// The publisher over the in-memory file system and a recording mounter on it.
    struct Pipeline {
        let fileSystem: InMemoryFileSystem
        let mounter: RecordingMounter
        let provider: StaticProvider
        let clock = ManualClock()
        let publisher: NodePublisher
        let logs = LogCapture()

        init() throws {
            fileSystem = InMemoryFileSystem()
            try fileSystem.createDirectories(at: MountGroupTests.target, permissions: 0o750)
            mounter = RecordingMounter(fileSystem: fileSystem)
            provider = StaticProvider(PipelineHarness.files)
            let kubernetes = InMemoryKubernetesAPI([PipelineHarness.spc])
            publisher = NodePublisher(
                kubernetes: kubernetes,
                providers: FixedProviderDirectory(["test": provider]),
                mounter: mounter,
                fileSystem: fileSystem,
                monotonicNow: clock.read,
                wallClockSeconds: { 1_795_919_943 },
                configuration: .init(nodeID: "node-1", rotation: RotationPolicy(enabled: true, interval: .seconds(60)))
            )
        }

        func request(group: String) -> PublishRequest {
            var request = PublishRequestTests.request(target: MountGroupTests.target)
            request.volumeMountGroup = group
            return request
        }

        /// The owning group and mode of every regular file of the volume, read through its links.
        func files() throws -> [String: (group: UInt32, mode: UInt32)] {
            var result: [String: (group: UInt32, mode: UInt32)] = [:]
            for path in ["username", "password", "certs/tls.crt"] {
                let full = MountGroupTests.target + "/" + path
                result[path] = (try fileSystem.ownerGroup(of: full), try fileSystem.permissions(of: full))
            }
            return result
        }
    }

    @Test("the tmpfs is mounted with the group, and a rotation writes the new files with it too")
    func publishAndRotationKeepTheGroup() async throws {
        let pipeline = try Pipeline()
        #expect(try await pipeline.publisher.publish(pipeline.request(group: "2000"), logger: pipeline.logs.logger()) == .published)
        #expect(pipeline.mounter.mountGroup(of: MountGroupTests.target) == 2000)
        #expect(pipeline.publisher.volume(at: MountGroupTests.target)?.request?.mountGroup == 2000)
        let before = try pipeline.files()
        #expect(!before.isEmpty && before.values.allSatisfy { $0.group == 2000 && $0.mode & 0o040 != 0 })
        #expect(before["password"]?.mode == 0o640)

        var rotated = PipelineHarness.files
        rotated.files[1].contents = Array("rotated-value".utf8)
        rotated.objectVersions[1].version = "8"
        pipeline.provider.respond(with: rotated)
        pipeline.clock.advance(by: .seconds(61))
        let outcomes = await pipeline.publisher.rotate(logger: pipeline.logs.logger())
        #expect(outcomes[MountGroupTests.target] == .refreshed(changed: true))
        #expect(try pipeline.fileSystem.readFile(at: MountGroupTests.target + "/password") == Array("rotated-value".utf8))
        let after = try pipeline.files()
        #expect(after.keys.sorted() == before.keys.sorted() && after.values.allSatisfy { $0.group == 2000 && $0.mode & 0o040 != 0 })
        #expect(after["password"]?.mode == 0o640)
        let data = try #require(try pipeline.fileSystem.symbolicLinkDestination(at: MountGroupTests.target + "/..data"))
        #expect(pipeline.fileSystem.entry(at: MountGroupTests.target + "/" + data)?.group == 2000)
        #expect(pipeline.fileSystem.entry(at: MountGroupTests.target + "/" + data + "/certs")?.group == 2000)
    }

    @Test("without volume_mount_group the tmpfs has no group and the files keep the provider's modes")
    func publishWithoutGroup() async throws {
        let pipeline = try Pipeline()
        #expect(try await pipeline.publisher.publish(pipeline.request(group: ""), logger: pipeline.logs.logger()) == .published)
        #expect(pipeline.mounter.calls == [.mount(MountGroupTests.target)])
        #expect(pipeline.mounter.mountGroup(of: MountGroupTests.target) == nil)
        #expect(pipeline.fileSystem.groupChanges.isEmpty)
        let files = try pipeline.files()
        #expect(files["password"]?.mode == 0o600)
        #expect(files["username"]?.mode == 0o644)
        #expect(files["certs/tls.crt"]?.mode == 0o640)
    }

    @Test("a bad volume_mount_group mounts nothing and asks no provider")
    func badGroupTouchesNothing() async throws {
        let pipeline = try Pipeline()
        await #expect(throws: PublishError.self) {
            try await pipeline.publisher.publish(pipeline.request(group: "-1"), logger: pipeline.logs.logger())
        }
        #expect(pipeline.mounter.calls.isEmpty)
        #expect(pipeline.provider.requests.isEmpty)
    }
}
