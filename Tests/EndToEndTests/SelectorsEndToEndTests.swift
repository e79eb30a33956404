import CSIProtocol
import Foundation
import GRPCCore
import KeyVaultEmulator
import SecretsStoreApplication
import SecretsStoreAzure
import SecretsStoreCore
import SecretsStoreCoreTesting
import SecretsStoreLinux
import SecretsStoreTesting
import Testing

/// Issue 24's three features together, through the real CSI server with the built-in Azure provider against the
/// Key Vault emulator, and through the sync controller: a selector (`objectNameRegex` + `objectTags`) over a
/// 50-match vault, `objectJSONFields`, `fileTemplates` and a templated Secret key; what a refresh costs in Key
/// Vault requests; a match that appears or vanishes between refreshes.
@Suite("Selectors, JSON fields and templates end to end", .serialized, .timeLimit(.minutes(3)))
struct SelectorsEndToEndTests {
    static let tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
    static let spcs = "/apis/secrets-store.csi.x-k8s.io/v1/namespaces/ns/secretproviderclasses"
    static let secretPath = "/api/v1/namespaces/ns/secrets/db"

    static let objects = """
        array:
          - |
            objectType: secret
            objectNameRegex: "^db-"
            objectTags: "env=prod"
            filePermission: "0440"
          - |
            objectName: creds
            objectType: secret
            objectJSONFields: "username,password:db-password,conn.host"
        """

    /// 50 `db-NN` secrets tagged env=prod, one tagged env=dev, five others, and the JSON secret `creds`: 58
    /// secrets, three pages of the list.
    static func seed() -> EmulatorSeed {
        var secrets: [String: [EmulatorSeed.SecretVersion]] = [:]
        for index in 0..<50 {
            secrets[String(format: "db-%02d", index)] = [.init(value: "DBVALUE-SENTINEL-\(index)", tags: ["env": "prod", "team": "web"])]
        }
        secrets["db-dev"] = [.init(value: "DBVALUE-SENTINEL-dev", tags: ["env": "dev"])]
        for index in 0..<5 { secrets["other-\(index)"] = [.init(value: "other", tags: ["env": "prod"])] }
        secrets["creds"] = [.init(value: #"{"username":"app","password":"PW-SENTINEL","conn":{"host":"db.internal","port":5432}}"#)]
        return EmulatorSeed(tenantID: tenant, clients: [.init(clientID: "sp", secret: "sp-secret")], vaults: ["kv1": .init(secrets: secrets)])
    }

    static func seedSPC(_ driver: DriverHarness) {
        driver.api.seed(
            path: spcs,
            object: [
                "metadata": ["name": "spc"],
                "spec": [
                    "provider": "azure",
                    "parameters": [
                        "keyvaultName": "kv1", "tenantId": tenant, "objects": objects, "maxSelectedObjects": "60",
                        "fileTemplates": "dsn: \"postgres://{{username}}:{{db-password}}@{{host}}/app?first={{db-07}}\"\n",
                    ],
                    "secretObjects": [
                        [
                            "secretName": "db", "type": "Opaque",
                            "data": [
                                ["key": "url", "template": "postgres://{{username}}:{{db-password}}@{{host}}"],
                                ["key": "seven", "objectName": "db-07"],
                                ["key": "dsn", "objectName": "dsn"],
                            ],
                        ]
                    ],
                ],
            ]
        )
    }

    /// GETs of single `db-*` secrets the emulator served since its counters were reset.
    static func selectedReads(_ emulator: KeyVaultEmulator) -> Int {
        emulator.requestCounts.filter { $0.key.hasPrefix("GET /kv1/secrets/db-") }.values.reduce(0, +)
    }

    static func names(_ target: String) throws -> [String] {
        try PosixFileSystem().contentsOfDirectory(at: target).filter { !$0.hasPrefix("..") }.sorted()
    }

    @Test("node: 50 selected files, JSON fields and a composed file; a refresh with one change costs the pages and one read")
    func nodeSelectsExtractsAndComposes() async throws {
        try await withKeyVaultEmulator(seed: Self.seed()) { emulator, http in
        try await withDriver(rotation: RotationPolicy(enabled: true, interval: .milliseconds(1)), builtIn: ["azure": emulator.azureProvider(http: http)], syncSecrets: true) { driver in
            Self.seedSPC(driver)
            driver.api.seed(path: "/api/v1/namespaces/ns/pods", object: ["metadata": ["name": "web-0", "uid": "uid-1"]])
            let credentials = ["clientid": "sp", "clientsecret": "sp-secret"]
            _ = try await driver.node.nodePublishVolume(driver.publishRequest(secrets: credentials))
            let target = driver.targetPath()
            let fileSystem = PosixFileSystem()

            // The 50 prod matches (not db-dev, not other-*), the three fields (not creds itself) and dsn.
            let expected = (0..<50).map { String(format: "db-%02d", $0) } + ["db-password", "dsn", "host", "username"]
            #expect(try Self.names(target) == expected.sorted())
            #expect(try fileSystem.readFile(at: target + "/db-07") == Array("DBVALUE-SENTINEL-7".utf8))
            #expect(try fileSystem.readFile(at: target + "/dsn") == Array("postgres://app:PW-SENTINEL@db.internal/app?first=DBVALUE-SENTINEL-7".utf8))
            let data = try #require(AzureObjectsAndSyncEndToEndTests.data(driver, Self.secretPath))
            #expect(data["url"] == "postgres://app:PW-SENTINEL@db.internal")
            #expect(data["seven"] == "DBVALUE-SENTINEL-7")
            let status = try #require(driver.api.object(at: DriverHarness.statusPath + "/web-0-ns-spc"))
            let ids = ((status["status"] as? [String: Any])?["objects"] as? [[String: String]])?.compactMap { $0["id"] } ?? []
            #expect(ids.count == 51 && ids.contains("secret/db-49") && ids.contains("secret/creds"))
            #expect(emulator.requestCount(.getSecrets, vault: "kv1") == 3)
            #expect(Self.selectedReads(emulator) == 50)

            // One match changes: the refresh lists three pages and reads that one secret again, not the fifty.
            emulator.resetCounters()
            _ = emulator.setSecret(vault: "kv1", name: "db-07", value: "DBVALUE-SENTINEL-7b", tags: ["env": "prod"])
            try await Task.sleep(for: .milliseconds(5))
            #expect(await driver.publisher.rotate(logger: driver.logs.logger())[target] == .refreshed(changed: true))
            #expect(emulator.requestCount(.getSecrets, vault: "kv1") == 3)
            #expect(Self.selectedReads(emulator) == 1)
            #expect(try fileSystem.readFile(at: target + "/db-07") == Array("DBVALUE-SENTINEL-7b".utf8))
            #expect(try fileSystem.readFile(at: target + "/dsn") == Array("postgres://app:PW-SENTINEL@db.internal/app?first=DBVALUE-SENTINEL-7b".utf8))
            #expect(AzureObjectsAndSyncEndToEndTests.data(driver, Self.secretPath)?["seven"] == "DBVALUE-SENTINEL-7b")

            // A new match appears and one leaves (disabled), in the same swap.
            emulator.resetCounters()
            _ = emulator.setSecret(vault: "kv1", name: "db-new", value: "DBVALUE-SENTINEL-new", tags: ["env": "prod"])
            emulator.setSecretEnabled(vault: "kv1", name: "db-03", enabled: false)
            try await Task.sleep(for: .milliseconds(5))
            #expect(await driver.publisher.rotate(logger: driver.logs.logger())[target] == .refreshed(changed: true))
            let names = try Self.names(target)
            #expect(names.contains("db-new") && !names.contains("db-03") && names.count == expected.count)
            #expect(Self.selectedReads(emulator) == 1)

            // A second pod of the class on the node: its matches come from what the node already read.
            emulator.resetCounters()
            driver.api.seed(path: "/api/v1/namespaces/ns/pods", object: ["metadata": ["name": "web-1", "uid": "uid-2"]])
            let second = driver.targetPath(podUID: "uid-2")
            _ = try await driver.node.nodePublishVolume(
                driver.publishRequest(target: second, extraContext: ["csi.storage.k8s.io/pod.name": "web-1", "csi.storage.k8s.io/pod.uid": "uid-2"], secrets: credentials)
            )
            #expect(try Self.names(second) == names)
            #expect(Self.selectedReads(emulator) == 0)

            for line in driver.logs.all {
                #expect(!line.contains("SENTINEL"), "\(line)")
            }
            for request in driver.api.requests where request.path.hasSuffix("/events") {
                #expect(!request.body.contains("SENTINEL"))
            }
            _ = try await driver.node.nodeUnpublishVolume(driver.unpublishRequest(target: second))
            _ = try await driver.node.nodeUnpublishVolume(driver.unpublishRequest())
        }
        }
    }

    @Test("node: a missing JSON field, over the cap, and a list the identity may not read fail with the code and a message naming the field")
    func nodeRefusals() async throws {
        var seed = Self.seed()
        seed.clients?.append(.init(clientID: "reader", secret: "reader-secret"))
        seed.vaults?["kv1"]?.secretPermissions = ["reader": ["get"]]
        try await withKeyVaultEmulator(seed: seed) { emulator, http in
        let azure = emulator.azureProvider(http: http)
        let cases: [(objects: String, parameters: [String: String], clientID: String, code: RPCError.Code, text: String)] = [
            (
                "array:\n  - |\n    objectName: creds\n    objectType: secret\n    objectJSONFields: \"username,pasword\"\n", [:], "sp",
                .invalidArgument, "objectJSONFields: the secret's JSON has no field pasword"
            ),
            (
                "array:\n  - |\n    objectType: secret\n    objectNameRegex: \"^db-\"\n", ["maxSelectedObjects": "10"], "sp",
                .invalidArgument, "match 51 secrets, more than maxSelectedObjects (10)"
            ),
            (
                "array:\n  - |\n    objectType: secret\n    objectTags: \"env=prod\"\n", [:], "reader",
                .permissionDenied, "the identity needs the list permission on secrets"
            ),
        ]
        for (index, entry) in cases.enumerated() {
            try await withDriver(builtIn: ["azure": azure]) { driver in
                driver.api.seed(
                    path: Self.spcs,
                    object: [
                        "metadata": ["name": "spc"],
                        "spec": ["provider": "azure", "parameters": ["keyvaultName": "kv1", "tenantId": Self.tenant, "objects": entry.objects].merging(entry.parameters) { $1 }],
                    ]
                )
                do {
                    _ = try await driver.node.nodePublishVolume(driver.publishRequest(secrets: ["clientid": entry.clientID, "clientsecret": entry.clientID + "-secret"]))
                    Issue.record("case \(index): the publish succeeded")
                } catch let error as RPCError {
                    #expect(error.code == entry.code, "case \(index): \(error)")
                    #expect(error.message.contains(entry.text), "case \(index): \(error.message)")
                    #expect(!error.message.contains("SENTINEL"))
                }
                #expect(try await !driver.isMounted(driver.targetPath()))
                for line in driver.logs.all { #expect(!line.contains("SENTINEL"), "\(line)") }
            }
        }
        }
    }

    @Test("controller: a class with a selector, JSON fields and a template key gets its Secret with no pod; a wrong template is InvalidSpec")
    func controllerSyncsTemplatesOverSelections() async throws {
        let logs = LogCapture()
        try await SyncControllerEndToEndTests.withWorld { world in
            for index in 0..<3 {
                _ = world.emulator.setSecret(vault: "kv1", name: "app-\(index)", value: "APP-SENTINEL-\(index)", tags: ["env": "prod"])
            }
            _ = world.emulator.setSecret(vault: "kv1", name: "creds", value: #"{"username":"app","password":"PW-SENTINEL"}"#)
            func spc(name: String, template: String) -> [String: Any] {
                var spc = SyncControllerEndToEndTests.spc(name: name)
                var spec = spc["spec"] as! [String: Any]
                var parameters = spec["parameters"] as! [String: String]
                parameters["objects"] = """
                    array:
                      - |
                        objectType: secret
                        objectNameRegex: "^app-"
                      - |
                        objectName: creds
                        objectType: secret
                        objectJSONFields: "username,password"
                    """
                spec["parameters"] = parameters
                spec["secretObjects"] = [
                    ["secretName": name, "type": "Opaque", "data": [["key": "url", "template": template], ["key": "first", "objectName": "app-0"]]]
                ]
                spc["spec"] = spec
                return spc
            }
            let api = world.api
            try await SyncControllerEndToEndTests.withController(world, logs: logs) {
                api.seed(path: SyncControllerEndToEndTests.spcs, object: spc(name: "good", template: "{{username}}:{{password}}/{{app-2}}"))
                api.seed(path: SyncControllerEndToEndTests.spcs, object: spc(name: "bad", template: "{{username}}:{{pasword}}"))
                let goodPath = "/api/v1/namespaces/apps/secrets/good"
                try await eventually("the Secret good", within: .seconds(30)) { api.object(at: goodPath) != nil }
                let data = (api.object(at: goodPath)?["data"] as? [String: String] ?? [:]).compactMapValues {
                    Data(base64Encoded: $0).map { String(decoding: $0, as: UTF8.self) }
                }
                #expect(data == ["url": "app:PW-SENTINEL/APP-SENTINEL-2", "first": "APP-SENTINEL-0"])

                try await eventually("status of bad", within: .seconds(30)) { SyncControllerEndToEndTests.ready(api, "bad") != nil }
                let ready = try #require(SyncControllerEndToEndTests.ready(api, "bad"))
                #expect(ready["status"] as? String == "False")
                #expect(ready["reason"] as? String == "InvalidSpec")
                let message = ready["message"] as? String ?? ""
                #expect(message.contains("spec.secretObjects[bad].data[url]") && message.contains("pasword"), "\(message)")
                #expect(!message.contains("SENTINEL"))
                #expect(api.object(at: "/api/v1/namespaces/apps/secrets/bad") == nil)
            }
            for line in logs.all { #expect(!line.contains("SENTINEL"), "\(line)") }
        }
    }
}
