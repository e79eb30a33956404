import Synchronization

/// At most one operation per target path at a time: a second caller is told to come back (ABORTED), as the
/// CSI spec asks for concurrent calls on the same volume.
package final class TargetLocks: Sendable {
    private let held = Mutex<Set<String>>([])

    /// No target locked.
    package init() {}

    /// Takes the lock for `target`; returns `false` when another operation holds it.
    package func tryLock(_ target: String) -> Bool {
        held.withLock { $0.insert(target).inserted }
    }

    /// Releases the lock for `target`.
    package func unlock(_ target: String) {
        _ = held.withLock { $0.remove(target) }
    }
}
