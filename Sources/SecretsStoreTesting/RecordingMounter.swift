import SecretsStoreCore
import SecretsStoreLinux
import Synchronization

/// A ``Mounter`` that pretends: it keeps the set of "mounted" directories in memory, empties a directory on
/// unmount as a real tmpfs would vanish, records every call, and fails on demand. For tests without root.
package final class RecordingMounter: Mounter {
    package enum Call: Sendable, Equatable {
        case mount(String)
        case unmount(String)
    }

    private struct State {
        var mounted: Set<String> = []
        var corrupt: Set<String> = []
        var calls: [Call] = []
        var failMount = false
    }

    private let state = Mutex(State())
    private let fileSystem = PosixFileSystem()

    package init() {}

    package var calls: [Call] { state.withLock { $0.calls } }
    package var mounted: Set<String> { state.withLock { $0.mounted } }

    /// Makes the next mounts fail with EPERM-like errors until reset.
    package func failMounts(_ fail: Bool) { state.withLock { $0.failMount = fail } }
    /// Marks `path` as a mount whose contents cannot be read.
    package func markCorrupt(_ path: String) {
        state.withLock {
            $0.mounted.insert(path)
            $0.corrupt.insert(path)
        }
    }

    package func state(of path: String) throws(PublishError) -> MountState {
        let (mounted, corrupt) = state.withLock { ($0.mounted.contains(path), $0.corrupt.contains(path)) }
        if corrupt { return .corrupt(reason: "Transport endpoint is not connected") }
        guard (try? fileSystem.kind(of: path)) == .directory else { return .absent }
        return mounted ? .mounted : .directory
    }

    package func mountTmpfs(at path: String) throws(PublishError) {
        let fail = state.withLock { state in
            state.calls.append(.mount(path))
            if !state.failMount { state.mounted.insert(path) }
            return state.failMount
        }
        if fail { throw .mountFailed(targetPath: path, reason: "Operation not permitted") }
    }

    package func unmount(_ path: String) throws(PublishError) {
        let wasMounted = state.withLock { state in
            state.calls.append(.unmount(path))
            state.corrupt.remove(path)
            return state.mounted.remove(path) != nil
        }
        if wasMounted, let names = try? fileSystem.contentsOfDirectory(at: path) {
            for name in names { try? fileSystem.removeItem(at: path + "/" + name) }
        }
    }
}
