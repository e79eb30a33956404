import SecretsStoreCore
import Synchronization

/// A ``Mounter`` that pretends: it keeps the set of "mounted" directories in memory, empties a directory on
/// unmount as a real tmpfs would vanish, records every call, and fails on demand. For tests without root.
///
/// It looks at the directories through a ``FileSystem`` (the one the code under test writes with), or, when
/// made with ``init()``, at the host's directory tree.
package final class RecordingMounter: Mounter {
    /// One call the mounter received.
    package enum Call: Sendable, Equatable {
        /// `mountTmpfs(at:group:)` with this path (recorded also when it failed; ``mountGroup(of:)`` has the group).
        case mount(String)
        /// `unmount(_:)` with this path.
        case unmount(String)
    }

    private struct State {
        var mounted: Set<String> = []
        var corrupt: Set<String> = []
        var calls: [Call] = []
        var groups: [String: UInt32] = [:]
        var failMount = false
    }

    private let state = Mutex(State())
    private let isDirectory: @Sendable (String) -> Bool
    private let removeContents: @Sendable (String) -> Void

    /// A mounter over `fileSystem`: a path is a directory when it says so, and unmounting empties the
    /// directory through it.
    package init(fileSystem: any FileSystem) {
        isDirectory = { (try? fileSystem.kind(of: $0)) == .directory }
        removeContents = { path in
            guard let names = try? fileSystem.contentsOfDirectory(at: path) else { return }
            for name in names { try? fileSystem.removeItem(at: path + "/" + name) }
        }
    }

    /// A mounter over the host's real directory tree (for tests that write real files in a temporary directory).
    package init() {
        isDirectory = { HostDirectories.kind(of: $0) == .directory }
        removeContents = { HostDirectories.removeContents(of: $0) }
    }

    /// Every call so far, in order.
    package var calls: [Call] { state.withLock { $0.calls } }
    /// The paths mounted now.
    package var mounted: Set<String> { state.withLock { $0.mounted } }
    /// The group the tmpfs at `path` was mounted with (``mountTmpfs(at:group:)``), while it is mounted; `nil`
    /// for none or when nothing is mounted there. The directory's real owner is not changed.
    package func mountGroup(of path: String) -> UInt32? { state.withLock { $0.groups[path] } }

    /// Makes the next mounts fail with EPERM-like errors until reset.
    package func failMounts(_ fail: Bool) { state.withLock { $0.failMount = fail } }
    /// Marks `path` as a mount whose contents cannot be read.
    package func markCorrupt(_ path: String) {
        state.withLock {
            $0.mounted.insert(path)
            $0.corrupt.insert(path)
        }
    }

    /// `.corrupt` for a path marked so, `.absent` when there is no directory, else `.mounted` or `.directory`.
    package func state(of path: String) throws(MountError) -> MountState {
        let (mounted, corrupt) = state.withLock { ($0.mounted.contains(path), $0.corrupt.contains(path)) }
        if corrupt { return .corrupt(reason: "Transport endpoint is not connected") }
        guard isDirectory(path) else { return .absent }
        return mounted ? .mounted : .directory
    }

    /// Records the call and marks `path` mounted (remembering `group`), or throws "Operation not permitted"
    /// while mounts fail.
    package func mountTmpfs(at path: String, group: UInt32?) throws(MountError) {
        let fail = state.withLock { state in
            state.calls.append(.mount(path))
            if !state.failMount {
                state.mounted.insert(path)
                state.groups[path] = group
            }
            return state.failMount
        }
        if fail { throw MountError(path: path, reason: "Operation not permitted") }
    }

    /// Records the call and, when `path` was mounted, forgets it and empties the directory.
    package func unmount(_ path: String) throws(MountError) {
        let wasMounted = state.withLock { state in
            state.calls.append(.unmount(path))
            state.corrupt.remove(path)
            state.groups[path] = nil
            return state.mounted.remove(path) != nil
        }
        if wasMounted { removeContents(path) }
    }
}
