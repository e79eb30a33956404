#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import SecretsStoreCore
import SecretsStoreCoreTesting
import SecretsStoreLinux
import Testing

@Suite("fsGroup: tmpfs options and group ownership")
struct MountGroupOptionTests {
    @Test("gid= is appended to the configured options only when there is a group")
    func tmpfsOptions() {
        #expect(LinuxMounter.options("mode=0755", group: nil) == "mode=0755")
        #expect(LinuxMounter.options("mode=0755", group: 2000) == "mode=0755,gid=2000")
        #expect(LinuxMounter.options("size=16m,mode=0755", group: 0) == "size=16m,mode=0755,gid=0")
        #expect(LinuxMounter.options("", group: 2000) == "gid=2000")
    }

    /// Without root: changing to one's own group is allowed, so this runs anywhere and proves the call and the
    /// read-back; the root suite below proves a link is changed itself, not followed.
    @Test func setsAndReadsTheOwnGroup() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let fileSystem = PosixFileSystem()
            try fileSystem.createFile(at: root + "/f", contents: [1], permissions: 0o640)
            try fileSystem.setOwnerGroup(of: root + "/f", to: UInt32(getegid()))
            #expect(try fileSystem.ownerGroup(of: root + "/f") == UInt32(getegid()))
            let error = #expect(throws: FileSystemError.self) { try fileSystem.setOwnerGroup(of: root + "/missing", to: 0) }
            #expect(error?.description == "lchown \(root)/missing: No such file or directory")
        }
    }
}

@Suite("fsGroup on real tmpfs (root only)", .serialized, .enabled(if: runningAsRoot, "needs root to mount tmpfs and chown; skipped"))
struct MountGroupRootTests {
    /// The group of the entry itself (links not followed).
    func linkGroup(_ path: String) -> UInt32? {
        var info = stat()
        return lstat(path, &info) == 0 ? UInt32(info.st_gid) : nil
    }

    @Test("the tmpfs root is group-owned by the mount group, mode unchanged, gid= in mountinfo")
    func mountsWithGroup() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let mounter = LinuxMounter()
            let fileSystem = PosixFileSystem()
            let target = root + "/mount"
            try fileSystem.createDirectories(at: target, permissions: 0o750)
            try await mounter.mountTmpfs(at: target, group: 2000)
            defer { try? mounter.unmountOnThisThread(target) }
            #expect(try fileSystem.ownerGroup(of: target) == 2000)
            #expect(try fileSystem.permissions(of: target) == 0o755)
            let line = try PosixFileSystem.readText(at: "/proc/self/mountinfo").split(separator: "\n")
                .first { $0.contains(" " + target + " ") }
            #expect(line?.contains("gid=2000") == true)
        }
    }

    @Test("without a group the tmpfs root stays root's")
    func mountsWithoutGroup() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let mounter = LinuxMounter()
            let fileSystem = PosixFileSystem()
            try await mounter.mountTmpfs(at: root)
            defer { try? mounter.unmountOnThisThread(root) }
            #expect(try fileSystem.ownerGroup(of: root) == 0)
            #expect(try fileSystem.permissions(of: root) == 0o755)
        }
    }

    @Test("lchown changes a link itself, never its destination")
    func doesNotFollowLinks() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let fileSystem = PosixFileSystem()
            try fileSystem.createFile(at: root + "/file", contents: [1], permissions: 0o600)
            try fileSystem.createSymbolicLink(at: root + "/link", to: "file")
            try fileSystem.setOwnerGroup(of: root + "/link", to: 2000)
            #expect(linkGroup(root + "/link") == 2000)
            #expect(linkGroup(root + "/file") == 0)
            #expect(try fileSystem.ownerGroup(of: root + "/link") == 0)  // ownerGroup follows links
        }
    }

    @Test("the writer on a real tmpfs: group on every directory and file, group read added, set-user-ID kept")
    func writerOnTmpfs() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let mounter = LinuxMounter()
            let fileSystem = PosixFileSystem()
            try await mounter.mountTmpfs(at: root, group: 2000)
            defer { try? mounter.unmountOnThisThread(root) }
            let writer = AtomicWriter(fileSystem: fileSystem, now: { 1_795_919_943 })
            let files = [
                SecretFile(path: "password", mode: 0o600, contents: Array("p".utf8)),
                SecretFile(path: "dir/sub/key", mode: 0o400, contents: Array("k".utf8)),
                // chown(2) clears set-user-ID: the writer restores it.
                SecretFile(path: "tool", mode: 0o4750, contents: Array("t".utf8)),
            ]
            #expect(try writer.write(files, to: root, group: 2000) == .written)
            let data = try #require(try fileSystem.symbolicLinkDestination(at: root + "/..data"))
            for directory in [data, data + "/dir", data + "/dir/sub"] {
                #expect(linkGroup(root + "/" + directory) == 2000, "\(directory)")
                #expect(try fileSystem.permissions(of: root + "/" + directory) == 0o755)
            }
            #expect(try fileSystem.permissions(of: root + "/password") == 0o640)
            #expect(try fileSystem.permissions(of: root + "/dir/sub/key") == 0o440)
            #expect(try fileSystem.permissions(of: root + "/tool") == 0o4750)
            for path in ["password", "dir/sub/key", "tool"] {
                #expect(try fileSystem.ownerGroup(of: root + "/" + path) == 2000, "\(path)")
            }
            // The links are root's: they are never permission-checked, so only the directories and files matter.
            #expect(linkGroup(root + "/..data") == 0)
            #expect(linkGroup(root + "/password") == 0)
        }
    }
}
