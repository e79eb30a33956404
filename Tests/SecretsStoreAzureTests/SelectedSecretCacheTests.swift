import Foundation
import SecretsStoreAzure
import Testing

/// The bounds ``SelectedSecretCache`` promises: what it keeps, when an answer is reused, and when entries leave.
@Suite("Azure selectors: the cache of selected secrets' answers")
struct SelectedSecretCacheTests {
    /// An `updated` long past (settled).
    static let past: Int64 = 1_700_000_000
    static let body: [UInt8] = Array(#"{"value":"v","id":"https://kv/secrets/a/1"}"#.utf8)

    @Test("an answer is reused only for the updated it was fetched at, once settled")
    func reuse() {
        let cache = SelectedSecretCache()
        cache.recordMatches(selector: "s", scope: "kv|id", names: ["a", "b"])
        cache.store(scope: "kv|id", name: "a", updated: Self.past, body: Self.body)
        #expect(cache.body(scope: "kv|id", name: "a", updated: Self.past) == Self.body)
        #expect(cache.body(scope: "kv|id", name: "a", updated: Self.past + 1) == nil)
        #expect(cache.body(scope: "kv|other-identity", name: "a", updated: Self.past) == nil)
        // Written this second: another version could carry the same updated; not reused yet.
        let now = Int64(Date().timeIntervalSince1970)
        cache.store(scope: "kv|id", name: "b", updated: now, body: Self.body)
        #expect(cache.body(scope: "kv|id", name: "b", updated: now) == nil)
    }

    @Test("only names a selector's last list matched are kept; a name leaves when no selector of its scope matches it")
    func unmatchedLeave() {
        let cache = SelectedSecretCache()
        cache.store(scope: "kv|id", name: "a", updated: Self.past, body: Self.body)
        #expect(cache.count == 0)
        cache.recordMatches(selector: "s1", scope: "kv|id", names: ["a", "b"])
        cache.recordMatches(selector: "s2", scope: "kv|id", names: ["b"])
        cache.recordMatches(selector: "s3", scope: "kv|other", names: ["a"])
        cache.store(scope: "kv|id", name: "a", updated: Self.past, body: Self.body)
        cache.store(scope: "kv|id", name: "b", updated: Self.past, body: Self.body)
        #expect(cache.count == 2)
        cache.recordMatches(selector: "s1", scope: "kv|id", names: [])
        // b is still s2's; a was only s1's in its scope (s3's scope is another identity's).
        #expect(cache.count == 1)
        #expect(cache.body(scope: "kv|id", name: "a", updated: Self.past) == nil)
        #expect(cache.body(scope: "kv|id", name: "b", updated: Self.past) == Self.body)
        cache.forget(scope: "kv|id", name: "b")
        #expect(cache.count == 0)
    }

    @Test("at most maxEntries entries, the least recently used leave first")
    func entryCap() {
        let cache = SelectedSecretCache()
        let names = (0..<(SelectedSecretCache.maxEntries + 10)).map { "n\($0)" }
        cache.recordMatches(selector: "s", scope: "kv", names: Set(names))
        for name in names { cache.store(scope: "kv", name: name, updated: Self.past, body: Self.body) }
        #expect(cache.count == SelectedSecretCache.maxEntries)
        #expect(cache.body(scope: "kv", name: "n0", updated: Self.past) == nil)
        #expect(cache.body(scope: "kv", name: names.last!, updated: Self.past) == Self.body)
    }

    @Test("at most maxBytes of answers")
    func byteCap() {
        let cache = SelectedSecretCache()
        let big = [UInt8](repeating: 0x61, count: 1 << 20)
        let names = (0..<40).map { "big\($0)" }
        cache.recordMatches(selector: "s", scope: "kv", names: Set(names))
        for name in names { cache.store(scope: "kv", name: name, updated: Self.past, body: big) }
        #expect(cache.count == SelectedSecretCache.maxBytes / big.count)
    }

    @Test("at most maxSelectors selectors are remembered; the least recently listed leaves with the entries only it matched")
    func selectorCap() {
        let cache = SelectedSecretCache()
        cache.recordMatches(selector: "first", scope: "kv", names: ["only-first"])
        cache.store(scope: "kv", name: "only-first", updated: Self.past, body: Self.body)
        for index in 0..<SelectedSecretCache.maxSelectors {
            cache.recordMatches(selector: "s\(index)", scope: "kv", names: ["shared"])
        }
        #expect(cache.body(scope: "kv", name: "only-first", updated: Self.past) == nil)
        #expect(cache.count == 0)
    }
}
