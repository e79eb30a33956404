import CSIProtocol
import Foundation
import GRPCCore
import KeyVaultEmulator
import SecretsStoreAzure
import SecretsStoreCore
import SecretsStoreCoreTesting
import SecretsStoreLinux
import SecretsStoreTesting
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The production assembly with the built-in Azure provider against the emulator and the fake API server:
/// optional objects, a second vault, `kubernetes.io/tls` from a PFX object, and Secret sync that puts back a
/// deleted or edited Secret at the next rotation cycle.
@Suite("Azure object features and reconciling sync end to end", .serialized, .timeLimit(.minutes(3)))
struct AzureObjectsAndSyncEndToEndTests {
    static let tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
    static let spcs = "/apis/secrets-store.csi.x-k8s.io/v1/namespaces/ns/secretproviderclasses"
    static let secretPath = "/api/v1/namespaces/ns/secrets/db"

    static let objects = """
        array:
          - |
            objectName: db-pass
            objectType: secret
          - |
            objectName: web
            objectType: secret
            objectFormat: pfx
            objectEncoding: base64
            objectAlias: web.pfx
          - |
            objectName: later
            objectType: secret
            optional: true
          - |
            objectName: extra
            objectType: secret
            keyvaultName: kv2
        """

    static func secretObjects(dbKey: String = "password") -> [[String: Any]] {
        [
            ["secretName": "db", "type": "Opaque", "data": [["objectName": "db-pass", "key": dbKey], ["objectName": "later", "key": "later"]]],
            ["secretName": "web-tls", "type": "kubernetes.io/tls", "data": [["objectName": "web.pfx", "key": "tls.crt"], ["objectName": "web.pfx", "key": "tls.key"]]],
        ]
    }

    static func seedSPC(_ driver: DriverHarness, dbKey: String = "password") {
        driver.api.seed(
            path: spcs,
            object: [
                "metadata": ["name": "spc"],
                "spec": [
                    "provider": "azure",
                    "parameters": ["keyvaultName": "kv1", "tenantId": tenant, "objects": objects],
                    "secretObjects": secretObjects(dbKey: dbKey),
                ],
            ]
        )
    }

    /// The decoded `data` of a Secret in the fake API server.
    static func data(_ driver: DriverHarness, _ path: String) -> [String: String]? {
        guard let object = driver.api.object(at: path), let data = object["data"] as? [String: String] else { return nil }
        return data.compactMapValues { Data(base64Encoded: $0).map { String(decoding: $0, as: UTF8.self) } }
    }

    /// Reasons of the events the driver posted so far.
    static func eventReasons(_ driver: DriverHarness) -> [String] {
        driver.api.requests.filter { $0.method == "POST" && $0.path.hasSuffix("/events") }.compactMap { request in
            (try? JSONSerialization.jsonObject(with: Data(request.body.utf8)) as? [String: Any])?["reason"] as? String
        }
    }

    /// A request to the fake API server as someone else (a person with kubectl) would send it.
    static func send(_ method: String, _ url: String, token: String) throws -> Int {
        let parts = url.dropFirst("http://".count).split(separator: "/", maxSplits: 1)
        let hostPort = parts[0].split(separator: ":")
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(socket) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(hostPort[1])!).bigEndian
        inet_pton(AF_INET, String(hostPort[0]), &address.sin_addr)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw CocoaError(.fileReadNoPermission) }
        let request = "\(method) /\(parts.count > 1 ? parts[1] : "") HTTP/1.1\r\nHost: \(parts[0])\r\nAuthorization: Bearer \(token)\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        _ = request.withCString { Glibc.send(socket, $0, strlen($0), 0) }
        var response = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        for _ in 0..<1000 {
            let count = recv(socket, &buffer, buffer.count, 0)
            if count <= 0 { break }
            response += buffer[0..<count]
        }
        return Int(String(decoding: response, as: UTF8.self).split(separator: " ").dropFirst().first ?? "") ?? 0
    }

    @Test("optional and second-vault objects, tls from a PFX, and a deleted or edited Secret put back by the next rotation")
    func objectsAndReconcilingSync() async throws {
        let chain = try TestCertificateChain.make()
        try await withKeyVaultEmulator(
            seed: EmulatorSeed(
                tenantID: Self.tenant,
                clients: [.init(clientID: "sp", secret: "sp-secret")],
                vaults: [
                    "kv1": .init(
                        secrets: ["db-pass": [.init(value: "DB-SENTINEL-one")]],
                        certificates: ["web": [.init(pkcs12: try chain.pkcs12Base64(certificates: [chain.leaf, chain.intermediate, chain.root]))]]
                    ),
                    "kv2": .init(secrets: ["extra": [.init(value: "from-kv2")]]),
                ]
            )
        ) { emulator, http in
        try await withDriver(rotation: RotationPolicy(enabled: true, interval: .milliseconds(1)), builtIn: ["azure": emulator.azureProvider(http: http)], syncSecrets: true) { driver in
            Self.seedSPC(driver)
            driver.api.seed(path: "/api/v1/namespaces/ns/pods", object: ["metadata": ["name": "web-0", "uid": "uid-1"]])
            _ = try await driver.node.nodePublishVolume(driver.publishRequest(secrets: ["clientid": "sp", "clientsecret": "sp-secret"]))
            let target = driver.targetPath()
            let fileSystem = PosixFileSystem()
            func rotate() async throws -> NodePublisher.PublishOutcome? {
                try await Task.sleep(for: .milliseconds(5))
                return await driver.publisher.rotate(logger: driver.logs.logger())[target]
            }

            // The optional object is not there: no file, no key, one warning; the second vault's object is.
            #expect(try fileSystem.contentsOfDirectory(at: target).filter { !$0.hasPrefix("..") }.sorted() == ["db-pass", "extra", "web.pfx"])
            #expect(try fileSystem.readFile(at: target + "/extra") == Array("from-kv2".utf8))
            #expect(Self.data(driver, Self.secretPath) == ["password": "DB-SENTINEL-one"])
            #expect(Self.eventReasons(driver).filter { $0 == PodEvent.optionalObjectsMissing }.count == 1)
            let status = try #require(driver.api.object(at: DriverHarness.statusPath + "/web-0-ns-spc"))
            let ids = ((status["status"] as? [String: Any])?["objects"] as? [[String: String]])?.compactMap { $0["id"] }
            #expect(ids == ["kv2/secret/extra", "secret/db-pass", "secret/web"])

            // kubernetes.io/tls from the PFX: the chain as stored and the EC key in SEC 1, as upstream writes them.
            let tls = try #require(Self.data(driver, "/api/v1/namespaces/ns/secrets/web-tls"))
            #expect(tls["tls.crt"] == [chain.leaf, chain.intermediate, chain.root].map { PEM.encode(type: "CERTIFICATE", der: $0) }.joined())
            #expect(tls["tls.key"]?.hasPrefix("-----BEGIN EC PRIVATE KEY-----\n") == true)

            // A refresh that finds everything as it should be writes nothing and says nothing.
            let writesBefore = driver.api.requests.filter { $0.method != "GET" && $0.path.contains("/secrets") }.count
            #expect(try await rotate() == .refreshed(changed: false))
            #expect(driver.api.requests.filter { $0.method != "GET" && $0.path.contains("/secrets") }.count == writesBefore)
            #expect(!Self.eventReasons(driver).contains(PodEvent.secretRotationComplete))
            #expect(Self.eventReasons(driver).filter { $0 == PodEvent.optionalObjectsMissing }.count == 1)

            // Someone deletes the Secret: the next cycle creates it again.
            #expect(try Self.send("DELETE", driver.api.url + Self.secretPath, token: "driver-token") == 200)
            #expect(driver.api.object(at: Self.secretPath) == nil)
            #expect(try await rotate() == .refreshed(changed: false))
            #expect(Self.data(driver, Self.secretPath) == ["password": "DB-SENTINEL-one"])

            // Someone edits a key: the next cycle puts the value back.
            var edited = try #require(driver.api.object(at: Self.secretPath))
            edited["data"] = ["password": Data("tampered".utf8).base64EncodedString()]
            driver.api.seed(path: "/api/v1/namespaces/ns/secrets", object: edited)
            #expect(Self.data(driver, Self.secretPath) == ["password": "tampered"])
            #expect(try await rotate() == .refreshed(changed: false))
            #expect(Self.data(driver, Self.secretPath) == ["password": "DB-SENTINEL-one"])
            #expect(Self.eventReasons(driver).filter { $0 == PodEvent.secretRotationComplete }.count == 2)

            // The optional object appears: the next cycle writes its file and its key.
            emulator.setSecret(vault: "kv1", name: "later", value: "LATER-SENTINEL")
            #expect(try await rotate() == .refreshed(changed: true))
            #expect(try fileSystem.readFile(at: target + "/later") == Array("LATER-SENTINEL".utf8))
            #expect(Self.data(driver, Self.secretPath) == ["password": "DB-SENTINEL-one", "later": "LATER-SENTINEL"])

            // The SecretProviderClass's secretObjects change: applied at the next cycle.
            Self.seedSPC(driver, dbKey: "db-password")
            #expect(try await rotate() == .refreshed(changed: false))
            #expect(Self.data(driver, Self.secretPath) == ["db-password": "DB-SENTINEL-one", "later": "LATER-SENTINEL"])

            for line in driver.logs.all {
                #expect(!line.contains("DB-SENTINEL") && !line.contains("LATER-SENTINEL") && !line.contains("PRIVATE KEY"))
            }
            for request in driver.api.requests where request.path.hasSuffix("/events") {
                #expect(!request.body.contains("DB-SENTINEL") && !request.body.contains("LATER-SENTINEL"))
            }
            _ = try await driver.node.nodeUnpublishVolume(driver.unpublishRequest())
        }
        }
    }
}
