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

/// Mounts and unmounts the tmpfs that holds a volume's files.
///
/// Implementations are safe to call concurrently for different paths; the caller serialises calls per path.
package protocol Mounter: Sendable {
    /// Reports what is at `path`.
    func state(of path: String) throws(PublishError) -> MountState
    /// Mounts a fresh tmpfs at `path`, which must be an existing directory.
    func mountTmpfs(at path: String) throws(PublishError)
    /// Unmounts whatever is mounted at `path`; succeeds when nothing is.
    func unmount(_ path: String) throws(PublishError)
}
