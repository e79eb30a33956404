/// What is at a target path, as far as mounting is concerned.
package enum MountState: Sendable, Equatable {
    /// Nothing exists at the path.
    case absent
    /// A directory that is not a mount point.
    case directory
    /// A working mount point.
    case mounted
    /// A mount point whose contents cannot be read (a stale or corrupt mount).
    case corrupt(reason: String)
}

/// Why inspecting, mounting or unmounting a target failed: the path, the system's reason and, when a system
/// call failed, its `errno`. The publish steps translate it into ``PublishError/mountFailed(targetPath:reason:)``.
package struct MountError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The target path the operation was for.
    package var path: String
    /// What went wrong, for `kubectl describe pod` (e.g. `failed to unmount: Device or resource busy`).
    package var reason: String
    /// The `errno` value, when the failure came from a system call.
    package var errno: Int32?

    /// An error; pass `errno` when a system call failed.
    package init(path: String, reason: String, errno: Int32? = nil) {
        self.path = path
        self.reason = reason
        self.errno = errno
    }

    /// `<path>: <reason>`.
    package var description: String { "\(path): \(reason)" }
}

/// Mounts and unmounts the tmpfs that holds a volume's files.
///
/// Implementations are safe to call concurrently for different paths; the caller serialises calls per path.
/// Every method throws ``MountError``. The methods are `async` because the real ones are blocking system calls
/// (stat(2), mount(2), umount2(2), a read of mountinfo) that must not run on the thread that calls them: the
/// driver's global executor is its event loops. Each call runs to completion once made, also when the calling
/// task is cancelled, so that an unmount undoing a cancelled publish's mount is never skipped.
package protocol Mounter: Sendable {
    /// Reports what is at `path`.
    func state(of path: String) async throws(MountError) -> MountState
    /// Mounts a fresh tmpfs at `path`, which must be an existing directory. With a `group`, the tmpfs root is
    /// owned by that group (the pod's fsGroup); with `nil`, by root's, as without fsGroup support.
    func mountTmpfs(at path: String, group: UInt32?) async throws(MountError)
    /// Unmounts whatever is mounted at `path`; succeeds when nothing is.
    func unmount(_ path: String) async throws(MountError)
}

extension Mounter {
    /// Mounts a fresh tmpfs at `path` owned by root's group: ``mountTmpfs(at:group:)`` with no group.
    package func mountTmpfs(at path: String) async throws(MountError) {
        try await mountTmpfs(at: path, group: nil)
    }
}
