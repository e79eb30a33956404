import Logging
import SecretsStoreCore
import SecretsStoreCoreTesting
import Synchronization
import Testing

/// The node plugin's class reads: concurrent reads of one class share one GET, nothing is kept after it, a
/// NotFound reaches every reader unchanged, and each reader keeps its own cancellation.
@Suite(.timeLimit(.minutes(3))) struct SharedSecretProviderClassReadsTests {
    static let logger = Logger(label: "test")
    static let spc = SecretProviderClass(namespace: "ns", name: "spc", provider: "test", parameters: ["objects": "a"])

    /// Reads `namespace/name` through `reads`, as a result.
    static func read(
        _ reads: SharedSecretProviderClassReads,
        namespace: String = "ns",
        name: String = "spc"
    ) async -> Result<SecretProviderClass, KubernetesClientError> {
        do throws(KubernetesClientError) {
            return .success(try await reads.secretProviderClass(namespace: namespace, name: name, logger: logger))
        } catch {
            return .failure(error)
        }
    }

    /// `count` concurrent reads of `ns/name` while the GET is held; it is let through once all but the first
    /// have joined it. Returns every reader's outcome.
    static func concurrentReads(
        _ count: Int,
        of name: String,
        through reads: SharedSecretProviderClassReads,
        held: HeldClassReads
    ) async throws -> [Result<SecretProviderClass, KubernetesClientError>] {
        // Whatever happens below, no reader stays parked behind the gate.
        defer { held.release() }
        return try await withThrowingTaskGroup(of: Result<SecretProviderClass, KubernetesClientError>.self) { group in
            for _ in 0..<count {
                group.addTask { await read(reads, name: name) }
            }
            try await eventually("\(count - 1) reads joined the GET in flight") { reads.joinedReadCount == count - 1 }
            held.release()
            var outcomes: [Result<SecretProviderClass, KubernetesClientError>] = []
            for try await outcome in group { outcomes.append(outcome) }
            return outcomes
        }
    }

    @Test("a hundred concurrent reads of one class send one GET, and every reader gets the class")
    func concurrentReadsShareOneGET() async throws {
        let api = InMemoryKubernetesAPI([Self.spc])
        let held = HeldClassReads(api)
        let reads = SharedSecretProviderClassReads(held)
        let outcomes = try await Self.concurrentReads(100, of: "spc", through: reads, held: held)
        #expect(outcomes.count == 100)
        #expect(outcomes.allSatisfy { (try? $0.get()) == api.storedClass(namespace: "ns", name: "spc") })
        #expect(api.calls([.getSecretProviderClass]).count == 1)
        #expect(held.arrived == 1)
    }

    @Test("nothing is kept: a read after the last GET returned sends a new one and sees the class as changed since")
    func aLaterReadSendsANewGET() async throws {
        let api = InMemoryKubernetesAPI([Self.spc])
        let reads = SharedSecretProviderClassReads(api)
        let first = try await Self.read(reads).get()
        #expect(first.parameters == ["objects": "a"])

        var changed = Self.spc
        changed.parameters = ["objects": "b"]
        api.add(changed)
        let second = try await Self.read(reads).get()
        #expect(second.parameters == ["objects": "b"])
        #expect(second.resourceVersion != first.resourceVersion)
        #expect(api.calls([.getSecretProviderClass]).count == 2)
        #expect(reads.joinedReadCount == 0)
    }

    @Test("reads of different classes do not share: each sends its own GET and gets its own class")
    func differentClassesDoNotShare() async throws {
        var other = Self.spc
        other.name = "other"
        other.parameters = ["objects": "o"]
        let api = InMemoryKubernetesAPI([Self.spc, other])
        let held = HeldClassReads(api)
        let reads = SharedSecretProviderClassReads(held)
        defer { held.release() }
        async let spc = Self.read(reads, name: "spc")
        async let otherRead = Self.read(reads, name: "other")
        // Both GETs reach the API while neither has answered: neither read waits for the other's.
        try await eventually("both GETs sent") { held.arrived == 2 }
        held.release()
        #expect(try await spc.get().parameters == ["objects": "a"])
        #expect(try await otherRead.get().parameters == ["objects": "o"])
        #expect(reads.joinedReadCount == 0)
        #expect(api.calls([.getSecretProviderClass]).compactMap(\.name).sorted() == ["other", "spc"])
    }

    @Test("a NotFound reaches every joined reader unchanged")
    func notFoundReachesEveryReader() async throws {
        let api = InMemoryKubernetesAPI()
        // What the API itself answers.
        let direct: Result<SecretProviderClass, KubernetesClientError>
        do throws(KubernetesClientError) {
            direct = .success(try await api.secretProviderClass(namespace: "ns", name: "absent", logger: Self.logger))
        } catch {
            direct = .failure(error)
        }
        guard case .failure(.notFound) = direct else {
            Issue.record("the API did not answer NotFound: \(direct)")
            return
        }
        let held = HeldClassReads(api)
        let reads = SharedSecretProviderClassReads(held)
        let outcomes = try await Self.concurrentReads(10, of: "absent", through: reads, held: held)
        #expect(outcomes.count == 10)
        for outcome in outcomes {
            #expect(outcome.failure == direct.failure)
        }
        #expect(held.arrived == 1)
        #expect(api.calls([.getSecretProviderClass]).count == 2)
    }

    @Test("a cancelled reader stops waiting at once with a cancellation, while the others get the class from the GET")
    func aCancelledReaderLeavesAlone() async throws {
        let api = InMemoryKubernetesAPI([Self.spc])
        let held = HeldClassReads(api)
        let reads = SharedSecretProviderClassReads(held)
        defer { held.release() }
        // The reader that started the GET is the one cancelled: its GET goes on for the others.
        let starter = Task { await Self.read(reads) }
        try await eventually("the GET sent") { held.arrived == 1 }
        let joiners = (0..<2).map { _ in Task { await Self.read(reads) } }
        try await eventually("two reads joined") { reads.joinedReadCount == 2 }

        starter.cancel()
        let returned = Mutex(false)
        let waitForStarter = Task {
            let outcome = await starter.value
            returned.withLock { $0 = true }
            return outcome
        }
        // Before the GET answers.
        try await eventually("the cancelled read returned") { returned.withLock { $0 } }
        let cancelled = await waitForStarter.value
        guard case .failure(.unavailable(_, let cause)) = cancelled else {
            Issue.record("the cancelled read got \(cancelled)")
            return
        }
        #expect(cause?.matches(CancellationError.self) == true)

        held.release()
        for joiner in joiners {
            #expect(try await joiner.value.get() == api.storedClass(namespace: "ns", name: "spc"))
        }
        #expect(!held.sawCancellation)
        #expect(api.calls([.getSecretProviderClass]).count == 1)
    }
}
