#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import NIOPosix
import SecretsStoreCore

/// Mounts tmpfs volumes with mount(2) and unmounts them with umount2(2); tells mount points apart by
/// `/proc/self/mountinfo`. Needs CAP_SYS_ADMIN (the driver container is privileged).
///
/// Each call's system calls (stat(2), mount(2), umount2(2), opendir(3), the mountinfo read) run on a thread of
/// ``threadPool``, never on the calling thread: the driver's global executor is its NIO event loops, and a
/// mount, an unmount of a busy tmpfs or a stat of a stale mount can block for long. A call runs to completion
/// once submitted, whether or not the calling task is cancelled (see ``runOnThreadPool(_:path:)``).
package struct LinuxMounter: Mounter {
    /// Mount options for each tmpfs, e.g. `mode=0755` or `size=16m,mode=0755`.
    package var options: String
    private let mountInfoPath: String
    /// The threads the system calls run on.
    private let threadPool: NIOThreadPool

    /// A mounter passing `options` to every tmpfs and reading mount points from `mountInfoPath` (a test seam),
    /// whose system calls run on `threadPool` (NIO's process-wide blocking pool unless a test gives its own).
    package init(
        options: String = "mode=0755",
        mountInfoPath: String = "/proc/self/mountinfo",
        threadPool: NIOThreadPool = .singleton
    ) {
        self.options = options
        self.mountInfoPath = mountInfoPath
        self.threadPool = threadPool
    }

    /// `.absent` when nothing is at `path`; `.corrupt` for a dangling link, for ENOTCONN, ESTALE or EIO from
    /// stat(2), or a mount point opendir(3) cannot open; `.mounted` for a readable mount point; otherwise
    /// `.directory`, whatever kind of entry it is. Throws for any other stat(2) error or an unreadable mountinfo.
    package func state(of path: String) async throws(MountError) -> MountState {
        try await runOnThreadPool(path: path) { [self] () throws(MountError) in try stateOnThisThread(of: path) }
    }

    /// mount(2)s a tmpfs at `path` with `nosuid`, `nodev`, `noexec` and ``options``, plus `gid=<group>` when a
    /// group is given (after ``options``, so it wins over a `gid=` there); the root's mode stays the one in
    /// ``options``.
    package func mountTmpfs(at path: String, group: UInt32?) async throws(MountError) {
        let data = Self.options(options, group: group)
        try await runOnThreadPool(path: path) { () throws(MountError) in try Self.mountOnThisThread(at: path, data: data) }
    }

    /// umount2(2)s `path` when mountinfo lists it (links resolved first); a busy mount (EBUSY) is detached lazily
    /// with MNT_DETACH, and EINVAL or ENOENT count as already unmounted.
    package func unmount(_ path: String) async throws(MountError) {
        try await runOnThreadPool(path: path) { [self] () throws(MountError) in try unmountOnThisThread(path) }
    }

    /// ``unmount(_:)`` on the calling thread, blocking it: only for clean-ups that cannot suspend (a `defer` in
    /// a test or a tool), never on an event loop.
    package func unmountOnThisThread(_ path: String) throws(MountError) {
        guard try isMountPoint(path) else { return }
        guard umount2(path, 0) == 0 else {
            let code = errno
            // A busy mount (a process has a file open) is detached lazily: it disappears from the target now and
            // is freed when the last user closes it.
            if code == EBUSY, umount2(path, Int32(MNT_DETACH)) == 0 { return }
            if code == EINVAL || code == ENOENT { return }
            throw MountError(path: path, reason: "failed to unmount: \(String(cString: strerror(code)))", errno: code)
        }
    }

    /// Runs `body` on a thread of ``threadPool`` and returns what it returns.
    ///
    /// This submits with `NIOThreadPool.submit` rather than `runIfActive` (which NIOFileSystem uses) on purpose:
    /// `runIfActive` drops a work item whose task is cancelled before a thread picks it up, and the unmount that
    /// undoes a cancelled publish's mount runs in exactly such a task; dropped, it would leave a stray mount. So
    /// every call, once made, runs; only a pool that is shut down refuses it (a ``MountError`` without `errno`).
    private func runOnThreadPool<Value: Sendable>(
        path: String,
        _ body: @escaping @Sendable () throws(MountError) -> Value
    ) async throws(MountError) -> Value {
        let result = await withCheckedContinuation { (continuation: CheckedContinuation<Result<Value, MountError>, Never>) in
            threadPool.submit { state in
                switch state {
                case .active:
                    do throws(MountError) {
                        continuation.resume(returning: .success(try body()))
                    } catch {
                        continuation.resume(returning: .failure(error))
                    }
                case .cancelled:
                    continuation.resume(
                        returning: .failure(MountError(path: path, reason: "the thread pool for mount system calls is shut down"))
                    )
                }
            }
        }
        return try result.get()
    }

    private func stateOnThisThread(of path: String) throws(MountError) -> MountState {
        var info = stat()
        if stat(path, &info) != 0 {
            let code = errno
            switch code {
            case ENOENT:
                return lstat(path, &info) == 0 ? .corrupt(reason: "dangling link") : .absent
            case ENOTCONN, ESTALE, EIO:
                return .corrupt(reason: String(cString: strerror(code)))
            default:
                throw MountError(
                    path: path,
                    reason: "failed to check if target path is mount point: \(String(cString: strerror(code)))",
                    errno: code
                )
            }
        }
        guard try isMountPoint(path) else { return .directory }
        guard let directory = opendir(path) else {
            return .corrupt(reason: String(cString: strerror(errno)))
        }
        closedir(directory)
        return .mounted
    }

    private static func mountOnThisThread(at path: String, data: String) throws(MountError) {
        let flags = UInt(MS_NOSUID) | UInt(MS_NODEV) | UInt(MS_NOEXEC)
        guard mount("tmpfs", path, "tmpfs", flags, data) == 0 else {
            let code = errno
            throw MountError(path: path, reason: String(cString: strerror(code)), errno: code)
        }
    }

    /// The mount data for one tmpfs: `options`, then `gid=<group>` when there is a group.
    package static func options(_ options: String, group: UInt32?) -> String {
        guard let group else { return options }
        return options.isEmpty ? "gid=\(group)" : options + ",gid=\(group)"
    }

    /// Whether `path` is a mount point. When its device differs from its parent's, it is one, and mountinfo is not
    /// read (every tmpfs the driver mounts is a device of its own, so this is the publish and unpublish path);
    /// otherwise, as a bind mount of the same file system keeps the device, whether mountinfo lists it.
    private func isMountPoint(_ path: String) throws(MountError) -> Bool {
        let resolved = Self.canonical(path)
        var own = stat()
        var parent = stat()
        if resolved != "/", stat(resolved, &own) == 0, stat(resolved + "/..", &parent) == 0, own.st_dev != parent.st_dev {
            return true
        }
        let text: String
        do {
            text = try PosixFileSystem.readText(at: mountInfoPath)
        } catch {
            throw MountError(path: path, reason: "failed to read \(mountInfoPath): \(error.reason)", errno: error.errno)
        }
        return MountInfo.lists(mountPoint: resolved, in: text)
    }

    /// The path with symbolic links resolved, as mountinfo lists it; the path itself when it cannot be resolved.
    private static func canonical(_ path: String) -> String {
        guard let resolved = realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}
