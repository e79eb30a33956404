import SecretsStoreCore
import SecretsStoreCoreTesting
import SecretsStoreLinux
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Atomic writer on a real directory")
struct AtomicWriterTests {
    let fileSystem = PosixFileSystem()

    func writer(at seconds: Int64 = 1_795_919_943) -> AtomicWriter {
        AtomicWriter(fileSystem: fileSystem, now: { seconds })
    }

    func read(_ path: String) throws -> String {
        String(decoding: try fileSystem.readFile(at: path), as: UTF8.self)
    }

    @Test func writesTheKubeletLayout() async throws {
        try await withTemporaryDirectory { (target: String) async throws in
            let files = [
                SecretFile(path: "a", mode: 0o644, contents: Array("A".utf8)),
                SecretFile(path: "dir/b", mode: 0o400, contents: Array("B".utf8)),
                SecretFile(path: "zero", mode: 0, contents: []),
            ]
            #expect(try writer().write(files, to: target) == .written)

            let data = try #require(try fileSystem.symbolicLinkDestination(at: target + "/..data"))
            #expect(data.hasPrefix("..2026_11_29_02_39_03."))
            #expect(try fileSystem.permissions(of: target + "/" + data) == 0o755)
            #expect(try fileSystem.symbolicLinkDestination(at: target + "/a") == "..data/a")
            #expect(try fileSystem.symbolicLinkDestination(at: target + "/dir") == "..data/dir")
            #expect(try fileSystem.kind(of: target + "/dir") == .symbolicLink)
            #expect(try read(target + "/a") == "A")
            #expect(try read(target + "/dir/b") == "B")
            #expect(try fileSystem.permissions(of: target + "/a") == 0o644)
            #expect(try fileSystem.permissions(of: target + "/dir/b") == 0o400)
            #expect(try fileSystem.permissions(of: target + "/zero") == 0)
            #expect(try fileSystem.contentsOfDirectory(at: target).sorted() == ["..data", data, "a", "dir", "zero"].sorted())
            #expect(try writer().currentFiles(in: target) == ["a", "dir/b", "zero"])
        }
    }

    @Test func unchangedContentIsNotRewritten() async throws {
        try await withTemporaryDirectory { (target: String) async throws in
            let files = [SecretFile(path: "a", mode: 0o644, contents: Array("A".utf8))]
            try writer().write(files, to: target)
            let before = try fileSystem.symbolicLinkDestination(at: target + "/..data")
            #expect(try writer(at: 1_900_000_000).write(files, to: target) == .unchanged)
            #expect(try fileSystem.symbolicLinkDestination(at: target + "/..data") == before)
        }
    }

    @Test func aModeChangeAloneRewrites() async throws {
        try await withTemporaryDirectory { (target: String) async throws in
            try writer().write([SecretFile(path: "a", mode: 0o644, contents: [1])], to: target)
            #expect(try writer().write([SecretFile(path: "a", mode: 0o600, contents: [1])], to: target) == .written)
            #expect(try fileSystem.permissions(of: target + "/a") == 0o600)
        }
    }

    @Test func swapsContentAndRemovesStaleFiles() async throws {
        try await withTemporaryDirectory { (target: String) async throws in
            try writer().write(
                [
                    SecretFile(path: "keep", mode: 0o644, contents: Array("1".utf8)),
                    SecretFile(path: "gone", mode: 0o644, contents: Array("x".utf8)),
                    SecretFile(path: "olddir/f", mode: 0o644, contents: Array("y".utf8)),
                ],
                to: target
            )
            let first = try #require(try fileSystem.symbolicLinkDestination(at: target + "/..data"))
            try writer().write([SecretFile(path: "keep", mode: 0o644, contents: Array("2".utf8))], to: target)
            let second = try #require(try fileSystem.symbolicLinkDestination(at: target + "/..data"))
            #expect(first != second)
            #expect(try read(target + "/keep") == "2")
            #expect(try fileSystem.kind(of: target + "/gone") == nil)
            #expect(try fileSystem.kind(of: target + "/olddir") == nil)
            #expect(try fileSystem.kind(of: target + "/" + first) == nil)
            #expect(try fileSystem.contentsOfDirectory(at: target).sorted() == ["..data", second, "keep"].sorted())
        }
    }

    @Test("a file left by a provider that wrote into the target itself is replaced by a link")
    func replacesLegacyFiles() async throws {
        try await withTemporaryDirectory { (target: String) async throws in
            try fileSystem.createFile(at: target + "/a", contents: Array("legacy".utf8), permissions: 0o644)
            try writer().write([SecretFile(path: "a", mode: 0o644, contents: Array("new".utf8))], to: target)
            #expect(try fileSystem.kind(of: target + "/a") == .symbolicLink)
            #expect(try read(target + "/a") == "new")
        }
    }

    @Test("a reader holding the old ..data sees the old set whole while the new one is swapped in")
    func readersNeverSeeAMix() async throws {
        try await withTemporaryDirectory { (target: String) async throws in
            let old = (0..<20).map { SecretFile(path: "f\($0)", mode: 0o644, contents: Array("old".utf8)) }
            let new = (0..<20).map { SecretFile(path: "f\($0)", mode: 0o644, contents: Array("new".utf8)) }
            for round in 0..<30 {
                try writer().write(round.isMultiple(of: 2) ? old : new, to: target)
                let directory = try #require(try fileSystem.symbolicLinkDestination(at: target + "/..data"))
                let values = Set(try (0..<20).map { try read(target + "/" + directory + "/f\($0)") })
                #expect(values.count == 1)
            }
        }
    }
}

@Suite("mountinfo parsing")
struct MountInfoTests {
    @Test func parsesMountPointsAndTypes() {
        let text = """
            22 28 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:13 - proc proc rw
            130 28 0:52 / /var/lib/kubelet/pods/u/volumes/kubernetes.io~csi/my\\040vol/mount rw,relatime shared:70 - tmpfs tmpfs rw,mode=755
            131 28 0:53 / /tmp/a\\134b rw - tmpfs tmpfs rw
            garbage line
            """
        let entries = MountInfo.parse(text)
        #expect(entries.count == 3)
        #expect(entries[1].mountPoint == "/var/lib/kubelet/pods/u/volumes/kubernetes.io~csi/my vol/mount")
        #expect(entries[1].fileSystemType == "tmpfs")
        #expect(entries[2].mountPoint == "/tmp/a\\b")
        for entry in entries { #expect(MountInfo.lists(mountPoint: entry.mountPoint, in: text)) }
        #expect(!MountInfo.lists(mountPoint: "/var/lib/kubelet/pods/u/volumes/kubernetes.io~csi/my vol", in: text))
        #expect(!MountInfo.lists(mountPoint: "/tmp/a b", in: text))
        #expect(!MountInfo.lists(mountPoint: "rw", in: text))
    }
}

@Suite("Linux tmpfs mounts (root only)", .enabled(if: runningAsRoot, "needs root to mount tmpfs; skipped"))
struct LinuxMounterTests {
    @Test func mountsReportsAndUnmounts() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let mounter = LinuxMounter()
            let fileSystem = PosixFileSystem()
            let target = root + "/mount"
            #expect(try await mounter.state(of: target) == .absent)
            try fileSystem.createDirectories(at: target, permissions: 0o750)
            #expect(try await mounter.state(of: target) == .directory)
            try await mounter.mountTmpfs(at: target)
            #expect(try await mounter.state(of: target) == .mounted)
            let mountInfo = MountInfo.parse(try PosixFileSystem.readText(at: "/proc/self/mountinfo"))
            #expect(mountInfo.contains { $0.mountPoint == target && $0.fileSystemType == "tmpfs" })
            try fileSystem.createFile(at: target + "/x", contents: [1, 2, 3], permissions: 0o600)
            try await mounter.unmount(target)
            #expect(try await mounter.state(of: target) == .directory)
            #expect(try fileSystem.contentsOfDirectory(at: target).isEmpty)
            try await mounter.unmount(target)
        }
    }

    /// A bind mount of a directory of the same file system keeps its device, so the device check cannot tell it
    /// is a mount point: mountinfo still does, and the mount is still found and removed.
    @Test func bindMountOnTheSameDeviceIsStillAMountPoint() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let mounter = LinuxMounter()
            let fileSystem = PosixFileSystem()
            try await mounter.mountTmpfs(at: root)
            defer { try? mounter.unmountOnThisThread(root) }
            try fileSystem.createDirectories(at: root + "/source", permissions: 0o755)
            try fileSystem.createDirectories(at: root + "/target", permissions: 0o755)
            #expect(mount(root + "/source", root + "/target", nil, UInt(MS_BIND), nil) == 0)
            var own = stat()
            var parent = stat()
            #expect(stat(root + "/target", &own) == 0 && stat(root, &parent) == 0 && own.st_dev == parent.st_dev)
            #expect(try await mounter.state(of: root + "/target") == .mounted)
            try await mounter.unmount(root + "/target")
            #expect(try await mounter.state(of: root + "/target") == .directory)
            #expect(try await mounter.state(of: root) == .mounted)
        }
    }

    @Test func sizeOptionLimitsTheVolume() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let mounter = LinuxMounter(options: "size=64k,mode=0755")
            let fileSystem = PosixFileSystem()
            try await mounter.mountTmpfs(at: root)
            defer { try? mounter.unmountOnThisThread(root) }
            #expect(throws: FileSystemError.self) {
                try fileSystem.createFile(at: root + "/big", contents: [UInt8](repeating: 7, count: 256 * 1024), permissions: 0o644)
            }
            #expect(try fileSystem.permissions(of: root) == 0o755)
        }
    }
}
