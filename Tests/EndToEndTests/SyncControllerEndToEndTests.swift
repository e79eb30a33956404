import Foundation
import KeyVaultEmulator
import Logging
import SecretsStoreAzure
import SecretsStoreCore
import SecretsStoreCoreTesting
import SecretsStoreApplication
import SecretsStoreKubernetes
import SecretsStoreTesting
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The sync controller as it ships: ``ControllerAssembly`` (and the `controller` subcommand of the real
/// binary) against the fake API server over HTTP (watch streams, TokenRequest, status subresource, Leases,
/// garbage collection) and the Key Vault emulator over HTTPS, with workload identity from TokenRequest.
@Suite("Sync controller end to end", .serialized, .timeLimit(.minutes(3)))
struct SyncControllerEndToEndTests {
    static let tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
    static let namespace = "apps"
    static let spcs = "/apis/secrets-store.csi.x-k8s.io/v1/namespaces/apps/secretproviderclasses"
    static let secretPath = "/api/v1/namespaces/apps/secrets/db"

    /// Tokens the fake API server issued, to prove none is logged.
    final class IssuedTokens: Sendable {
        let tokens = Mutex<[String]>([])
        var all: [String] { tokens.withLock { $0 } }
    }

    struct World {
        var emulator: KeyVaultEmulator
        var api: FakeKubernetesAPIServer
        var issued: IssuedTokens
        var root: String
    }

    static func withWorld(_ body: (World) async throws -> Void) async throws {
        let emulator = try await KeyVaultEmulator(
            seed: EmulatorSeed(
                tenantID: tenant,
                clients: [.init(clientID: "wi-app", federated: [.init(subject: "system:serviceaccount:apps:app", audience: "api://AzureADTokenExchange")])],
                vaults: ["kv1": .init(secrets: ["db-pass": [.init(value: "first-password")]])]
            )
        )
        let issued = IssuedTokens()
        let api = try await FakeKubernetesAPIServer(tokenIssuer: { namespace, serviceAccount, audiences, seconds in
            let token = ServiceAccountToken.make(
                subject: "system:serviceaccount:\(namespace):\(serviceAccount)",
                audience: audiences.first ?? "",
                expiresIn: TimeInterval(seconds)
            )
            issued.tokens.withLock { $0.append(token) }
            return token
        })
        api.seed(path: "/api/v1/namespaces/apps/serviceaccounts", object: ["metadata": ["name": "app"]])
        api.seed(
            path: "/apis/storage.k8s.io/v1/csidrivers",
            object: ["metadata": ["name": "secrets-store.csi.k8s.io"], "spec": ["tokenRequests": [["audience": "api://AzureADTokenExchange"]]]]
        )
        let root = NSTemporaryDirectory() + "sync-controller-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        try emulator.certificates.caCertificatePEM.write(toFile: root + "/ca.pem", atomically: true, encoding: .utf8)
        do {
            try await body(World(emulator: emulator, api: api, issued: issued, root: root))
        } catch {
            try? await api.shutdown()
            try? await emulator.shutdown()
            try? FileManager.default.removeItem(atPath: root)
            throw error
        }
        try await api.shutdown()
        try await emulator.shutdown()
        try? FileManager.default.removeItem(atPath: root)
    }

    static func spc(name: String = "db", sync: [String: Any] = ["serviceAccountName": "app"], refreshInterval: String? = "5s") -> [String: Any] {
        var spec: [String: Any] = [
            "provider": "azure",
            "parameters": [
                "clientID": "wi-app", "keyvaultName": "kv1", "tenantId": tenant,
                "objects": "array:\n  - |\n    objectName: db-pass\n    objectType: secret\n",
            ],
            "secretObjects": [["secretName": name, "type": "Opaque", "labels": ["app": "db"], "data": [["objectName": "db-pass", "key": "password"]]]],
            "sync": sync,
        ]
        if let refreshInterval { spec["refreshInterval"] = refreshInterval }
        return ["apiVersion": "secrets-store.csi.x-k8s.io/v1", "kind": "SecretProviderClass", "metadata": ["name": name], "spec": spec]
    }

    static func configuration(_ world: World, leaderElection: ControllerConfiguration.LeaderElection?) -> ControllerConfiguration {
        ControllerConfiguration(
            kubernetes: .configuration(KubernetesConfiguration(server: world.api.url)),
            providerDirectories: [world.root + "/providers"],
            builtInAzure: .init(
                overrides: AzureEndpointOverrides(
                    keyVaultURLTemplate: world.emulator.baseURL + "/{vault}",
                    authorityHost: world.emulator.baseURL + "/",
                    caBundlePEM: Array(world.emulator.certificates.caCertificatePEM.utf8)
                )
            ),
            defaultInterval: .seconds(3600),
            namespace: nil,
            driverName: "secrets-store.csi.k8s.io",
            tokenAudiences: nil,
            leaderElection: leaderElection,
            metricsAddress: "127.0.0.1:0"
        )
    }

    /// Runs the assembly in this process while `body` runs.
    static func withController(_ world: World, logs: LogCapture, _ body: () async throws -> Void) async throws {
        let assembly = try await ControllerAssembly(
            configuration: configuration(world, leaderElection: .init(namespace: "kube-system", name: "secrets-store-csi-driver-controller")),
            logger: logs.logger(level: .trace)
        )
        try await assembly.withRunning { _ in try await body() }
    }

    static func password(_ api: FakeKubernetesAPIServer, _ path: String = secretPath) -> String? {
        guard let data = api.object(at: path)?["data"] as? [String: String], let encoded = data["password"],
            let bytes = Data(base64Encoded: encoded)
        else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func ready(_ api: FakeKubernetesAPIServer, _ name: String = "db") -> [String: Any]? {
        let status = api.object(at: spcs + "/" + name)?["status"] as? [String: Any]
        return (status?["conditions"] as? [[String: Any]])?.first { $0["type"] as? String == "Ready" }
    }

    @Test("Secret with no pod; status; refresh after a vault change; a deleted Secret restored; SPC deletion collects it; no token or value logged")
    func lifecycle() async throws {
        let logs = LogCapture()
        try await Self.withWorld { world in
            let api = world.api
            try await Self.withController(world, logs: logs) {
                api.seed(path: Self.spcs, object: Self.spc())
                try await eventually("secret synced", within: .seconds(30)) { Self.password(api) == "first-password" }
                let secret = try #require(api.object(at: Self.secretPath))
                let metadata = try #require(secret["metadata"] as? [String: Any])
                let labels = try #require(metadata["labels"] as? [String: String])
                #expect(labels == ["app": "db", "secrets-store.csi.k8s.io/managed": "true"])
                let owners = try #require(metadata["ownerReferences"] as? [[String: Any]])
                #expect(owners.first?["kind"] as? String == "SecretProviderClass")
                #expect(owners.first?["apiVersion"] as? String == "secrets-store.csi.x-k8s.io/v1")
                // Nothing was published: no pod status exists.
                #expect(!api.requests.contains { $0.path.contains("secretproviderclasspodstatuses") })

                try await eventually("status Ready", within: .seconds(30)) { Self.ready(api)?["status"] as? String == "True" }
                let ready = try #require(Self.ready(api))
                #expect(ready["reason"] as? String == "Synced")
                #expect(ready["observedGeneration"] as? Int == 1)
                let status = try #require(api.object(at: Self.spcs + "/db")?["status"] as? [String: Any])
                #expect(status["syncedSecrets"] as? [String] == ["db"])
                #expect((status["objects"] as? [[String: Any]])?.count == 1)
                #expect(status["lastSyncTime"] is String)
                // The status went through the subresource: the spec is as written.
                #expect(api.requests.contains { $0.path.hasSuffix("/secretproviderclasses/db/status") })

                // A new version in the vault reaches the Secret within refreshInterval (5 s).
                world.emulator.setSecret(vault: "kv1", name: "db-pass", value: "second-password")
                try await eventually("refreshed", within: .seconds(20)) { Self.password(api) == "second-password" }

                // A deleted Secret is put back (the controller watches managed Secrets).
                try await Self.delete(api, Self.secretPath)
                try await eventually("restored", within: .seconds(5)) { Self.password(api) == "second-password" }

                // Deleting the SPC garbage-collects its Secret.
                try await Self.delete(api, Self.spcs + "/db")
                try await eventually("collected", within: .seconds(30)) { api.object(at: Self.secretPath) == nil }
                // A later event on the same watch: another class's Secret deleted and restored. Once it is back,
                // the controller has seen the collected Secret's deletion (earlier on the Secret watch) and
                // worked what it queued before; the collected one stays gone.
                let later = "/api/v1/namespaces/apps/secrets/later"
                api.seed(path: Self.spcs, object: Self.spc(name: "later"))
                try await eventually("the later class synced", within: .seconds(30)) { Self.password(api, later) == "second-password" }
                try await Self.delete(api, later)
                try await eventually("the later Secret restored", within: .seconds(5)) { Self.password(api, later) == "second-password" }
                #expect(api.object(at: Self.secretPath) == nil)
            }
            #expect(!world.issued.all.isEmpty)
            for line in logs.all {
                for token in world.issued.all { #expect(!line.contains(token)) }
                #expect(!line.contains("first-password") && !line.contains("second-password"))
            }
        }
    }

    @Test("bad input: Ready=False with a reason naming the field, and no Secret")
    func badInput() async throws {
        let logs = LogCapture()
        try await Self.withWorld { world in
            let api = world.api
            try await Self.withController(world, logs: logs) {
                api.seed(path: Self.spcs, object: Self.spc(name: "nosa", sync: [:]))
                api.seed(path: Self.spcs, object: Self.spc(name: "missing", sync: ["serviceAccountName": "ghost"]))
                api.seed(path: Self.spcs, object: Self.spc(name: "noref", sync: ["serviceAccountName": "app", "nodePublishSecretRef": ["name": "absent"]]))
                api.seed(path: Self.spcs, object: Self.spc(name: "fast", refreshInterval: "1s"))
                let expected = [
                    "nosa": ("InvalidSpec", "spec.sync.serviceAccountName"),
                    "missing": ("TokenRequestFailed", "spec.sync.serviceAccountName"),
                    "noref": ("InvalidSpec", "spec.sync.nodePublishSecretRef.name"),
                    "fast": ("InvalidSpec", "spec.refreshInterval"),
                ]
                for (name, (reason, field)) in expected {
                    try await eventually("status of \(name)", within: .seconds(30)) { Self.ready(api, name) != nil }
                    let ready = try #require(Self.ready(api, name))
                    #expect(ready["status"] as? String == "False", "\(name)")
                    #expect(ready["reason"] as? String == reason, "\(name)")
                    #expect((ready["message"] as? String)?.contains(field) == true, "\(name): \(ready["message"] ?? "")")
                    #expect(api.object(at: "/api/v1/namespaces/apps/secrets/\(name)") == nil)
                }
                #expect(world.emulator.keyVaultRequestCount == 0)
            }
        }
    }

    static func delete(_ api: FakeKubernetesAPIServer, _ path: String) async throws {
        let status = try await blocking { try AzureObjectsAndSyncEndToEndTests.send("DELETE", api.url + path, token: "t") }
        #expect(status == 200)
    }

    // MARK: Two processes, one leader

    /// The built binary (next to the test bundle).
    static var binary: String { DriverProcessTests.binary }

    static func startController(_ world: World, kubeconfig: String, log: String) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = [
            "controller", "--kubeconfig=" + kubeconfig, "--leader-elect=true", "--leader-election-namespace=kube-system",
            "--provider-volume=" + world.root + "/providers", "--metrics-addr=127.0.0.1:0", "--log-format-json=true",
            "--azure-keyvault-url-template=" + world.emulator.baseURL + "/{vault}",
            "--azure-authority-host=" + world.emulator.baseURL + "/", "--azure-ca-bundle=" + world.root + "/ca.pem",
        ]
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.standardError = process.standardOutput
        try process.run()
        return process
    }

    static func holder(_ api: FakeKubernetesAPIServer) -> String? {
        (api.object(at: "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/secrets-store-csi-driver-controller")?["spec"]
            as? [String: Any])?["holderIdentity"] as? String
    }

    @Test("two controller processes: one leader writes; after SIGKILL of the leader the other takes over")
    func leaderFailover() async throws {
        try await Self.withWorld { world in
            let api = world.api
            let kubeconfig = try DriverProcessTests.kubeconfig(server: api.url, in: world.root)
            let first = try Self.startController(world, kubeconfig: kubeconfig, log: world.root + "/first.log")
            // On a failure: SIGKILL, and no wait (a defer cannot await, and a blocking wait would hold one of the
            // two cooperative threads); the process ends at once and Foundation reaps it.
            defer { if first.isRunning { kill(first.processIdentifier, SIGKILL) } }
            try await eventually("first leads", within: .seconds(30)) { Self.holder(api) != nil }
            let firstHolder = try #require(Self.holder(api))
            // The second process has its own token, so the API server's record tells its requests apart.
            let secondKubeconfig = try DriverProcessTests.kubeconfig(server: api.url, in: world.root, token: "second-token")
            let second = try Self.startController(world, kubeconfig: secondKubeconfig, log: world.root + "/second.log")
            defer { if second.isRunning { kill(second.processIdentifier, SIGKILL) } }  // on a failure, as `first`
            api.seed(path: Self.spcs, object: Self.spc())
            try await eventually("synced by the leader", within: .seconds(30)) { Self.password(api) == "first-password" }
            // The standby had its chance: it read the lease again after the class was synced (every 2 s).
            func secondLeaseReads() -> Int {
                api.requests.filter { $0.authorization == "Bearer second-token" && $0.method == "GET" && $0.path.contains("/leases/") }.count
            }
            let readsBefore = secondLeaseReads()
            try await eventually("the standby reading the lease", within: .seconds(10)) { secondLeaseReads() > readsBefore }
            #expect(Self.holder(api) == firstHolder)
            let secondLog = try String(contentsOfFile: world.root + "/second.log", encoding: .utf8)
            #expect(!secondLog.contains("secret provider class synced"))

            kill(first.processIdentifier, SIGKILL)
            try await onOwnThread { first.waitUntilExit() }
            let killed = ContinuousClock.now
            try await eventually("second leads", within: .seconds(40)) { (Self.holder(api) ?? firstHolder) != firstHolder }
            let takeover = ContinuousClock.now - killed
            print("leader takeover after SIGKILL: \(takeover) (lease 15 s + retry 2 s)")
            // The new leader does the work: a vault change reaches the Secret through it.
            world.emulator.setSecret(vault: "kv1", name: "db-pass", value: "after-failover")
            try await Self.delete(api, Self.secretPath)
            try await eventually("new leader restores and refreshes", within: .seconds(30)) { Self.password(api) == "after-failover" }
            try await terminateAndWait(second)  // SIGTERM, bounded
            #expect(second.terminationStatus == 0)
            let log = try String(contentsOfFile: world.root + "/second.log", encoding: .utf8)
            #expect(log.contains("became leader"))
            #expect(log.contains("released the lease"))
            for token in world.issued.all { #expect(!log.contains(token)) }
        }
    }
}
