import Synchronization

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What makes a refresh of a selector cost the list's pages plus the secrets that changed, not every match:
/// for each secret a selector matched, the Key Vault answer of its last GET and the list's `attributes.updated`
/// it was fetched at. When a later list shows the same `updated`, the answer is reused without a GET.
///
/// What it holds: secret values, in memory (the raw GET bodies, value included), as the answer being built
/// holds them; never on disk, never logged. Entries are per scope — vault URL, tenant and identity — so an
/// identity reuses only what it read itself (Key Vault may let an identity list a secret it may not read).
///
/// When entries leave:
/// - when no selector's last list of their scope matched them any more (the secret was deleted, disabled,
///   renamed, re-tagged, or the selector changed): each selector remembers the names its last list matched;
/// - when a selector is forgotten (at most ``maxSelectors`` are remembered, the least recently listed goes
///   first), with the entries only it matched;
/// - past ``maxEntries`` entries or ``maxBytes`` bytes of bodies, the least recently used entries go first;
/// - an entry whose secret changed is replaced by the next GET.
///
/// An answer is reused only when it was fetched at least ``settleSeconds`` after its `updated` second (by this
/// node's clock): `updated` counts whole seconds, so a version written in the same second as the one fetched
/// would show the same `updated`; such an entry is fetched once more instead.
package final class SelectedSecretCache: Sendable {
    /// The most entries kept.
    package static let maxEntries = 2000
    /// The most bytes of GET bodies kept.
    package static let maxBytes = 32 << 20
    /// The most selectors whose last matches are remembered.
    package static let maxSelectors = 512
    /// How long after its `updated` second an answer must have been fetched to be reused.
    package static let settleSeconds: Int64 = 5

    /// A secret of one scope.
    struct EntryKey: Hashable {
        var scope: String
        var name: String
    }

    struct Entry {
        var body: [UInt8]
        var updated: Int64
        var fetchedAt: Int64
        var lastUsed: UInt64
    }

    struct SelectorMatches {
        var scope: String
        var names: Set<String>
        var lastUsed: UInt64
    }

    struct State {
        var entries: [EntryKey: Entry] = [:]
        var selectors: [String: SelectorMatches] = [:]
        var bytes = 0
        var clock: UInt64 = 0

        mutating func tick() -> UInt64 {
            clock += 1
            return clock
        }

        func isMatched(_ key: EntryKey) -> Bool {
            selectors.values.contains { $0.scope == key.scope && $0.names.contains(key.name) }
        }

        mutating func remove(_ key: EntryKey) {
            if let entry = entries.removeValue(forKey: key) { bytes -= entry.body.count }
        }

        /// Removes the entries of `names` in `scope` that no selector matches any more.
        mutating func dropUnmatched(_ names: some Sequence<String>, scope: String) {
            for name in names {
                let key = EntryKey(scope: scope, name: name)
                if entries[key] != nil, !isMatched(key) { remove(key) }
            }
        }
    }

    private let state = Mutex(State())

    /// An empty cache.
    package init() {}

    /// How many answers are kept now.
    package var count: Int { state.withLock { $0.entries.count } }

    /// Records that the selector `selector` of `scope` now matches `names` (its last list), dropping the
    /// entries only its previous list matched.
    package func recordMatches(selector: String, scope: String, names: Set<String>) {
        state.withLock { state in
            let key = scope + "\u{0}" + selector
            let previous = state.selectors[key]?.names ?? []
            let used = state.tick()
            state.selectors[key] = SelectorMatches(scope: scope, names: names, lastUsed: used)
            state.dropUnmatched(previous.subtracting(names), scope: scope)
            while state.selectors.count > Self.maxSelectors,
                let oldest = state.selectors.min(by: { $0.value.lastUsed < $1.value.lastUsed })
            {
                state.selectors.removeValue(forKey: oldest.key)
                state.dropUnmatched(oldest.value.names, scope: oldest.value.scope)
            }
        }
    }

    /// The answer kept for `name` in `scope` when it was fetched at the list's `updated` and has settled.
    package func body(scope: String, name: String, updated: Int64) -> [UInt8]? {
        state.withLock { state in
            let key = EntryKey(scope: scope, name: name)
            guard let entry = state.entries[key], entry.updated == updated,
                entry.fetchedAt >= updated + Self.settleSeconds
            else { return nil }
            let used = state.tick()
            state.entries[key]?.lastUsed = used
            return entry.body
        }
    }

    /// Keeps `body`, fetched now for `name` in `scope` whose list showed `updated`, if a selector of the scope
    /// still matches the name.
    package func store(scope: String, name: String, updated: Int64, body: [UInt8]) {
        let now = Int64(Date().timeIntervalSince1970)
        state.withLock { state in
            let key = EntryKey(scope: scope, name: name)
            guard state.isMatched(key) else { return }
            state.remove(key)
            let used = state.tick()
            state.entries[key] = Entry(body: body, updated: updated, fetchedAt: now, lastUsed: used)
            state.bytes += body.count
            while state.entries.count > Self.maxEntries || state.bytes > Self.maxBytes,
                let oldest = state.entries.min(by: { $0.value.lastUsed < $1.value.lastUsed })
            {
                state.remove(oldest.key)
            }
        }
    }

    /// Forgets `name` in `scope` (it vanished between the list and its GET).
    package func forget(scope: String, name: String) {
        state.withLock { $0.remove(EntryKey(scope: scope, name: name)) }
    }
}
