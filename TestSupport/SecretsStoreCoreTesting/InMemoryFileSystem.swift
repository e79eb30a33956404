import SecretsStoreCore
import Synchronization

/// A ``FileSystem`` held in memory, for tests that need owners and modes a non-root process cannot set on
/// real files. It behaves like the POSIX one where the writer can tell: links are followed by the calls that
/// say so (relative destinations resolve from the link's directory), new directories get `permissions` minus
/// the umask, new files exactly their mode, and changing a regular file's group clears its set-user-ID and
/// set-group-ID bits as chown(2) does. Every entry starts owned by group 0, as when root creates it.
///
/// It also records every ``setOwnerGroup(of:to:)`` call, so a test can prove which paths were (or were not)
/// given a group.
package final class InMemoryFileSystem: FileSystem {
    /// One entry, as `lstat` would describe it.
    package struct Entry: Sendable, Equatable {
        /// What kind of entry it is.
        package var kind: FileKind
        /// Permission bits (`& 0o7777`); 0o777 for a link.
        package var mode: UInt32
        /// Owning group.
        package var group: UInt32
        /// A file's bytes; empty otherwise.
        package var contents: [UInt8] = []
        /// A link's destination; empty otherwise.
        package var destination: String = ""
    }

    private struct State {
        var entries: [String: Entry] = ["/": Entry(kind: .directory, mode: 0o755, group: 0)]
        var groupChanges: [String] = []
        var uniqueCounter = 0
    }

    private let state = Mutex(State())
    private let umask: UInt32

    /// An empty tree (only `/`) whose new directories are created with `permissions & ~umask`.
    package init(umask: UInt32 = 0o022) {
        self.umask = umask
    }

    /// The entry at `path` itself (a link is not followed), or `nil`.
    package func entry(at path: String) -> Entry? {
        state.withLock { $0.entries[Self.normalized(path)] }
    }

    /// Every path given a group by ``setOwnerGroup(of:to:)``, in call order.
    package var groupChanges: [String] { state.withLock { $0.groupChanges } }

    /// Every path below `directory` (not itself), sorted.
    package func paths(under directory: String) -> [String] {
        let prefix = Self.normalized(directory) + "/"
        return state.withLock { $0.entries.keys.filter { $0.hasPrefix(prefix) }.sorted() }
    }

    // MARK: FileSystem

    /// By the entry itself; `nil` when there is none.
    package func kind(of path: String) throws(FileSystemError) -> FileKind? {
        state.withLock { $0.entries[Self.normalized(path)]?.kind }
    }

    /// Parents first; an existing directory succeeds, an existing non-directory fails.
    package func createDirectories(at path: String, permissions: UInt32) throws(FileSystemError) {
        let path = Self.normalized(path)
        try state.withLock { (state) throws(FileSystemError) in
            var current = ""
            for component in path.split(separator: "/") {
                current += "/" + component
                let resolved = try Self.resolve(current, in: state.entries)
                switch state.entries[resolved]?.kind {
                case .directory: continue
                case nil: state.entries[resolved] = Entry(kind: .directory, mode: permissions & 0o7777 & ~umask, group: 0)
                default: throw Self.failure("mkdir", current, "Not a directory")
                }
            }
        }
    }

    /// `<directory>/<prefix>` plus a counter, mode 0700.
    package func makeUniqueDirectory(in directory: String, prefix: String) throws(FileSystemError) -> String {
        try state.withLock { (state) throws(FileSystemError) in
            let parent = try Self.resolve(Self.normalized(directory), in: state.entries)
            guard state.entries[parent]?.kind == .directory else { throw Self.failure("mkdtemp", directory, "No such file or directory") }
            state.uniqueCounter += 1
            let path = parent + "/" + prefix + String(state.uniqueCounter)
            state.entries[path] = Entry(kind: .directory, mode: 0o700, group: 0)
            return Self.normalized(directory) + "/" + prefix + String(state.uniqueCounter)
        }
    }

    /// Following links.
    package func setPermissions(of path: String, to permissions: UInt32) throws(FileSystemError) {
        try state.withLock { (state) throws(FileSystemError) in
            let resolved = try Self.resolve(Self.normalized(path), in: state.entries)
            guard state.entries[resolved] != nil else { throw Self.failure("chmod", path, "No such file or directory") }
            state.entries[resolved]?.mode = permissions & 0o7777
        }
    }

    /// Fails when anything is at `path` (links included) or its parent is not a directory.
    package func createFile(at path: String, contents: [UInt8], permissions: UInt32) throws(FileSystemError) {
        try state.withLock { (state) throws(FileSystemError) in
            let path = Self.normalized(path)
            guard state.entries[path] == nil else { throw Self.failure("open", path, "File exists") }
            let parent = try Self.resolve(Self.parent(of: path), in: state.entries)
            guard state.entries[parent]?.kind == .directory else { throw Self.failure("open", path, "No such file or directory") }
            state.entries[parent + "/" + Self.baseName(of: path)] =
                Entry(kind: .regularFile, mode: permissions & 0o7777, group: 0, contents: contents)
        }
    }

    /// Following links.
    package func readFile(at path: String) throws(FileSystemError) -> [UInt8] {
        try state.withLock { (state) throws(FileSystemError) in
            let resolved = try Self.resolve(Self.normalized(path), in: state.entries)
            guard let entry = state.entries[resolved], entry.kind == .regularFile else {
                throw Self.failure("open", path, "No such file or directory")
            }
            return entry.contents
        }
    }

    /// Following links.
    package func permissions(of path: String) throws(FileSystemError) -> UInt32 {
        try followed(path, operation: "stat").mode
    }

    /// The entry itself, never a link's destination; clears 0o6000 on a regular file, as chown(2) does.
    package func setOwnerGroup(of path: String, to group: UInt32) throws(FileSystemError) {
        try state.withLock { (state) throws(FileSystemError) in
            let path = Self.normalized(path)
            let parent = try Self.resolve(Self.parent(of: path), in: state.entries)
            let key = parent + "/" + Self.baseName(of: path)
            guard var entry = state.entries[key] else { throw Self.failure("lchown", path, "No such file or directory") }
            entry.group = group
            if entry.kind == .regularFile { entry.mode &= ~UInt32(0o6000) }
            state.entries[key] = entry
            state.groupChanges.append(path)
        }
    }

    /// Following links.
    package func ownerGroup(of path: String) throws(FileSystemError) -> UInt32 {
        try followed(path, operation: "stat").group
    }

    /// `nil` when there is no entry; fails when it is not a link.
    package func symbolicLinkDestination(at path: String) throws(FileSystemError) -> String? {
        guard let entry = state.withLock({ $0.entries[Self.normalized(path)] }) else { return nil }
        guard entry.kind == .symbolicLink else { throw Self.failure("readlink", path, "Invalid argument") }
        return entry.destination
    }

    /// Fails when anything is at `path`.
    package func createSymbolicLink(at path: String, to destination: String) throws(FileSystemError) {
        try state.withLock { (state) throws(FileSystemError) in
            let path = Self.normalized(path)
            guard state.entries[path] == nil else { throw Self.failure("symlink", path, "File exists") }
            guard state.entries[Self.parent(of: path)]?.kind == .directory else {
                throw Self.failure("symlink", path, "No such file or directory")
            }
            state.entries[path] = Entry(kind: .symbolicLink, mode: 0o777, group: 0, destination: destination)
        }
    }

    /// Moves the entry (and, for a directory, everything below it) over `destination` in one step.
    package func rename(_ source: String, to destination: String) throws(FileSystemError) {
        try state.withLock { (state) throws(FileSystemError) in
            let source = Self.normalized(source)
            let destination = Self.normalized(destination)
            guard let moved = state.entries[source] else { throw Self.failure("rename", source, "No such file or directory") }
            if let existing = state.entries[destination], existing.kind == .directory,
                state.entries.keys.contains(where: { $0.hasPrefix(destination + "/") })
            {
                throw Self.failure("rename", source, "Directory not empty")
            }
            let below = state.entries.filter { $0.key.hasPrefix(source + "/") }
            for key in below.keys { state.entries[key] = nil }
            state.entries[source] = nil
            state.entries[destination] = moved
            for (key, entry) in below { state.entries[destination + key.dropFirst(source.count)] = entry }
        }
    }

    /// The entry and everything below it, links not followed; nothing there is success.
    package func removeItem(at path: String) throws(FileSystemError) {
        let path = Self.normalized(path)
        state.withLock { state in
            state.entries[path] = nil
            for key in state.entries.keys where key.hasPrefix(path + "/") { state.entries[key] = nil }
        }
    }

    /// Sorted names (the real one returns readdir order, which callers must not rely on).
    package func contentsOfDirectory(at directory: String) throws(FileSystemError) -> [String] {
        try state.withLock { (state) throws(FileSystemError) in
            let resolved = try Self.resolve(Self.normalized(directory), in: state.entries)
            guard state.entries[resolved]?.kind == .directory else { throw Self.failure("opendir", directory, "No such file or directory") }
            let prefix = resolved == "/" ? "/" : resolved + "/"
            return state.entries.keys
                .filter { $0.hasPrefix(prefix) && $0 != prefix && !$0.dropFirst(prefix.count).contains("/") }
                .map { String($0.dropFirst(prefix.count)) }
                .sorted()
        }
    }

    // MARK: Paths

    private func followed(_ path: String, operation: String) throws(FileSystemError) -> Entry {
        try state.withLock { (state) throws(FileSystemError) in
            let resolved = try Self.resolve(Self.normalized(path), in: state.entries)
            guard let entry = state.entries[resolved] else { throw Self.failure(operation, path, "No such file or directory") }
            return entry
        }
    }

    /// `path` with every link along it (the last component included) replaced by its destination; at most 40
    /// links, as Linux allows.
    private static func resolve(_ path: String, in entries: [String: Entry]) throws(FileSystemError) -> String {
        var pending = path.split(separator: "/").map(String.init)
        var resolved: [String] = []
        var hops = 0
        while !pending.isEmpty {
            let component = pending.removeFirst()
            if component == "." || component.isEmpty { continue }
            if component == ".." {
                _ = resolved.popLast()
                continue
            }
            let candidate = "/" + (resolved + [component]).joined(separator: "/")
            if let entry = entries[candidate], entry.kind == .symbolicLink {
                hops += 1
                guard hops <= 40 else { throw failure("stat", path, "Too many levels of symbolic links") }
                let destination = entry.destination.split(separator: "/").map(String.init)
                if entry.destination.hasPrefix("/") { resolved = [] }
                pending = destination + pending
            } else {
                resolved.append(component)
            }
        }
        return "/" + resolved.joined(separator: "/")
    }

    private static func normalized(_ path: String) -> String {
        let trimmed = path.split(separator: "/").joined(separator: "/")
        return "/" + trimmed
    }

    private static func parent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return "/" }
        return String(path[..<slash])
    }

    private static func baseName(of path: String) -> String {
        path.lastIndex(of: "/").map { String(path[path.index(after: $0)...]) } ?? path
    }

    private static func failure(_ operation: String, _ path: String, _ reason: String) -> FileSystemError {
        FileSystemError(operation: operation, path: path, reason: reason)
    }
}
