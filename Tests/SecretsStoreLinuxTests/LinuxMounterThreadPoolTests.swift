#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import NIOCore
import NIOPosix
import SecretsStoreCore
import SecretsStoreCoreTesting
import SecretsStoreLinux
import Testing

/// The mounter's system calls run on its thread pool, never on the calling thread (in the driver, an event loop).
///
/// What makes the thread observable is the kernel itself: `/proc/thread-self` resolves (realpath(3), which the
/// mounter runs with its stat(2)s before reading mountinfo) to `/proc/<pid>/task/<tid>` of the thread that
/// resolves it. The tests give the mounter a mountinfo that lists `/proc/<pid>/task/<tid>/fd` for the pool's
/// threads only: `/proc/thread-self/fd` is then reported `.mounted` exactly when the calls ran on the pool.
/// None of this needs root.
@Suite("LinuxMounter: system calls on the thread pool", .timeLimit(.minutes(1)))
struct LinuxMounterThreadPoolTests {
    static let probe = "/proc/thread-self/fd"

    /// A mountinfo listing `<thread>/fd` for each of `threads` (`/proc/<pid>/task/<tid>` paths).
    static func mountInfo(listing threads: [String]) -> String {
        threads.map { "36 35 0:30 / \($0)/fd rw,relatime shared:1 - proc proc rw\n" }.joined()
    }

    /// `/proc/<pid>/task/<tid>` of the calling thread.
    static func currentThread() -> String {
        guard let resolved = realpath("/proc/thread-self", nil) else { return "?" }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// `/proc/<pid>/task/<tid>` of each thread of this process whose name starts with `prefix`.
    static func threads(named prefix: String) throws -> [String] {
        try PosixFileSystem().contentsOfDirectory(at: "/proc/self/task").compactMap { tid in
            let name = (try? PosixFileSystem.readText(at: "/proc/self/task/\(tid)/comm")) ?? ""
            return name.hasPrefix(prefix) ? "/proc/\(getpid())/task/\(tid)" : nil
        }
    }

    @Test("with a pool of its own, the calls run on that pool's thread, not the caller's")
    func runsOnTheGivenPool() async throws {
        let pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
        let poolThread = try await pool.runIfActive { Self.currentThread() }
        #expect(poolThread.hasPrefix("/proc/\(getpid())/task/"))
        try await withTemporaryDirectory { (root: String) async throws in
            try PosixFileSystem().createFile(at: root + "/mountinfo", contents: Array(Self.mountInfo(listing: [poolThread]).utf8), permissions: 0o644)
            let mounter = LinuxMounter(mountInfoPath: root + "/mountinfo", threadPool: pool)
            #expect(try await mounter.state(of: Self.probe) == .mounted)
            // The same mountinfo does not list the probe for any thread but the pool's.
            #expect(!MountInfo.lists(mountPoint: Self.currentThread() + "/fd", in: Self.mountInfo(listing: [poolThread])))
        }
        try await pool.shutdownGracefully()
    }

    @Test("by default, the calls run on NIO's process-wide blocking pool")
    func runsOnTheSingletonPool() async throws {
        let pool = NIOThreadPool.singleton
        _ = try await pool.runIfActive { Self.currentThread() }
        // Every thread of the singleton pool (named SGLTN-TP-#<n>) has named itself once it ran.
        let expected = NIOSingletons.blockingPoolThreadCountSuggestion
        try await eventually("\(expected) threads named SGLTN-TP-#") { try Self.threads(named: "SGLTN-TP-#").count == expected }
        let poolThreads = try Self.threads(named: "SGLTN-TP-#")
        try await withTemporaryDirectory { (root: String) async throws in
            try PosixFileSystem().createFile(at: root + "/mountinfo", contents: Array(Self.mountInfo(listing: poolThreads).utf8), permissions: 0o644)
            let mounter = LinuxMounter(mountInfoPath: root + "/mountinfo")
            for _ in 0..<8 {
                #expect(try await mounter.state(of: Self.probe) == .mounted)
            }
        }
    }

    @Test("a pool that is shut down refuses every call: nothing runs on the caller's thread instead")
    func refusesWithoutAPool() async throws {
        let pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
        try await pool.shutdownGracefully()
        try await withTemporaryDirectory { (root: String) async throws in
            let target = root + "/target"
            try PosixFileSystem().createDirectories(at: target, permissions: 0o755)
            let mounter = LinuxMounter(threadPool: pool)
            let refusal = MountError(path: target, reason: "the thread pool for mount system calls is shut down")
            await #expect(throws: refusal) { try await mounter.state(of: target) }
            await #expect(throws: refusal) { try await mounter.mountTmpfs(at: target) }
            await #expect(throws: refusal) { try await mounter.unmount(target) }
            #expect(!MountInfo.lists(mountPoint: target, in: try PosixFileSystem.readText(at: "/proc/self/mountinfo")))
        }
    }
}
