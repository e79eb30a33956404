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
/// - `written` runs with the status's UID once the write landed (the caller keeps it in the volume record);
/// - after ``shutdown(drainingFor:)`` has returned, no write is running or will start: it ends every pending
///   write (landed within the bound, else cancelled) before the Kubernetes client it uses may be shut down. The
///   driver calls it from a service of its group, so the writes end with the group.
package final class PodStatusWriter: Sendable {
    private struct Pending {
        let generation: UInt64
        let task: Task<Void, Never>
    }
    private struct State {
        var nextGeneration: UInt64 = 0
        var pending: [String: Pending] = [:]
        /// Writes cancelled by ``cancel(_:)`` whose task has not ended yet, by generation.
        var cancelled: [UInt64: Task<Void, Never>] = [:]
        var closed = false
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
        let refused = state.withLock { state in
            guard !state.closed else { return true }
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
            return false
        }
        if refused {
            logger.warning(
                "pod status not written: the driver is shutting down",
                metadata: ["k8s.spcps": "\(status.namespace)/\(status.name)"]
            )
        }
    }

    /// Stops retrying the pending write for `target`, if there is one (a request in flight is cancelled too).
    package func cancel(_ target: String) {
        state.withLock { state -> Task<Void, Never>? in
            guard let pending = state.pending.removeValue(forKey: target) else { return nil }
            state.cancelled[pending.generation] = pending.task
            return pending.task
        }?.cancel()
    }

    /// Waits until no write is pending or ending: every write submitted so far landed, or was cancelled and its
    /// task has ended (so none of them writes afterwards).
    package func settle() async {
        while let task = state.withLock({ $0.pending.values.first?.task ?? $0.cancelled.values.first }) {
            await task.value
        }
    }

    /// Refuses new writes, gives the pending ones up to `bound` to land, cancels those still pending (a request
    /// in flight is cancelled too) and returns once every write has ended. Cancelling the calling task ends the
    /// wait as the bound would.
    package func shutdown(drainingFor bound: Duration) async {
        state.withLock { $0.closed = true }
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await self.settle()
                return true
            }
            group.addTask {
                try? await Task.sleep(for: bound)
                return false
            }
            if await group.next() == false {
                let tasks = self.state.withLock { $0.pending.values.map(\.task) }
                for task in tasks { task.cancel() }
            }
            group.cancelAll()
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
                    metadata: ["k8s.spcps": "\(status.namespace)/\(status.name)", "error": "\(error)", "retry.in": "\(delay)"].addingCause(of: error)
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
            state.cancelled[generation] = nil
        }
    }
}
