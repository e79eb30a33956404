import Logging
import Synchronization

/// Writes volumes' SecretProviderClassPodStatus objects after kubelet has its answer.
///
/// The status is not needed to serve the volume: the files are already written, and restart recovery
/// tolerates a missing status (the volume is then only unknown to rotation until its next publish). A write is
/// idempotent (an apply of the whole object), so it can be retried until it lands.
///
/// Promises:
/// - at most one write per target is in flight; a newer status for a target replaces a pending one and is
///   written after the older write has ended, so the newest status always wins;
/// - a failed write is retried with back-off (`firstRetry`, doubling, at most `maxRetry`) until it lands or
///   the target's write is cancelled (``cancel(_:)``, on unpublish);
/// - `written` runs with the status's UID once the write landed (the caller keeps it in the volume record).
package final class PodStatusWriter: Sendable {
    private struct Pending {
        let generation: UInt64
        let task: Task<Void, Never>
    }
    private struct State {
        var nextGeneration: UInt64 = 0
        var pending: [String: Pending] = [:]
    }

    private let kubernetes: any KubernetesClient
    private let firstRetry: Duration
    private let maxRetry: Duration
    private let state = Mutex(State())

    package init(kubernetes: any KubernetesClient, firstRetry: Duration = .milliseconds(200), maxRetry: Duration = .seconds(30)) {
        self.kubernetes = kubernetes
        self.firstRetry = firstRetry
        self.maxRetry = maxRetry
    }

    /// Starts writing `status` for the volume at `target`; returns at once.
    package func submit(
        _ status: SecretProviderClassPodStatus,
        target: String,
        logger: Logger,
        written: @escaping @Sendable (_ uid: String) -> Void
    ) {
        state.withLock { state in
            let previous = state.pending[target]?.task
            previous?.cancel()
            state.nextGeneration += 1
            let generation = state.nextGeneration
            let task = Task {
                await previous?.value
                await self.write(status, logger: logger, written: written)
                self.finished(target, generation: generation)
            }
            state.pending[target] = Pending(generation: generation, task: task)
        }
    }

    /// Stops retrying the pending write for `target`, if there is one (a request in flight is cancelled too).
    package func cancel(_ target: String) {
        state.withLock { $0.pending.removeValue(forKey: target) }?.task.cancel()
    }

    /// Waits until no write is pending: every write submitted so far landed or was cancelled.
    package func settle() async {
        while let task = state.withLock({ $0.pending.values.first?.task }) {
            await task.value
        }
    }

    /// Targets whose status write has not landed yet.
    package var pendingTargets: [String] { state.withLock { Array($0.pending.keys) } }

    private func write(_ status: SecretProviderClassPodStatus, logger: Logger, written: @Sendable (String) -> Void) async {
        var delay = firstRetry
        var attempt = 1
        while !Task.isCancelled {
            do {
                let uid = try await kubernetes.applyPodStatus(status, logger: logger)
                if attempt > 1 {
                    logger.info("pod status written after retries", metadata: ["k8s.spcps": "\(status.namespace)/\(status.name)", "attempts": "\(attempt)"])
                }
                written(uid)
                return
            } catch {
                guard !Task.isCancelled else { return }
                logger.warning(
                    "failed to write pod status; retrying",
                    metadata: ["k8s.spcps": "\(status.namespace)/\(status.name)", "error": "\(error)", "retry.in": "\(delay)"]
                )
            }
            do { try await Task.sleep(for: delay) } catch { return }
            delay = min(delay * 2, maxRetry)
            attempt += 1
        }
    }

    private func finished(_ target: String, generation: UInt64) {
        state.withLock { state in
            if state.pending[target]?.generation == generation { state.pending[target] = nil }
        }
    }
}
