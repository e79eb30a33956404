import SecretsStoreCore

#if canImport(Glibc)
import Glibc
#endif

/// Runs `body` with a fresh, empty directory under /tmp (short, so Unix socket paths below it fit in 107 bytes)
/// and removes it with everything in it afterwards, also when `body` throws.
package func withTemporaryDirectory<T>(
    _ body: (String) async throws -> T
) async throws -> T {
    let path = try HostDirectories.makeUnique(prefix: "ssc-")
    defer { HostDirectories.remove(path) }
    return try await body(path)
}

/// Whether the tests run as root (real tmpfs mounts are possible).
package var runningAsRoot: Bool { geteuid() == 0 }

/// The host's directory tree, through the few system calls the test support needs (the core has no file
/// system of its own; `SecretsStoreLinux` has the production one, which this target must not depend on).
enum HostDirectories {
    /// The directory could not be created.
    struct CreationError: Error, CustomStringConvertible {
        /// The template that failed and the system's reason.
        var description: String
    }

    /// Creates `/tmp/<prefix><random>` and returns its path.
    static func makeUnique(prefix: String) throws(CreationError) -> String {
        var template = Array(("/tmp/" + prefix + "XXXXXX").utf8CString)
        let created = template.withUnsafeMutableBufferPointer { buffer in mkdtemp(buffer.baseAddress!) }
        guard created != nil else {
            throw CreationError(description: "mkdtemp /tmp/\(prefix)XXXXXX: \(String(cString: strerror(errno)))")
        }
        return template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    /// What `lstat` says is at `path` (links not followed), or `nil` when nothing is.
    static func kind(of path: String) -> FileKind? {
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        switch info.st_mode & S_IFMT {
        case S_IFREG: return .regularFile
        case S_IFDIR: return .directory
        case S_IFLNK: return .symbolicLink
        default: return .other
        }
    }

    /// The names in `directory` without `.` and `..`; empty when it cannot be read.
    static func names(in directory: String) -> [String] {
        guard let stream = opendir(directory) else { return [] }
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

    /// Removes `path` and, for a directory, everything below it (best effort; links are removed, not followed).
    static func remove(_ path: String) {
        if kind(of: path) == .directory {
            removeContents(of: path)
            rmdir(path)
        } else {
            unlink(path)
        }
    }

    /// Removes everything inside the directory `path`, keeping the directory.
    static func removeContents(of path: String) {
        for name in names(in: path) { remove(path + "/" + name) }
    }
}
