import Logging
import SecretsStoreCore
import SecretsStoreCoreTesting
import Synchronization
import Testing

/// The sync controller over the in-memory API: Secrets before any pod, status, bad input, restore, refresh
/// and back-off, leader election decisions. Real time is used only for short waits that end on a condition.
@Suite("Sync controller", .timeLimit(.minutes(3)))
struct SyncControllerTests {
    static let namespace = "team"

    static func spc(
        name: String = "db",
        sync: SecretProviderClass.SyncSpec? = .init(serviceAccountName: "app"),
        refreshInterval: String? = nil,
        secretName: String = "db-secret",
        parameters: [String: String] = ["objects": "x"]
    ) -> SecretProviderClass {
        SecretProviderClass(
            namespace: namespace,
            name: name,
            provider: "static",
            parameters: parameters,
            secretObjects: [
                .init(secretName: secretName, type: "Opaque", labels: ["app": "db"], data: [.init(objectName: "password", key: "pw")])
            ],
            refreshInterval: refreshInterval,
            sync: sync
        )
    }

    static func response(_ value: String, version: String = "1") -> ProviderResponse {
        ProviderResponse(files: [SecretFile(path: "password", mode: 0o644, contents: Array(value.utf8))], objectVersions: [.init(id: "secret/password", version: version)])
    }

    /// An API, a provider and a running controller; `body` runs while it runs.
    static func withController(
        defaultInterval: Duration = .seconds(3600),
        workers: Int = 8,
        audiences: [String]? = ["api://AzureADTokenExchange"],
        logs: LogCapture = LogCapture(),
        _ body: (InMemoryKubernetesAPI, StaticProvider, SyncController) async throws -> Void
    ) async throws {
        let api = InMemoryKubernetesAPI()
        api.addServiceAccount(namespace: namespace, name: "app")
        api.setCSIDriverAudiences(audiences)
        let provider = StaticProvider(response("s3cret"))
        let tokens = ServiceAccountTokenCache(client: api, nowSeconds: { 1_800_000_000 })
        let step = SecretProviderClassSyncStep(
            kubernetes: api,
            providers: FixedProviderDirectory(["static": provider]),
            tokens: tokens,
            audiences: .init { logger async throws(KubernetesClientError) in try await api.csiDriverTokenAudiences(driverName: "d", logger: logger) }
        )
        let controller = SyncController(
            kubernetes: api,
            step: step,
            tokens: tokens,
            configuration: .init(namespace: nil, defaultInterval: defaultInterval, workers: workers, tick: .milliseconds(20)),
            monotonicNow: { ContinuousClock.now - start },
            wallClockSeconds: { 1_800_000_000 }
        )
        let logger = logs.logger()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await controller.run(logger: logger) }
            do {
                try await body(api, provider, controller)
            } catch {
                group.cancelAll()
                throw error
            }
            group.cancelAll()
        }
    }

    private static let start = ContinuousClock.now

    static let secretKey = "\(namespace)/db-secret"
    static let classKey = "\(namespace)/db"

    @Test("a class with spec.sync gets its Secret with no pod: owner, labels, status Ready=True, an event")
    func secretBeforeAnyPod() async throws {
        try await Self.withController { api, provider, _ in
            api.add(Self.spc())
            try await eventually("secret synced") { api.secrets[Self.secretKey] != nil }
            let secret = try #require(api.secrets[Self.secretKey])
            #expect(secret.data["pw"] == Array("s3cret".utf8))
            #expect(secret.labels == ["app": "db", KubernetesSecret.managedLabel: "true"])
            let spc = try #require(api.storedClass(namespace: Self.namespace, name: "db"))
            #expect(secret.ownerReferences == [OwnerReference(apiVersion: "secrets-store.csi.x-k8s.io/v1", kind: "SecretProviderClass", name: "db", uid: spc.uid)])
            try await eventually("status written") { api.classStatuses[Self.classKey]?.ready?.status == "True" }
            let status = try #require(api.classStatuses[Self.classKey])
            #expect(status.ready?.reason == "Synced")
            #expect(status.ready?.observedGeneration == 1)
            #expect(status.lastSyncTime == "2027-01-15T08:00:00Z")
            #expect(status.objects == [.init(id: "secret/password", version: "1")])
            #expect(status.syncedSecrets == ["db-secret"])
            #expect(api.classEvents.map(\.reason) == ["SecretSynced"])
            // The provider request: no pod, the class's namespace and service account, one token per audience.
            let request = try #require(provider.requests.first)
            #expect(request.attributes["csi.storage.k8s.io/pod.namespace"] == Self.namespace)
            #expect(request.attributes["csi.storage.k8s.io/serviceAccount.name"] == "app")
            #expect(request.attributes["objects"] == "x")
            let tokens = try #require(request.attributes["csi.storage.k8s.io/serviceAccount.tokens"])
            #expect(tokens.hasPrefix("{\"api://AzureADTokenExchange\":{\"token\":\"token-team-app-api://AzureADTokenExchange-1\",\"expirationTimestamp\":\""))
            #expect(request.targetPath.isEmpty)
        }
    }

    @Test(
        "bad input gives Ready=False naming the field and touches no Secret",
        arguments: [
            (SyncControllerTests.spc(sync: .init(serviceAccountName: nil)), "InvalidSpec", "spec.sync.serviceAccountName"),
            (SyncControllerTests.spc(sync: .init(serviceAccountName: "other:app")), "InvalidSpec", "spec.sync.serviceAccountName"),
            (SyncControllerTests.spc(sync: .init(serviceAccountName: "missing")), "TokenRequestFailed", "spec.sync.serviceAccountName"),
            (SyncControllerTests.spc(sync: .init(serviceAccountName: "app", nodePublishSecretRefName: "creds")), "InvalidSpec", "spec.sync.nodePublishSecretRef.name"),
            (SyncControllerTests.spc(refreshInterval: "soon"), "InvalidSpec", "spec.refreshInterval"),
            (SyncControllerTests.spc(refreshInterval: "2s"), "InvalidSpec", "spec.refreshInterval"),
        ]
    )
    func badInput(spc: SecretProviderClass, reason: String, field: String) async throws {
        try await Self.withController { api, provider, _ in
            api.add(spc)
            try await eventually("status written") { api.classStatuses[Self.classKey] != nil }
            let ready = try #require(api.classStatuses[Self.classKey]?.ready)
            #expect(ready.status == "False")
            #expect(ready.reason == reason)
            #expect(ready.message.contains(field))
            #expect(api.secrets.isEmpty)
            #expect(provider.requests.isEmpty)
            #expect(api.classEvents.map(\.reason) == ["SecretSyncFailed"])
        }
    }

    @Test("an unmanaged Secret of the same name is never taken over: SecretConflict")
    func unmanagedSecretConflict() async throws {
        try await Self.withController { api, _, _ in
            api.add(KubernetesSecret(namespace: Self.namespace, name: "db-secret", type: "Opaque", data: ["pw": [1]], labels: [:], annotations: [:], ownerReferences: []))
            api.add(Self.spc())
            try await eventually("status written") { api.classStatuses[Self.classKey] != nil }
            #expect(api.classStatuses[Self.classKey]?.ready?.reason == "SecretConflict")
            #expect(api.secrets[Self.secretKey]?.data["pw"] == [1])
        }
    }

    @Test("a provider failure keeps the last good Secret and says ProviderError; recovery goes back to Synced")
    func providerFailureKeepsLastGood() async throws {
        try await Self.withController(defaultInterval: .seconds(3600)) { api, provider, controller in
            api.add(Self.spc())
            try await eventually("first sync") { api.classStatuses[Self.classKey]?.ready?.status == "True" }
            provider.fail(with: .unavailable("vault down"))
            // An edit of the spec triggers a sync at once.
            api.add(Self.spc(parameters: ["objects": "y"]))
            try await eventually("failure recorded") { api.classStatuses[Self.classKey]?.ready?.reason == "ProviderError" }
            #expect(api.secrets[Self.secretKey]?.data["pw"] == Array("s3cret".utf8))
            #expect(api.classStatuses[Self.classKey]?.ready?.observedGeneration == 2)
            // Back-off retries (1 s, then 2 s) until the provider answers again.
            provider.respond(with: Self.response("n3w", version: "2"))
            try await eventually("recovered") { api.secrets[Self.secretKey]?.data["pw"] == Array("n3w".utf8) }
            try await eventually("status back to synced") { api.classStatuses[Self.classKey]?.ready?.reason == "Synced" }
            #expect(controller.fullSyncsStarted >= 3)
        }
    }

    @Test("a deleted or edited synced Secret is restored without asking the provider")
    func restoresDeletedAndEdited() async throws {
        try await Self.withController { api, provider, _ in
            api.add(Self.spc())
            try await eventually("synced") { api.secrets[Self.secretKey] != nil }
            let fetches = provider.requests.count
            api.removeSecret(namespace: Self.namespace, name: "db-secret")
            try await eventually("restored after delete") { api.secrets[Self.secretKey] != nil }
            var edited = try #require(api.secrets[Self.secretKey])
            edited.data["pw"] = Array("tampered".utf8)
            api.add(edited)
            try await eventually("restored after edit") { api.secrets[Self.secretKey]?.data["pw"] == Array("s3cret".utf8) }
            #expect(provider.requests.count == fetches)
        }
    }

    @Test("refreshInterval drives the refresh of that class only; its own status writes do not trigger syncs")
    func refreshIntervalPerClass() async throws {
        try await Self.withController(defaultInterval: .seconds(3600)) { api, provider, controller in
            api.add(Self.spc(name: "fast", refreshInterval: "5s", secretName: "fast-secret"))
            api.add(Self.spc(name: "slow", secretName: "slow-secret"))
            try await eventually("both synced") { api.secrets.count == 2 }
            provider.respond(with: Self.response("rotated", version: "2"))
            try await eventually("fast refreshed", within: .seconds(30)) {
                api.secrets["\(Self.namespace)/fast-secret"]?.data["pw"] == Array("rotated".utf8)
            }
            #expect(api.secrets["\(Self.namespace)/slow-secret"]?.data["pw"] == Array("s3cret".utf8))
            // Two classes, one refresh: three fetches, whatever the status writes did.
            #expect(controller.fullSyncsStarted == 3)
            #expect(api.calls([.requestToken]).count == 1)
        }
    }

    @Test("a failed sync keeps the provider's error as its cause; the condition's message names it as before")
    func failedSyncKeepsItsCause() async throws {
        let api = InMemoryKubernetesAPI()
        api.addServiceAccount(namespace: Self.namespace, name: "app")
        api.setCSIDriverAudiences([])
        let provider = StaticProvider(Self.response("s3cret"))
        provider.fail(with: .unavailable("vault down"))
        let step = SecretProviderClassSyncStep(
            kubernetes: api,
            providers: FixedProviderDirectory(["static": provider]),
            tokens: ServiceAccountTokenCache(client: api, nowSeconds: { 1_800_000_000 }),
            audiences: .init { _ async throws(KubernetesClientError) in [] }
        )
        api.add(Self.spc())
        let spc = try #require(api.storedClass(namespace: Self.namespace, name: "db"))
        let outcome = await step.sync(spc, previous: [], logger: Logger(label: "test"))
        #expect(outcome.reason == .providerError)
        let cause = try #require(outcome.cause as? PublishError)
        #expect(cause == .provider(name: "static", .unavailable("vault down")))
        #expect(outcome.message == "failed to mount secrets store objects, provider \"static\": unavailable: vault down")
    }

    @Test("deleting the class garbage-collects its Secret and the controller forgets it")
    func deletionCollects() async throws {
        // One worker: the queue is worked in order, so a later restore that completed proves every earlier one did.
        try await Self.withController(workers: 1) { api, _, controller in
            api.add(Self.spc())
            try await eventually("synced") { api.secrets[Self.secretKey] != nil }
            api.deleteClass(namespace: Self.namespace, name: "db")
            try await eventually("forgotten") { controller.trackedClasses.isEmpty }
            // A later event on the same watch and queue: another class's Secret deleted and restored. Once it is
            // back, the controller has seen the collected Secret's deletion and worked whatever it queued for it.
            api.add(Self.spc(name: "later", secretName: "later-secret"))
            let later = "\(Self.namespace)/later-secret"
            try await eventually("the later class synced") { api.secrets[later] != nil }
            api.removeSecret(namespace: Self.namespace, name: "later-secret")
            try await eventually("the later Secret restored") { api.secrets[later] != nil }
            #expect(api.secrets[Self.secretKey] == nil)
            #expect(controller.trackedClasses == ["\(Self.namespace)/later"])
        }
    }

    @Test("node sync of the same content writes nothing to a Secret the controller keeps; different content is written")
    func nodeSyncDoesNotFight() async throws {
        try await Self.withController { api, _, _ in
            api.add(Self.spc())
            try await eventually("synced") { api.secrets[Self.secretKey] != nil }
            let writes = api.calls(.secretWrites).count
            var fromNode = try #require(api.secrets[Self.secretKey])
            fromNode.ownerReferences = [OwnerReference(apiVersion: "apps/v1", kind: "ReplicaSet", name: "web-1", uid: "rs-uid")]
            fromNode.resourceVersion = nil
            let syncer = SecretSyncer(kubernetes: api)
            #expect(try await syncer.apply(fromNode, logger: Logger(label: "test")) == false)
            #expect(api.calls(.secretWrites).count == writes)
            fromNode.data["pw"] = Array("other".utf8)
            #expect(try await syncer.apply(fromNode, logger: Logger(label: "test")) == true)
        }
    }

    @Test("a class without spec.sync is left alone")
    func noSyncNoWork() async throws {
        try await Self.withController { api, provider, controller in
            api.add(Self.spc(sync: nil))
            api.add(Self.spc(name: "other"))
            try await eventually("the other synced") { api.secrets[Self.secretKey] != nil }
            #expect(controller.trackedClasses == ["\(Self.namespace)/other"])
            #expect(provider.requests.count == 1)
        }
    }

    @Test("no token or value in any log line")
    func noSecretsInLogs() async throws {
        let logs = LogCapture()
        try await Self.withController(logs: logs) { api, _, _ in
            api.add(Self.spc())
            try await eventually("synced") { api.classStatuses[Self.classKey]?.ready?.status == "True" }
        }
        #expect(!logs.all.isEmpty)
        for line in logs.all {
            #expect(!line.contains("token-team"))
            #expect(!line.contains("s3cret"))
        }
    }
}

@Suite("Sync controller parts", .timeLimit(.minutes(3)))
struct SyncControllerPartsTests {
    @Test("back-off: 1 s doubling to 5 min")
    func backoff() {
        #expect(SyncSchedule.backoff(afterFailures: 1) == .seconds(1))
        #expect(SyncSchedule.backoff(afterFailures: 2) == .seconds(2))
        #expect(SyncSchedule.backoff(afterFailures: 9) == .seconds(256))
        #expect(SyncSchedule.backoff(afterFailures: 10) == .seconds(300))
        #expect(SyncSchedule.backoff(afterFailures: 1000) == .seconds(300))
        var schedule = SyncSchedule()
        schedule.failed("a", now: .seconds(10))
        schedule.failed("a", now: .seconds(11))
        #expect(schedule.due("a") == .seconds(13))
        #expect(schedule.takeDue(now: .seconds(12)).isEmpty)
        #expect(schedule.takeDue(now: .seconds(13)) == ["a"])
        #expect(schedule.takeDue(now: .seconds(100)).isEmpty)
        schedule.succeeded("a", now: .seconds(20), interval: .seconds(60))
        #expect(schedule.failures(of: "a") == 0)
        #expect(schedule.nextDue == .seconds(80))
    }

    @Test("tokens are reused until 80 % of their life, then renewed")
    func tokenRenewal() async throws {
        let api = InMemoryKubernetesAPI(nowSeconds: { 1_000 })
        api.addServiceAccount(namespace: "n", name: "sa")
        let now = Locked<Int64>(1_000)
        let cache = ServiceAccountTokenCache(client: api, nowSeconds: { now.withLock { $0 } })
        let logger = Logger(label: "test")
        let first = try await cache.token(namespace: "n", serviceAccount: "sa", audience: "a", logger: logger)
        now.withLock { $0 = 1_000 + 2_879 }
        #expect(try await cache.token(namespace: "n", serviceAccount: "sa", audience: "a", logger: logger) == first)
        now.withLock { $0 = 1_000 + 2_880 }
        _ = try await cache.token(namespace: "n", serviceAccount: "sa", audience: "a", logger: logger)
        #expect(api.calls([.requestToken]).count == 2)
        #expect(!"\(first)".contains(first.token))
    }

    @Test("the tokens attribute is kubelet's JSON shape, escaped")
    func tokensJSON() {
        let json = SecretProviderClassSyncStep.tokensJSON([
            ("aud\"1", ServiceAccountToken(token: "t", expirationTimestamp: "2026-12-01T00:00:00Z", expiresAtSeconds: 0))
        ])
        #expect(json == #"{"aud\"1":{"token":"t","expirationTimestamp":"2026-12-01T00:00:00Z"}}"#)
    }

    @Test("RFC 3339 times")
    func times() {
        #expect(UTCTimestamp.rfc3339(epochSeconds: 0) == "1970-01-01T00:00:00Z")
        #expect(UTCTimestamp.rfc3339Micro(nanosecondsSinceEpoch: 1_500_000) == "1970-01-01T00:00:00.001500Z")
    }

    static let timing = LeaderElector.Timing()

    static func decide(_ current: LeaseRecord?, _ identity: String, now: Duration, observed: LeaderElector.Observation?) -> (LeaderElector.Action, LeaderElector.Observation) {
        LeaderElector.decide(current: current, identity: identity, now: now, observed: observed, timing: timing, namespace: "ns", name: "lease", wallTime: "T\(now.components.seconds)")
    }

    @Test("leader election: create when absent, stand by while the holder renews, take over after the lease duration on our clock")
    func leaseDecisions() {
        let (create, _) = Self.decide(nil, "a", now: .seconds(0), observed: nil)
        guard case .create(let created) = create else { Issue.record("expected create"); return }
        #expect(created.holderIdentity == "a")
        #expect(created.leaseDurationSeconds == 15)

        var held = created
        held.resourceVersion = "1"
        // b sees a's lease for the first time: stand by.
        var (action, observation) = Self.decide(held, "b", now: .seconds(100), observed: nil)
        #expect(action == .standby)
        // a renews: b's observation moves.
        held.renewTime = "T110"
        (action, observation) = Self.decide(held, "b", now: .seconds(110), observed: observation)
        #expect(action == .standby)
        #expect(observation.at == .seconds(110))
        // 14 s without change: still standby; 15 s: take over, one more transition.
        (action, _) = Self.decide(held, "b", now: .seconds(124), observed: observation)
        #expect(action == .standby)
        (action, _) = Self.decide(held, "b", now: .seconds(125), observed: observation)
        guard case .update(let taken) = action else { Issue.record("expected update"); return }
        #expect(taken.holderIdentity == "b")
        #expect(taken.leaseTransitions == 1)
        #expect(taken.resourceVersion == "1")
        // The holder renews its own lease without a transition; a released lease is taken at once.
        let (renew, _) = Self.decide(held, "a", now: .seconds(111), observed: nil)
        guard case .update(let renewed) = renew else { Issue.record("expected renew"); return }
        #expect(renewed.leaseTransitions == 0)
        var released = held
        released.holderIdentity = ""
        guard case .update = Self.decide(released, "b", now: .seconds(111), observed: nil).0 else { Issue.record("expected take"); return }
    }

    @Test("leader election over the API: one leader; the standby takes over when the leader stops renewing")
    func leaderElectionFailover() async throws {
        let api = InMemoryKubernetesAPI()
        var shortTiming = LeaderElector.Timing()
        shortTiming.leaseDuration = .milliseconds(1500)
        shortTiming.renewDeadline = .milliseconds(1000)
        shortTiming.retryPeriod = .milliseconds(100)
        let leading = Locked<[String: Bool]>([:])
        let timing = shortTiming
        let elector: @Sendable (String) -> LeaderElector = { id in
            LeaderElector(
                client: api, namespace: "ns", name: "lease", identity: id, timing: timing,
                monotonicNow: { ContinuousClock.now - SyncControllerPartsTests.origin },
                wallTime: { "\(ContinuousClock.now - SyncControllerPartsTests.origin)" }
            )
        }
        // Each candidate's logger is labelled with its identity, so the API's record of lease reads tells them apart.
        let logger: @Sendable (String) -> Logger = { Logger(label: $0, factory: { _ in SwiftLogNoOpLogHandler() }) }
        let a = Task {
            await elector("a").run(logger: logger("a")) {
                leading.withLock { $0["a"] = true }
                while !Task.isCancelled { try? await Task.sleep(for: .milliseconds(10)) }
                leading.withLock { $0["a"] = false }
            }
        }
        try await eventually("a leads") { leading.withLock { $0["a"] == true } }
        let b = Task {
            await elector("b").run(logger: logger("b")) {
                leading.withLock { $0["b"] = true }
                while !Task.isCancelled { try? await Task.sleep(for: .milliseconds(10)) }
                leading.withLock { $0["b"] = false }
            }
        }
        // b had its chance: it read the lease a holds three times (a standby decides on each read).
        try await eventually("b read the lease three times") { api.calls([.getLease], loggedAs: "b").count >= 3 }
        #expect(api.storedLease(namespace: "ns", name: "lease")?.holderIdentity == "a")
        #expect(leading.withLock { $0["b"] } == nil)
        // The API refuses a's renewals (and b's reads): a stops leading before its lease expires.
        api.fail(.leases, with: .unavailable("partition"))
        try await eventually("a stepped down") { leading.withLock { $0["a"] == false } }
        api.fail(.leases, with: nil)
        a.cancel()
        await a.value
        try await eventually("b leads") { leading.withLock { $0["b"] == true } }
        #expect(api.storedLease(namespace: "ns", name: "lease")?.holderIdentity == "b")
        b.cancel()
        await b.value
        #expect(api.storedLease(namespace: "ns", name: "lease")?.holderIdentity == "")
    }

    static let origin = ContinuousClock.now
}

/// A value behind a lock that closures can share.
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    func withLock<T: Sendable>(_ body: (inout Value) -> T) -> T { mutex.withLock { body(&$0) } }
}

@Suite("Sync controller: restoring a Secret", .timeLimit(.minutes(3)))
struct SecretRestoreTests {
    @Test("a deleted Secret is restored while its class exists, not once the class is gone or was replaced")
    func restoreChecksTheClassFirst() async throws {
        let api = InMemoryKubernetesAPI()
        let tokens = ServiceAccountTokenCache(client: api, nowSeconds: { 1_800_000_000 })
        let step = SecretProviderClassSyncStep(
            kubernetes: api,
            providers: FixedProviderDirectory([:]),
            tokens: tokens,
            audiences: .init { _ async throws(KubernetesClientError) in [] }
        )
        api.add(SyncControllerTests.spc())
        let spc = try #require(api.storedClass(namespace: SyncControllerTests.namespace, name: "db"))
        let desired = [
            KubernetesSecret(
                namespace: SyncControllerTests.namespace, name: "db-secret", type: "Opaque", data: ["pw": Array("v".utf8)],
                labels: ["secrets-store.csi.k8s.io/managed": "true"], ownerReferences: [SecretProviderClassSyncStep.owner(of: spc)]
            )
        ]
        let logger = Logger(label: "test")
        let key = "\(SyncControllerTests.namespace)/db-secret"

        // A replaced class (same name, another uid): the Secret belonged to the old one.
        var replaced = spc
        replaced.uid = "uid-of-the-deleted-class"
        let skipped = await step.restore(desired, of: replaced, logger: logger)
        #expect(skipped.written.isEmpty && skipped.failure == nil)
        #expect(api.secrets[key] == nil)

        let restored = await step.restore(desired, of: spc, logger: logger)
        #expect(restored.written == ["db-secret"] && restored.failure == nil)
        #expect(api.secrets[key]?.data == ["pw": Array("v".utf8)])

        api.removeSecret(namespace: SyncControllerTests.namespace, name: "db-secret")
        api.deleteClass(namespace: SyncControllerTests.namespace, name: "db")
        let gone = await step.restore(desired, of: spc, logger: logger)
        #expect(gone.written.isEmpty && gone.failure == nil)
        #expect(api.secrets[key] == nil)
    }
}
