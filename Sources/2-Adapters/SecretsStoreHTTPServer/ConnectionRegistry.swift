import NIOCore
import Synchronization

/// The open connections of one ``HTTPListener``, on whichever event loops serve them: admission with eviction
/// of the connection idle the longest, removal, and closing them all at shutdown.
///
/// The table is behind a lock taken only to admit, remove or close connections; marking a connection idle or
/// busy (once per request) is one atomic store on its ``Entry``.
final class ConnectionRegistry: Sendable {
    /// One open connection and when it last became idle.
    final class Entry: Sendable {
        /// The connection.
        let channel: any Channel
        /// `NIODeadline.uptimeNanoseconds` of the moment it last became idle; 0 while it closes (evicted first),
        /// `UInt64.max` while an answer is in progress (evicted last).
        private let idleSince: Atomic<UInt64>

        init(channel: any Channel) {
            self.channel = channel
            self.idleSince = Atomic(NIODeadline.now().uptimeNanoseconds)
        }

        /// The connection finished a request now.
        func markIdle() { idleSince.store(NIODeadline.now().uptimeNanoseconds, ordering: .relaxed) }
        /// The connection is answering a request.
        func markBusy() { idleSince.store(.max, ordering: .relaxed) }
        /// The connection is closing: the first to evict.
        func markClosing() { idleSince.store(0, ordering: .relaxed) }
        /// The eviction order: smaller goes first.
        var evictionRank: UInt64 { idleSince.load(ordering: .relaxed) }
    }

    /// One consistent reading of the counts.
    struct Counts: Sendable {
        /// Connections open now.
        var open = 0
        /// The most ever open at once.
        var peak = 0
        /// Connections closed to make room for a newer one.
        var evicted = 0
    }

    /// The table and its counts.
    private struct State {
        /// Open connections by the identity of their entry; at most `capacity`.
        var entries: [ObjectIdentifier: Entry] = [:]
        /// The counts.
        var counts = Counts()
        /// Set by ``closeAll()``: later connections are refused.
        var closed = false
    }

    /// The cap on open connections (at least 1).
    private let capacity: Int
    /// The table, behind a lock (event loops admit and remove; tests and shutdown read it from other threads).
    private let state = Mutex(State())

    /// A registry for at most `capacity` connections.
    init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    /// A copy of the current counts.
    var counts: Counts { state.withLock { $0.counts } }

    /// Admits `channel`, first evicting (closing) the connections idle the longest while the table is full.
    ///
    /// - Returns: its entry, or `nil` after ``closeAll()`` (the caller closes the channel). O(capacity) when the
    ///   table is full.
    func admit(_ channel: any Channel) -> Entry? {
        let entry = Entry(channel: channel)
        let (admitted, victims) = state.withLock { state -> (Bool, [any Channel]) in
            guard !state.closed else { return (false, []) }
            var victims: [any Channel] = []
            while state.entries.count >= capacity,
                  let victim = state.entries.min(by: { $0.value.evictionRank < $1.value.evictionRank }) {
                state.entries.removeValue(forKey: victim.key)
                state.counts.evicted += 1
                victims.append(victim.value.channel)
            }
            state.entries[ObjectIdentifier(entry)] = entry
            state.counts.open = state.entries.count
            state.counts.peak = max(state.counts.peak, state.counts.open)
            return (true, victims)
        }
        for victim in victims { victim.close(promise: nil) }
        return admitted ? entry : nil
    }

    /// Forgets `entry` (its connection closed). An entry already evicted is ignored.
    func remove(_ entry: Entry) {
        state.withLock { state in
            if state.entries.removeValue(forKey: ObjectIdentifier(entry)) != nil {
                state.counts.open = state.entries.count
            }
        }
    }

    /// Refuses later connections and returns the open ones, forgotten, for the caller to close.
    func closeAll() -> [any Channel] {
        state.withLock { state in
            state.closed = true
            let channels = state.entries.values.map(\.channel)
            state.entries.removeAll()
            state.counts.open = 0
            return channels
        }
    }
}
