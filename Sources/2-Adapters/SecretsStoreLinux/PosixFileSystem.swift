#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import SecretsStoreCore

/// ``FileSystem`` over POSIX system calls.
package struct PosixFileSystem: FileSystem {
    /// The host's file system.
    package init() {}

    private static func failure(_ operation: String, _ path: String, _ code: Int32 = errno) -> FileSystemError {
        FileSystemError(operation: operation, path: path, reason: String(cString: strerror(code)), errno: code)
    }

    /// By lstat(2); `nil` also when a parent is not a directory (ENOTDIR).
    package func kind(of path: String) throws(FileSystemError) -> FileKind? {
        var info = stat()
        guard lstat(path, &info) == 0 else {
            if errno == ENOENT || errno == ENOTDIR { return nil }
            throw Self.failure("lstat", path)
        }
        switch info.st_mode & S_IFMT {
        case S_IFREG: return .regularFile
        case S_IFDIR: return .directory
        case S_IFLNK: return .symbolicLink
        default: return .other
        }
    }

    /// By mkdir(2), parents first; an existing directory succeeds, an existing non-directory fails with ENOTDIR.
    package func createDirectories(at path: String, permissions: UInt32) throws(FileSystemError) {
        if mkdir(path, mode_t(permissions)) == 0 { return }
        let code = errno
        switch code {
        case EEXIST:
            guard try kind(of: path) == .directory else { throw Self.failure("mkdir", path, ENOTDIR) }
        case ENOENT:
            guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else {
                throw Self.failure("mkdir", path, code)
            }
            try createDirectories(at: String(path[..<slash]), permissions: permissions)
            guard mkdir(path, mode_t(permissions)) == 0 || errno == EEXIST else { throw Self.failure("mkdir", path) }
        default:
            throw Self.failure("mkdir", path, code)
        }
    }

    /// By mkdtemp(3): `<prefix>` plus six random characters, mode 0700 until changed.
    package func makeUniqueDirectory(in directory: String, prefix: String) throws(FileSystemError) -> String {
        var template = Array((directory + "/" + prefix + "XXXXXX").utf8CString)
        let created = template.withUnsafeMutableBufferPointer { buffer in mkdtemp(buffer.baseAddress!) }
        guard created != nil else { throw Self.failure("mkdtemp", directory) }
        return template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    /// By chmod(2), following links.
    package func setPermissions(of path: String, to permissions: UInt32) throws(FileSystemError) {
        guard chmod(path, mode_t(permissions)) == 0 else { throw Self.failure("chmod", path) }
    }

    /// open(2) with `O_EXCL | O_NOFOLLOW`, every byte written, then fchmod(2) to `permissions & 0o7777` whatever
    /// the umask. A failed write leaves the partial file behind.
    package func createFile(at path: String, contents: [UInt8], permissions: UInt32) throws(FileSystemError) {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode_t(0o600))
        guard descriptor >= 0 else { throw Self.failure("open", path) }
        defer { close(descriptor) }
        var written = 0
        while written < contents.count {
            let result = contents.withUnsafeBytes { buffer in
                write(descriptor, buffer.baseAddress! + written, buffer.count - written)
            }
            if result < 0 {
                if errno == EINTR { continue }
                throw Self.failure("write", path)
            }
            written += result
        }
        // fchmod after writing: the mode is exact whatever the umask, and a 0000 file can still be written.
        guard fchmod(descriptor, mode_t(permissions & 0o7777)) == 0 else { throw Self.failure("fchmod", path) }
    }

    /// Reads to end of file, following links.
    package func readFile(at path: String) throws(FileSystemError) -> [UInt8] {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw Self.failure("open", path) }
        defer { close(descriptor) }
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress!, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw Self.failure("read", path)
            }
            if count == 0 { return result }
            result.append(contentsOf: buffer[0..<count])
        }
    }

    /// Reads a whole text file (used for `/proc/self/mountinfo`).
    package static func readText(at path: String) throws(FileSystemError) -> String {
        String(decoding: try PosixFileSystem().readFile(at: path), as: UTF8.self)
    }

    /// By stat(2), following links: `st_mode & 0o7777`.
    package func permissions(of path: String) throws(FileSystemError) -> UInt32 {
        var info = stat()
        guard stat(path, &info) == 0 else { throw Self.failure("stat", path) }
        return UInt32(info.st_mode & 0o7777)
    }

    /// By lchown(2) with the owner left as it is (`-1`): a link itself is changed, never what it points at.
    package func setOwnerGroup(of path: String, to group: UInt32) throws(FileSystemError) {
        guard lchown(path, uid_t.max, gid_t(group)) == 0 else { throw Self.failure("lchown", path) }
    }

    /// By stat(2), following links: `st_gid`.
    package func ownerGroup(of path: String) throws(FileSystemError) -> UInt32 {
        var info = stat()
        guard stat(path, &info) == 0 else { throw Self.failure("stat", path) }
        return UInt32(info.st_gid)
    }

    /// By readlink(2); `nil` on ENOENT or ENOTDIR; throws (EINVAL) when `path` is not a link.
    package func symbolicLinkDestination(at path: String) throws(FileSystemError) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink(path, &buffer, buffer.count - 1)
        guard count >= 0 else {
            if errno == ENOENT || errno == ENOTDIR { return nil }
            throw Self.failure("readlink", path)
        }
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// By symlink(2); fails when `path` exists.
    package func createSymbolicLink(at path: String, to destination: String) throws(FileSystemError) {
        guard symlink(destination, path) == 0 else { throw Self.failure("symlink", path) }
    }

    /// By rename(2), atomic within one file system; an error names `source`.
    package func rename(_ source: String, to destination: String) throws(FileSystemError) {
        guard Glibc.rename(source, destination) == 0 else { throw Self.failure("rename", source) }
    }

    /// Depth-first without following links; nothing at `path` is success.
    package func removeItem(at path: String) throws(FileSystemError) {
        guard let kind = try kind(of: path) else { return }
        if kind == .directory {
            for name in try contentsOfDirectory(at: path) {
                try removeItem(at: path + "/" + name)
            }
            guard rmdir(path) == 0 || errno == ENOENT else { throw Self.failure("rmdir", path) }
        } else {
            guard unlink(path) == 0 || errno == ENOENT else { throw Self.failure("unlink", path) }
        }
    }

    /// In readdir(3) order, without `.` and `..`.
    package func contentsOfDirectory(at directory: String) throws(FileSystemError) -> [String] {
        guard let stream = opendir(directory) else { throw Self.failure("opendir", directory) }
        defer { closedir(stream) }
        var names: [String] = []
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.bindMemory(to: CChar.self).baseAddress!)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }
}
