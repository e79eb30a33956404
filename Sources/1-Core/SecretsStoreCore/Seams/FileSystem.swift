/// The kind of a directory entry, as `lstat` sees it (links are not followed).
package enum FileKind: Sendable, Equatable {
    /// A regular file.
    case regularFile
    /// A directory.
    case directory
    /// A symbolic link, whatever it points at (or whether its target exists).
    case symbolicLink
    /// Anything else: a socket, FIFO or device node.
    case other
}

/// An error from a file-system operation: the operation, the path, and the system's reason.
package struct FileSystemError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The operation that failed, e.g. the system call's name (`mkdir`, `open`, `readlink`…).
    package var operation: String
    /// The path the operation was applied to.
    package var path: String
    /// Why it failed, e.g. `strerror(errno)`.
    package var reason: String
    /// The `errno` value, when the failure came from a system call.
    package var errno: Int32?

    /// An error; pass `errno` when a system call failed.
    package init(operation: String, path: String, reason: String, errno: Int32? = nil) {
        self.operation = operation
        self.path = path
        self.reason = reason
        self.errno = errno
    }

    /// `<operation> <path>: <reason>`, e.g. `mkdir /target/dir: Permission denied`.
    package var description: String { "\(operation) \(path): \(reason)" }
}

/// The file operations the atomic writer and the unpublish path need, modelled on NIOFS's
/// `FileSystemProtocol` but synchronous: every call is one or two system calls on a tmpfs.
///
/// Paths are absolute. Every method throws ``FileSystemError``. Nothing follows a symbolic link unless it
/// says so.
package protocol FileSystem: Sendable {
    /// The kind of the entry at `path`, or `nil` when there is none.
    func kind(of path: String) throws(FileSystemError) -> FileKind?
    /// Creates `path` and any missing parents with `permissions` (before the umask).
    func createDirectories(at path: String, permissions: UInt32) throws(FileSystemError)
    /// Creates a new, uniquely named directory `<directory>/<prefix><random>` and returns its path.
    func makeUniqueDirectory(in directory: String, prefix: String) throws(FileSystemError) -> String
    /// Sets the permission bits of `path` exactly.
    func setPermissions(of path: String, to permissions: UInt32) throws(FileSystemError)
    /// Creates a new file with `contents` and exactly `permissions`; fails if it exists.
    func createFile(at path: String, contents: [UInt8], permissions: UInt32) throws(FileSystemError)
    /// The bytes of the regular file at `path` (following links).
    func readFile(at path: String) throws(FileSystemError) -> [UInt8]
    /// The permission bits of `path` (following links).
    func permissions(of path: String) throws(FileSystemError) -> UInt32
    /// Makes `group` the owning group of the entry at `path`, itself and not what it points at when it is a
    /// link; the owner stays. Like chown(2), this clears the set-user-ID and set-group-ID bits of a regular
    /// file: set its permissions afterwards when they hold either.
    func setOwnerGroup(of path: String, to group: UInt32) throws(FileSystemError)
    /// The owning group of `path` (following links).
    func ownerGroup(of path: String) throws(FileSystemError) -> UInt32
    /// The target of the symbolic link at `path`, or `nil` when there is no entry.
    func symbolicLinkDestination(at path: String) throws(FileSystemError) -> String?
    /// Creates a symbolic link at `path` pointing to `destination`.
    func createSymbolicLink(at path: String, to destination: String) throws(FileSystemError)
    /// Atomically renames `source` to `destination`, replacing it.
    func rename(_ source: String, to destination: String) throws(FileSystemError)
    /// Removes the entry at `path` (a directory with everything below it); succeeds when there is none.
    func removeItem(at path: String) throws(FileSystemError)
    /// The names in `directory` (without `.` and `..`).
    func contentsOfDirectory(at directory: String) throws(FileSystemError) -> [String]
}
