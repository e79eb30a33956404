import Logging
import SecretsStoreCore
import SecretsStoreCoreTesting
import Testing

/// The SecretProviderClass watch cache in front of the node path's client: hits need no request, misses and
/// reads before the first list are GETs, everything else is forwarded. The cache is a ``Reflector`` over
/// closures (no network).
@Suite("SecretProviderClass reads through the watch cache", .timeLimit(.minutes(3)))
struct CachedSecretProviderClassesTests {
    static let logger = Logger(label: "test")

    static func spc(_ name: String, resourceVersion: String) -> SecretProviderClass {
        SecretProviderClass(
            namespace: "ns",
            name: name,
            provider: "test",
            parameters: PipelineHarness.spc.parameters,
            resourceVersion: resourceVersion
        )
    }

    /// A reflector listing `listed` once, then watching `events` (which never ends on its own), and
    /// reporting each change it applied on `changes`.
    struct Cache {
        let reflector: Reflector<SecretProviderClass>
        let events: AsyncThrowingStream<WatchEvent<SecretProviderClass>, any Error>.Continuation
        let changes: AsyncStream<Reflector<SecretProviderClass>.Change>

        init(listing listed: [SecretProviderClass]) {
            let (eventStream, events) = AsyncThrowingStream<WatchEvent<SecretProviderClass>, any Error>.makeStream()
            let (changes, changed) = AsyncStream<Reflector<SecretProviderClass>.Change>.makeStream()
            self.events = events
            self.changes = changes
            reflector = Reflector(
                name: "secretproviderclasses",
                source: .init(
                    list: { _ async throws(KubernetesClientError) in Listed(items: listed, resourceVersion: "10") },
                    watch: { _, _ in eventStream },
                    key: { "\($0.namespace)/\($0.name)" },
                    resourceVersion: { $0.resourceVersion }
                ),
                onChange: { changed.yield($0) }
            )
        }

        /// Runs the reflector for the duration of `body`, once it has synced.
        func running(_ body: () async throws -> Void) async throws {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await reflector.run(logger: CachedSecretProviderClassesTests.logger) }
                await reflector.waitUntilSynced()
                do { try await body() } catch {
                    group.cancelAll()
                    throw error
                }
                group.cancelAll()
            }
        }
    }

    @Test("a class the synced cache holds is answered from it, with no GET")
    func cacheHit() async throws {
        let kubernetes = InMemoryKubernetesAPI([Self.spc("a", resourceVersion: "from-get")])
        let cache = Cache(listing: [Self.spc("a", resourceVersion: "from-cache")])
        let client = CachedSecretProviderClasses(kubernetes, cache: cache.reflector)
        try await cache.running { () async throws in
            let spc = try await client.secretProviderClass(namespace: "ns", name: "a", logger: Self.logger)
            #expect(spc.resourceVersion == "from-cache")
            #expect(kubernetes.calls([.getSecretProviderClass]).isEmpty)
        }
    }

    @Test("a class the cache does not hold is a GET; one that does not exist is still not found")
    func unknownClassIsAGet() async throws {
        let kubernetes = InMemoryKubernetesAPI([Self.spc("b", resourceVersion: "from-get")])
        let cache = Cache(listing: [Self.spc("a", resourceVersion: "from-cache")])
        let client = CachedSecretProviderClasses(kubernetes, cache: cache.reflector)
        try await cache.running { () async throws in
            let spc = try await client.secretProviderClass(namespace: "ns", name: "b", logger: Self.logger)
            #expect(spc.resourceVersion == "from-get")
            let error = await #expect(throws: KubernetesClientError.self) {
                try await client.secretProviderClass(namespace: "ns", name: "missing", logger: Self.logger)
            }
            guard case .notFound? = error else {
                Issue.record("expected notFound, got \(String(describing: error))")
                return
            }
            #expect(kubernetes.calls([.getSecretProviderClass]).map(\.name) == ["b", "missing"])
        }
    }

    @Test("before the first list has been applied every read is a GET")
    func notSyncedIsAGet() async throws {
        let kubernetes = InMemoryKubernetesAPI([Self.spc("a", resourceVersion: "from-get")])
        let cache = Cache(listing: [Self.spc("a", resourceVersion: "from-cache")])
        let client = CachedSecretProviderClasses(kubernetes, cache: cache.reflector)
        #expect(!cache.reflector.hasSynced)
        let spc = try await client.secretProviderClass(namespace: "ns", name: "a", logger: Self.logger)
        #expect(spc.resourceVersion == "from-get")
        #expect(kubernetes.calls([.getSecretProviderClass]).map(\.name) == ["a"])
    }

    @Test("an edit seen by the watch is what the next read answers; a deletion makes it a GET again")
    func watchedChangesAreAnswered() async throws {
        let kubernetes = InMemoryKubernetesAPI()
        let cache = Cache(listing: [Self.spc("a", resourceVersion: "11")])
        let client = CachedSecretProviderClasses(kubernetes, cache: cache.reflector)
        try await cache.running { () async throws in
            var changes = cache.changes.makeAsyncIterator()
            _ = await changes.next()  // the list's upsert
            cache.events.yield(.modified(Self.spc("a", resourceVersion: "12")))
            _ = await changes.next()
            #expect(try await client.secretProviderClass(namespace: "ns", name: "a", logger: Self.logger).resourceVersion == "12")
            #expect(kubernetes.calls([.getSecretProviderClass]).isEmpty)

            cache.events.yield(.deleted(Self.spc("a", resourceVersion: "13")))
            _ = await changes.next()
            await #expect(throws: KubernetesClientError.self) {
                try await client.secretProviderClass(namespace: "ns", name: "a", logger: Self.logger)
            }
            #expect(kubernetes.calls([.getSecretProviderClass]).map(\.name) == ["a"])
        }
    }

    @Test("every other verb is the wrapped client's, the workload verbs included")
    func otherVerbsAreForwarded() async throws {
        let kubernetes = InMemoryKubernetesAPI()
        let owner = OwnerReference(apiVersion: "apps/v1", kind: "Deployment", name: "web", uid: "uid-web")
        kubernetes.addReplicaSet(namespace: "ns", name: "web-5d9", ownerReferences: [owner])
        kubernetes.add(PodInfo(namespace: "ns", name: "pod", uid: "uid-1", ownerReferences: []))
        let client = CachedSecretProviderClasses(kubernetes) { _, _ in nil }
        #expect(try await client.replicaSetOwners(namespace: "ns", name: "web-5d9", logger: Self.logger) == [owner])
        #expect(try await client.pod(namespace: "ns", name: "pod", logger: Self.logger).uid == "uid-1")
        #expect(kubernetes.calls(.workloadCalls) == [.getReplicaSet(namespace: "ns", name: "web-5d9")])
    }

    @Test("a publisher reading through a synced cache publishes and refreshes without a GET")
    func publisherUsesTheCache() async throws {
        let kubernetes = InMemoryKubernetesAPI()
        let cache = Cache(listing: [PipelineHarness.spc])
        let fileSystem = InMemoryFileSystem()
        let target = "/pods/uid-1/volumes/kubernetes.io~csi/secrets/mount"
        try fileSystem.createDirectories(at: target, permissions: 0o750)
        let clock = ManualClock()
        let publisher = NodePublisher(
            kubernetes: CachedSecretProviderClasses(kubernetes, cache: cache.reflector),
            providers: FixedProviderDirectory(["test": StaticProvider(PipelineHarness.files)]),
            mounter: RecordingMounter(fileSystem: fileSystem),
            fileSystem: fileSystem,
            monotonicNow: clock.read,
            wallClockSeconds: { 1_795_919_943 },
            configuration: .init(nodeID: "node-1", rotation: RotationPolicy(enabled: true, interval: .seconds(60)))
        )
        try await cache.running { () async throws in
            var request = PublishRequestTests.request(target: target)
            request.volumeContext["secretProviderClass"] = PipelineHarness.spc.name
            #expect(try await publisher.publish(request, logger: Self.logger) == .published)
            clock.advance(by: .seconds(60))
            let outcome = await publisher.rotate(logger: Self.logger)[target]
            guard case .refreshed? = outcome else {
                Issue.record("expected a refresh, got \(String(describing: outcome))")
                return
            }
            #expect(kubernetes.calls([.getSecretProviderClass]).isEmpty)
        }
    }
}
