import Logging
import Synchronization

/// Keeps an in-memory copy of one Kubernetes collection in step with the API server, and tells a handler
/// what changed.
///
/// Promises:
/// - it lists, then watches from the list's resourceVersion; a watch the server ends is resumed from the
///   last resourceVersion seen (an object's or a bookmark's); a `410 Gone` (HTTP or `ERROR` event) lists
///   again; any other failure waits (1 s doubling to 30 s, plus up to 10 % jitter) and lists again;
/// - after a relist, the handler sees an ``Change/upserted(old:new:)`` for every listed object that is new or
///   has another resourceVersion, and a ``Change/deleted(_:)`` for every cached object the list lacks, so
///   no change is lost across a reconnect;
/// - the handler is called one change at a time, in the order the server sent them; ``object(forKey:)``
///   already answers with the new state when it is called;
/// - ``run(logger:)`` returns when its task is cancelled; it never throws.
package final class Reflector<Object: Sendable>: Sendable {
    /// What changed in the collection.
    package enum Change: Sendable {
        /// An object appeared, or changed (`old` is its previous state, when it was cached).
        case upserted(old: Object?, new: Object)
        /// An object is gone; its last state.
        case deleted(Object)
    }

    /// How to read the collection.
    package struct Source: Sendable {
        /// Lists the collection.
        package var list: @Sendable (Logger) async throws(KubernetesClientError) -> Listed<Object>
        /// Watches the collection from a resourceVersion.
        package var watch: @Sendable (_ resourceVersion: String, Logger) -> WatchStream<Object>
        /// The cache key of an object (`namespace/name`).
        package var key: @Sendable (Object) -> String
        /// The object's `metadata.resourceVersion`.
        package var resourceVersion: @Sendable (Object) -> String?

        /// A source.
        package init(
            list: @escaping @Sendable (Logger) async throws(KubernetesClientError) -> Listed<Object>,
            watch: @escaping @Sendable (_ resourceVersion: String, Logger) -> WatchStream<Object>,
            key: @escaping @Sendable (Object) -> String,
            resourceVersion: @escaping @Sendable (Object) -> String?
        ) {
            self.list = list
            self.watch = watch
            self.key = key
            self.resourceVersion = resourceVersion
        }
    }

    private struct State {
        var objects: [String: Object] = [:]
        var synced = false
        var syncWaiters: [CheckedContinuation<Void, Never>] = []
    }

    private let source: Source
    private let name: String
    private let onChange: @Sendable (Change) async -> Void
    private let sleep: @Sendable (Duration) async throws -> Void
    private let state = Mutex(State())

    /// - Parameters:
    ///   - name: what it reflects, for log lines (`secretproviderclasses`).
    ///   - sleep: how to wait before a relist after a failure (tests pass a short one).
    ///   - onChange: called for every change, one at a time.
    package init(
        name: String,
        source: Source,
        sleep: @escaping @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) },
        onChange: @escaping @Sendable (Change) async -> Void = { _ in }
    ) {
        self.name = name
        self.source = source
        self.sleep = sleep
        self.onChange = onChange
    }

    /// The cached object with `key` (`namespace/name`), if any.
    package func object(forKey key: String) -> Object? {
        state.withLock { $0.objects[key] }
    }

    /// Every cached object.
    package var objects: [Object] {
        state.withLock { Array($0.objects.values) }
    }

    /// Whether the first list has been applied.
    package var hasSynced: Bool { state.withLock { $0.synced } }

    /// Returns once the first list has been applied (at once if it has), or when the task is cancelled.
    package func waitUntilSynced() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let done = state.withLock { state -> Bool in
                    if state.synced || Task.isCancelled { return true }
                    state.syncWaiters.append(continuation)
                    return false
                }
                if done { continuation.resume() }
            }
        } onCancel: {
            let waiters = state.withLock { state in
                defer { state.syncWaiters = [] }
                return state.syncWaiters
            }
            for waiter in waiters { waiter.resume() }
        }
    }

    /// Lists and watches until cancelled.
    package func run(logger: Logger) async {
        var failures = 0
        while !Task.isCancelled {
            do {
                let listed = try await source.list(logger)
                await apply(listed)
                failures = 0
                var resourceVersion = listed.resourceVersion
                // Watch, resuming after a clean end, until the resourceVersion expires or the watch fails.
                while !Task.isCancelled {
                    for try await event in source.watch(resourceVersion, logger) {
                        if let next = await handle(event) { resourceVersion = next }
                    }
                }
            } catch {
                if Task.isCancelled { return }
                if case .rejected(status: 410, _)? = error as? KubernetesClientError {
                    logger.debug("watch expired; listing again", metadata: ["k8s.resource": "\(name)"])
                    continue
                }
                failures += 1
                let delay = Self.backoff(afterFailures: failures)
                logger.warning(
                    "list or watch failed; retrying",
                    metadata: ["k8s.resource": "\(name)", "error": "\(error)", "retry.after": "\(delay)"].addingCause(of: error)
                )
                do { try await sleep(delay) } catch { return }
            }
        }
    }

    /// 1 s doubling to 30 s, plus up to 10 % jitter.
    package static func backoff(afterFailures failures: Int) -> Duration {
        let base = Duration.seconds(1) * (1 << min(max(failures - 1, 0), 5))
        let capped = min(base, .seconds(30))
        let jitter = Int64.random(in: 0...max(1, capped.components.seconds * 100))
        return capped + .milliseconds(jitter)
    }

    /// Applies a full list: upserts what changed, deletes what is gone, marks the cache synced.
    private func apply(_ listed: Listed<Object>) async {
        let (changes, waiters) = state.withLock { state -> ([Change], [CheckedContinuation<Void, Never>]) in
            var changes: [Change] = []
            var seen = Set<String>()
            for object in listed.items {
                let key = source.key(object)
                seen.insert(key)
                let old = state.objects[key]
                if let old, source.resourceVersion(old) == source.resourceVersion(object), source.resourceVersion(object) != nil {
                    continue
                }
                state.objects[key] = object
                changes.append(.upserted(old: old, new: object))
            }
            for (key, object) in state.objects where !seen.contains(key) {
                state.objects.removeValue(forKey: key)
                changes.append(.deleted(object))
            }
            state.synced = true
            defer { state.syncWaiters = [] }
            return (changes, state.syncWaiters)
        }
        for waiter in waiters { waiter.resume() }
        for change in changes { await onChange(change) }
    }

    /// Applies one watch event; returns the resourceVersion to resume from.
    private func handle(_ event: WatchEvent<Object>) async -> String? {
        switch event {
        case .bookmark(let resourceVersion):
            return resourceVersion
        case .added(let object), .modified(let object):
            let key = source.key(object)
            let old = state.withLock { state in
                defer { state.objects[key] = object }
                return state.objects[key]
            }
            await onChange(.upserted(old: old, new: object))
            return source.resourceVersion(object)
        case .deleted(let object):
            let key = source.key(object)
            let removed = state.withLock { $0.objects.removeValue(forKey: key) }
            await onChange(.deleted(removed ?? object))
            return source.resourceVersion(object)
        }
    }
}
