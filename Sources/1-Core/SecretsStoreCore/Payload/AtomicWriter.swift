/// Writes a volume's files so that a reader sees either the whole old set or the whole new set, never a mix:
/// the layout kubelet uses for Secret and ConfigMap volumes, which existing consumers watch.
///
/// Layout inside the target directory:
/// - `..YYYY_MM_DD_HH_MM_SS.<random>/` holds the real files (directory mode 0755, files their exact mode);
/// - `..data` is a symbolic link to that directory;
/// - each top-level name a user sees is a relative link `name -> ..data/name` (for `dir/file` only `dir`).
///
/// With a group (the pod's fsGroup), the timestamped directory, every directory below it and every file are
/// owned by that group, directories are 0755 (group read and search) and every file's mode gains group read
/// (`0o040`); the links stay root's, which decides nothing since links are not permission-checked. Without
/// one, owners and modes are exactly as above.
///
/// A write:
/// 1. reads where `..data` points now;
/// 2. returns without touching anything when every file's bytes, mode (and, with a group, owning group) are
///    unchanged and none is stale;
/// 3. removes any top-level entry that is not a link and collides with a new name (left by a provider that
///    wrote files itself);
/// 4. writes every file into a new timestamped directory;
/// 5. creates the missing top-level links;
/// 6. points `..data_tmp` at the new directory and renames it over `..data` (the atomic step);
/// 7. removes top-level links no longer in the payload, then the old timestamped directory.
///
/// Paths must have passed ``PayloadPath/validate(_:)``. Not safe for concurrent writes to one target: callers
/// serialise per target (``TargetLocks``).
package struct AtomicWriter: Sendable {
    /// `..data`: the link whose atomic replacement switches readers to the new file set.
    package static let dataLinkName = "..data"
    /// `..data_tmp`: the new link, made beside `..data` and renamed over it.
    package static let temporaryDataLinkName = "..data_tmp"

    private let fileSystem: any FileSystem
    private let now: @Sendable () -> Int64

    /// - Parameters:
    ///   - fileSystem: where to write.
    ///   - now: seconds since the Unix epoch, for the timestamped directory name.
    package init(fileSystem: any FileSystem, now: @escaping @Sendable () -> Int64) {
        self.fileSystem = fileSystem
        self.now = now
    }

    /// Whether a write changed what readers see.
    package enum Outcome: Sendable, Equatable {
        /// Every file already had these bytes and mode and none was stale: nothing was touched.
        case unchanged
        /// A new timestamped directory was written and `..data` now points at it.
        case written
    }

    /// The mode a file is written with: `mode & 0o7777`, plus group read when the volume has a group.
    package static func effectiveMode(_ mode: UInt32, group: UInt32?) -> UInt32 {
        group == nil ? mode & 0o7777 : (mode & 0o7777) | 0o040
    }

    /// Makes the content under `target` exactly `files`; with a `group`, owned by it (see the type's notes).
    @discardableResult
    package func write(_ files: [SecretFile], to target: String, group: UInt32? = nil) throws(FileSystemError) -> Outcome {
        let dataLink = target + "/" + Self.dataLinkName
        let oldDirectoryName = try fileSystem.symbolicLinkDestination(at: dataLink)
        let oldFiles = try oldDirectoryName.map { name throws(FileSystemError) in
            try listFiles(under: target + "/" + name)
        } ?? []
        let newPaths = Set(files.map(\.path))
        let newTopLevel = Set(files.map { PayloadPath.topLevelName(of: $0.path) })
        let oldTopLevel = Set(oldFiles.map { PayloadPath.topLevelName(of: $0) })

        if let oldDirectoryName, Set(oldFiles) == newPaths,
            try contentMatches(files, in: target + "/" + oldDirectoryName, group: group)
        {
            return .unchanged
        }

        for name in newTopLevel.subtracting(oldTopLevel) {
            if let kind = try fileSystem.kind(of: target + "/" + name), kind != .symbolicLink {
                try fileSystem.removeItem(at: target + "/" + name)
            }
        }

        let prefix = "..\(UTCTimestamp.format(epochSeconds: now()))."
        let newDirectory = try fileSystem.makeUniqueDirectory(in: target, prefix: prefix)
        do {
            try fileSystem.setPermissions(of: newDirectory, to: 0o755)
            if let group {
                try fileSystem.setOwnerGroup(of: newDirectory, to: group)
            }
            var groupedDirectories: Set<String> = []
            for file in files {
                let path = newDirectory + "/" + file.path
                if let slash = path.lastIndex(of: "/"), path[..<slash] != newDirectory {
                    try fileSystem.createDirectories(at: String(path[..<slash]), permissions: 0o755)
                    if let group {
                        try ownDirectories(of: file.path, in: newDirectory, group: group, done: &groupedDirectories)
                    }
                }
                guard let group else {
                    try fileSystem.createFile(at: path, contents: file.contents, permissions: file.mode)
                    continue
                }
                let mode = Self.effectiveMode(file.mode, group: group)
                try fileSystem.createFile(at: path, contents: file.contents, permissions: mode)
                try fileSystem.setOwnerGroup(of: path, to: group)
                // chown(2) clears the set-user-ID and set-group-ID bits: put them back.
                if mode & 0o6000 != 0 {
                    try fileSystem.setPermissions(of: path, to: mode)
                }
            }
            for name in newTopLevel where try fileSystem.kind(of: target + "/" + name) == nil {
                try fileSystem.createSymbolicLink(at: target + "/" + name, to: Self.dataLinkName + "/" + name)
            }
            let temporaryLink = target + "/" + Self.temporaryDataLinkName
            try fileSystem.removeItem(at: temporaryLink)
            try fileSystem.createSymbolicLink(at: temporaryLink, to: baseName(of: newDirectory))
            try fileSystem.rename(temporaryLink, to: dataLink)
        } catch {
            try? fileSystem.removeItem(at: newDirectory)
            throw error
        }

        for name in oldTopLevel.subtracting(newTopLevel) {
            try fileSystem.removeItem(at: target + "/" + name)
        }
        if let oldDirectoryName {
            try fileSystem.removeItem(at: target + "/" + oldDirectoryName)
        }
        return .written
    }

    /// The user-visible files under `target`, as paths relative to it, read through `..data`.
    package func currentFiles(in target: String) throws(FileSystemError) -> [String] {
        guard let name = try fileSystem.symbolicLinkDestination(at: target + "/" + Self.dataLinkName) else {
            return []
        }
        return try listFiles(under: target + "/" + name).sorted()
    }

    /// Gives `group` and mode 0755 to each directory between `root` and the file at `relativePath` that is
    /// not in `done` yet (the writer just created them), and adds them to `done`.
    private func ownDirectories(
        of relativePath: String,
        in root: String,
        group: UInt32,
        done: inout Set<String>
    ) throws(FileSystemError) {
        var directory = root
        for component in relativePath.split(separator: "/").dropLast() {
            directory += "/" + component
            guard done.insert(directory).inserted else { continue }
            try fileSystem.setPermissions(of: directory, to: 0o755)
            try fileSystem.setOwnerGroup(of: directory, to: group)
        }
    }

    private func contentMatches(_ files: [SecretFile], in directory: String, group: UInt32?) throws(FileSystemError) -> Bool {
        for file in files {
            let path = directory + "/" + file.path
            guard try fileSystem.kind(of: path) == .regularFile,
                try fileSystem.permissions(of: path) == Self.effectiveMode(file.mode, group: group)
            else { return false }
            if let group, try fileSystem.ownerGroup(of: path) != group { return false }
            guard try fileSystem.readFile(at: path) == file.contents else { return false }
        }
        return true
    }

    /// Relative paths of every non-directory entry below `directory`.
    private func listFiles(under directory: String, prefix: String = "") throws(FileSystemError) -> [String] {
        var result: [String] = []
        for name in try fileSystem.contentsOfDirectory(at: directory) {
            let relative = prefix.isEmpty ? name : prefix + "/" + name
            if try fileSystem.kind(of: directory + "/" + name) == .directory {
                result += try listFiles(under: directory + "/" + name, prefix: relative)
            } else {
                result.append(relative)
            }
        }
        return result
    }

    private func baseName(of path: String) -> String {
        path.lastIndex(of: "/").map { String(path[path.index(after: $0)...]) } ?? path
    }
}
