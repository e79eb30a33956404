import Crypto
import GRPCCore
import KeyVaultEmulator
import Logging
import SecretsStoreAzure
import SecretsStoreCore
import SecretsStoreCSI
import SecretsStoreCore
import SecretsStoreCoreTesting
import SecretsStoreTesting
import Testing
import _CryptoExtras

import Foundation

@Suite("Azure provider against the Key Vault emulator over HTTPS", .serialized, .timeLimit(.minutes(3)))
struct AzureProviderTests {
    @Test("the reference's worked example, byte for byte")
    func workedExample() async throws {
        try await AzureHarness.withHarness { (harness: AzureHarness) async throws in
            let request = harness.request()
            let response = try await harness.fetch(request)
            #expect(response.files.map(\.path) == ["DB_PASSWORD", "web", "tls.crt", "signing", "api-key/0", "api-key/1"])
            #expect(response.files.allSatisfy { $0.mode == 0o644 })
            #expect(response.objectVersions.map(\.id) == ["secret/db-pass", "secret/web", "cert/web", "key/signing", "secret/api-key/0", "secret/api-key/1"])

            #expect(String(decoding: response.files[0].contents, as: UTF8.self) == "s3cr3t-db-password")
            let chain = harness.chain
            let web = String(decoding: response.files[1].contents, as: UTF8.self)
            #expect(
                web == PEM.encode(type: "PRIVATE KEY", der: chain.leafKeyPKCS8) + PEM.encode(type: "CERTIFICATE", der: chain.leaf)
                    + PEM.encode(type: "CERTIFICATE", der: chain.intermediate) + PEM.encode(type: "CERTIFICATE", der: chain.root)
            )
            #expect(String(decoding: response.files[2].contents, as: UTF8.self) == PEM.encode(type: "CERTIFICATE", der: chain.leaf))
            let signing = String(decoding: response.files[3].contents, as: UTF8.self)
            let rsa = try _RSA.Signing.PublicKey(pemRepresentation: signing)
            #expect(base64URL(try rsa.getKeyPrimitives().modulus) == harness.signingJWK["n"])
            #expect(signing.hasPrefix("-----BEGIN PUBLIC KEY-----\n") && signing.hasSuffix("-----END PUBLIC KEY-----\n"))
            #expect(String(decoding: response.files[4].contents, as: UTF8.self) == "key-v3")
            #expect(String(decoding: response.files[5].contents, as: UTF8.self) == "key-v2")

            let versions = harness.emulator.secretVersions(vault: "kv1", name: "api-key")
            #expect(response.objectVersions[4].version == versions[2])
            #expect(response.objectVersions[5].version == versions[1])
            #expect(response.objectVersions[0].version == harness.emulator.secretVersions(vault: "kv1", name: "db-pass")[0])

            // One token exchange, one GET per object (plus the version list): no challenge round trips.
            #expect(harness.emulator.tokenRequestCount == 1)
            #expect(harness.emulator.keyVaultRequestCount == 7)

            // A second mount with the same service account token reuses the cached access token.
            _ = try await harness.fetch(request)
            #expect(harness.emulator.tokenRequestCount == 1)
        }
    }

    @Test func encodingsFormatsAndPermissions() async throws {
        try await AzureHarness.withHarness { (harness: AzureHarness) async throws in
            let objects = """
                array:
                  - |
                    objectName: encoded
                    objectType: secret
                    objectEncoding: base64
                    filePermission: "0600"
                  - |
                    objectName: hexed
                    objectType: secret
                    objectEncoding: hex
                  - |
                    objectName: web
                    objectType: secret
                    objectFormat: pfx
                    objectAlias: web.pfx
                  - |
                    objectName: web
                    objectType: secret
                    objectFormat: pfx
                    objectEncoding: base64
                    objectAlias: web.bin
                """
            let response = try await harness.fetch(harness.request(objects: objects))
            #expect(response.files[0].contents == Array("hello".utf8))
            #expect(response.files[0].mode == 0o600)
            #expect(response.files[1].contents == Array("hello".utf8))
            let pfxText = String(decoding: response.files[2].contents, as: UTF8.self)
            #expect(Data(base64Encoded: pfxText) != nil)
            #expect(response.files[3].contents == Array(Data(base64Encoded: pfxText)!))
        }
    }

    @Test func versionHistoryFromAGivenVersionAndWithFewerVersions() async throws {
        try await AzureHarness.withHarness { (harness: AzureHarness) async throws in
            let versions = harness.emulator.secretVersions(vault: "kv1", name: "api-key")
            let objects = """
                array:
                  - |
                    objectName: api-key
                    objectType: secret
                    objectAlias: k
                    objectVersion: \(versions[1])
                    objectVersionHistory: 5
                """
            let response = try await harness.fetch(harness.request(objects: objects))
            #expect(response.files.map(\.path) == ["k/0", "k/1"])
            #expect(response.files.map { String(decoding: $0.contents, as: UTF8.self) } == ["key-v2", "key-v1"])

            harness.emulator.setSecretEnabled(vault: "kv1", name: "api-key", version: versions[1], enabled: false)
            let latest = try await harness.fetch(harness.request(objects: objects.replacing("objectVersion: \(versions[1])", with: "objectVersion: latest")))
            #expect(latest.files.map { String(decoding: $0.contents, as: UTF8.self) } == ["key-v3", "key-v1"])
        }
    }

    @Test func rotationSeesANewVersion() async throws {
        try await AzureHarness.withHarness { (harness: AzureHarness) async throws in
            let objects = "array:\n  - |\n    objectName: db-pass\n    objectType: secret\n"
            let first = try await harness.fetch(harness.request(objects: objects))
            let version = harness.emulator.setSecret(vault: "kv1", name: "db-pass", value: "rotated")
            let second = try await harness.fetch(harness.request(objects: objects))
            #expect(first.files[0].contents != second.files[0].contents)
            #expect(second.objectVersions[0].version == version)
        }
    }

    @Test func servicePrincipalAndManagedIdentities() async throws {
        try await AzureHarness.withHarness { (harness: AzureHarness) async throws in
            let objects = "array:\n  - |\n    objectName: db-pass\n    objectType: secret\n"
            let sp = try await harness.fetch(
                harness.request(objects: objects, extra: ["clientID": ""], secrets: ["clientid": AzureHarness.spClient, "clientsecret": "sp-secret-value"])
            )
            #expect(sp.files.count == 1)
            let system = try await harness.fetch(harness.request(objects: objects, extra: ["clientID": "", "useVMManagedIdentity": "true"]))
            #expect(system.files.count == 1)
            let user = try await harness.fetch(
                harness.request(objects: objects, extra: ["clientID": "", "useVMManagedIdentity": "true", "userAssignedIdentityID": "uami-1"])
            )
            #expect(user.files.count == 1)
            await #expect(throws: ProviderFailure.self) {
                try await harness.fetch(
                    harness.request(objects: objects, extra: ["clientID": "", "useVMManagedIdentity": "true", "userAssignedIdentityID": "nope"])
                )
            }
        }
    }

    @Test(
        "identity errors carry Entra's AADSTS code and never the credential",
        arguments: [
            ("wrong secret", [String: String](), ["clientid": AzureHarness.spClient, "clientsecret": "WRONG-SECRET-SENTINEL"], "AADSTS7000215"),
            ("unknown app", [:], ["clientid": "ghost", "clientsecret": "x"], "AADSTS700016"),
            ("subject mismatch", ["wi-subject": "system:serviceaccount:ns:other"], [:], "AADSTS70021"),
            ("expired assertion", ["wi-expired": "yes"], [:], "AADSTS700024"),
        ]
    )
    func identityErrors(name: String, options: [String: String], secrets: [String: String], code: String) async throws {
        try await AzureHarness.withHarness { (harness: AzureHarness) async throws in
            var extra: [String: String] = secrets.isEmpty ? [:] : ["clientID": ""]
            if let subject = options["wi-subject"] {
                extra["csi.storage.k8s.io/serviceAccount.tokens"] = AzureHarness.tokensJSON(AzureHarness.serviceAccountToken(subject: subject))
            }
            if options["wi-expired"] != nil {
                extra["csi.storage.k8s.io/serviceAccount.tokens"] = AzureHarness.tokensJSON(AzureHarness.serviceAccountToken(expiresIn: -60))
            }
            let objects = "array:\n  - |\n    objectName: db-pass\n    objectType: secret\n"
            let error = await #expect(throws: ProviderFailure.self) {
                try await harness.fetch(harness.request(objects: objects, extra: extra, secrets: secrets))
            }
            guard case .permissionDenied(let message) = error else {
                Issue.record("\(name): expected permissionDenied, got \(String(describing: error))")
                return
            }
            #expect(message.contains(code))
            #expect(message.hasPrefix("failed to mount objects, error: failed to get objectType:secret, objectName:db-pass, objectVersion:: "))
            #expect(!message.contains("WRONG-SECRET-SENTINEL"))
            #expect(!message.contains("eyJ"))
        }
    }

    @Test func keyVaultErrors() async throws {
        try await AzureHarness.withHarness { (harness: AzureHarness) async throws in
            let missing = "array:\n  - |\n    objectName: nope\n    objectType: key\n"
            let notFound = await #expect(throws: ProviderFailure.self) { try await harness.fetch(harness.request(objects: missing)) }
            guard case .objectNotFound(let message) = notFound else { Issue.record("got \(String(describing: notFound))"); return }
            #expect(message.contains("KeyNotFound"))
            #expect(message.contains("failed to get objectType:key, objectName:nope"))

            let forbidden = await #expect(throws: ProviderFailure.self) {
                try await harness.fetch(harness.request(objects: "array:\n  - |\n    objectName: s\n    objectType: secret\n", vault: "locked"))
            }
            guard case .permissionDenied(let denied) = forbidden else { Issue.record("got \(String(describing: forbidden))"); return }
            #expect(denied.contains("RESPONSE 403") && denied.contains("does not have secrets get permission"))

            let bad = await #expect(throws: ProviderFailure.self) { try await harness.fetch(harness.request(objects: "array: [")) }
            guard case .misconfigured(let text) = bad else { Issue.record("got \(String(describing: bad))"); return }
            #expect(text.hasPrefix("failed to mount objects, error: failed to yaml unmarshal objects, error:"))
        }
    }

    @Test("objects fetched several at a time still come back in the objects' order, and the first failure in that order is the one reported")
    func parallelFetchKeepsOrder() async throws {
        try await AzureHarness.withHarness { (harness: AzureHarness) async throws in
            let names = ["hexed", "db-pass", "encoded", "api-key", "db-pass", "hexed", "encoded", "api-key"]
            let objects = "array:\n" + names.enumerated().map { index, name in
                "  - |\n    objectName: \(name)\n    objectType: secret\n    objectAlias: f\(index)\n"
            }.joined()
            let response = try await harness.fetch(harness.request(objects: objects))
            #expect(response.files.map(\.path) == names.indices.map { "f\($0)" })
            #expect(response.files[1].contents == Array("s3cr3t-db-password".utf8))
            #expect(response.files[7].contents == Array("key-v3".utf8))

            let failing = "array:\n" + ["db-pass", "hexed", "nope-1", "encoded", "nope-2", "api-key"].map {
                "  - |\n    objectName: \($0)\n    objectType: secret\n"
            }.joined()
            let failure = await #expect(throws: ProviderFailure.self) { try await harness.fetch(harness.request(objects: failing)) }
            guard case .objectNotFound(let message) = failure else { Issue.record("got \(String(describing: failure))"); return }
            #expect(message.contains("objectName:nope-1"))
        }
    }

    @Test("429 then success is retried; 5xx then success is retried")
    func transientFailuresAreRetried() async throws {
        try await AzureHarness.withHarness { (harness: AzureHarness) async throws in
            let objects = "array:\n  - |\n    objectName: db-pass\n    objectType: secret\n"
            var faults = KeyVaultEmulator.Faults()
            faults.retryAfterSeconds = 0
            faults.failNext = (429, 2)
            harness.emulator.setFaults(faults)
            #expect(try await harness.fetch(harness.request(objects: objects)).files.count == 1)
            faults.failNext = (503, 1)
            harness.emulator.setFaults(faults)
            #expect(try await harness.fetch(harness.request(objects: objects)).files.count == 1)
        }
    }

    @Test("a 429 storm past the deadline fails as throttled, without waiting past the deadline")
    func throttlingPastTheDeadline() async throws {
        try await AzureHarness.withHarness { (harness: AzureHarness) async throws in
            var faults = KeyVaultEmulator.Faults()
            faults.throttleLimit = 0
            faults.retryAfterSeconds = 5
            harness.emulator.setFaults(faults)
            let objects = "array:\n  - |\n    objectName: db-pass\n    objectType: secret\n"
            let start = ContinuousClock.now
            let error = await #expect(throws: ProviderFailure.self) {
                try await harness.fetch(harness.request(objects: objects, deadline: .now + .seconds(2)))
            }
            guard case .throttled(let message) = error else { Issue.record("got \(String(describing: error))"); return }
            #expect(message.contains("Throttled"))
            #expect(ContinuousClock.now - start < .seconds(2))
        }
    }

    @Test("server mode: the provider over v1alpha1 on a Unix socket gives the same answer")
    func serverMode() async throws {
        try await AzureHarness.withHarness { (harness: AzureHarness) async throws in
            try await withTemporaryDirectory { (directory: String) async throws in
                let socket = directory + "/azure.sock"
                let (listening, continuation) = AsyncStream.makeStream(of: String.self)
                let server = CSIServer(
                    socketPath: socket,
                    services: [ProviderService(provider: harness.provider, runtimeName: "test", logger: Logger(label: "t"))],
                    logger: Logger(label: "t"),
                    onListening: { continuation.yield($0) }
                )
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { try await server.run() }
                    for await _ in listening { break }
                    let external = ExternalProvider(name: "azure", socketPath: socket, maxReceiveMessageBytes: 4 << 20)
                    let viaSocket = try await external.fetch(harness.request(), logger: Logger(label: "t"))
                    let direct = try await harness.fetch(harness.request())
                    #expect(viaSocket.files.map(\.path) == direct.files.map(\.path))
                    #expect(viaSocket.files[0].contents == direct.files[0].contents)
                    #expect(viaSocket.objectVersions == direct.objectVersions)
                    let failure = await #expect(throws: ProviderFailure.self) {
                        try await external.fetch(harness.request(objects: "array:\n  - |\n    objectName: nope\n    objectType: secret\n"), logger: Logger(label: "t"))
                    }
                    guard case .rpc(let code, let message) = failure else { Issue.record("got \(String(describing: failure))"); return }
                    #expect(code == RPCError.Code.failedPrecondition.rawValue)
                    #expect(message.contains("SecretNotFound"))
                    group.cancelAll()
                }
            }
        }
    }
}
