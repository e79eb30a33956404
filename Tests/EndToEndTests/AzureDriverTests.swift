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

/// The whole driver publishing an Azure SecretProviderClass (built-in provider) against the emulator.
@Suite("Driver + built-in Azure provider + Key Vault emulator", .serialized, .timeLimit(.minutes(3)))
struct AzureDriverTests {
    static let tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"

    /// An SPC in the shape of the upstream Azure provider's documentation: workload identity, a secret with an
    /// alias, a PKCS#12 certificate as secret, the same certificate as cert, a key, and version history.
    static let parameters = [
        "usePodIdentity": "false",
        "clientID": "wi-app",
        "keyvaultName": "kv1",
        "cloudName": "",
        "tenantId": tenant,
        "objects": WorkedExample.objects,
    ]

    @Test("an upstream-style Azure SPC publishes the reference's files, byte for byte in PEM layout")
    func publishesTheWorkedExample() async throws {
        let chain = try TestCertificateChain.make()
        let ec = ["kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"]
        let emulator = try await KeyVaultEmulator(
            seed: EmulatorSeed(
                tenantID: Self.tenant,
                clients: [.init(clientID: "wi-app", federated: [.init(subject: "system:serviceaccount:ns:default", audience: "api://AzureADTokenExchange")])],
                vaults: [
                    "kv1": .init(
                        secrets: ["db-pass": [.init(value: "s3cr3t")], "api-key": [.init(value: "v1"), .init(value: "v2"), .init(value: "v3")]],
                        keys: ["signing": [.init(jwk: ec)]],
                        certificates: ["web": [.init(pkcs12: try chain.pkcs12Base64(certificates: [chain.leaf, chain.intermediate, chain.root]))]]
                    )
                ]
            )
        )
        let http = try AzureHTTP(extraCABundlePEM: Array(emulator.certificates.caCertificatePEM.utf8))
        let azure = AzureKeyVaultProvider(
            http: http,
            overrides: AzureEndpointOverrides(
                keyVaultURLTemplate: emulator.baseURL + "/{vault}",
                authorityHost: emulator.baseURL + "/"
            )
        )
        try await withDriver(builtIn: ["azure": azure]) { driver in
            driver.seedSecretProviderClass(name: "azure-spc", provider: "azure", parameters: Self.parameters)
            let tokens = ServiceAccountToken.volumeContextValue(ServiceAccountToken.make(subject: "system:serviceaccount:ns:default"))
            _ = try await driver.node.nodePublishVolume(
                driver.publishRequest(spc: "azure-spc", extraContext: ["csi.storage.k8s.io/serviceAccount.tokens": tokens])
            )
            let target = driver.targetPath()
            let fileSystem = PosixFileSystem()
            func read(_ path: String) throws -> String { String(decoding: try fileSystem.readFile(at: target + "/" + path), as: UTF8.self) }

            #expect(try read("DB_PASSWORD") == "s3cr3t")
            #expect(
                try read("web") == PEM.encode(type: "PRIVATE KEY", der: chain.leafKeyPKCS8) + PEM.encode(type: "CERTIFICATE", der: chain.leaf)
                    + PEM.encode(type: "CERTIFICATE", der: chain.intermediate) + PEM.encode(type: "CERTIFICATE", der: chain.root)
            )
            #expect(try read("tls.crt") == PEM.encode(type: "CERTIFICATE", der: chain.leaf))
            #expect(try read("signing").hasPrefix("-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE"))
            #expect(try read("api-key/0") == "v3")
            #expect(try read("api-key/1") == "v2")
            for path in ["DB_PASSWORD", "web", "tls.crt", "signing", "api-key/0"] {
                #expect(try fileSystem.permissions(of: target + "/" + path) == 0o644)
            }
            let status = try #require(try await driver.podStatus("web-0-ns-azure-spc"))
            let objects = try #require((status["status"] as? [String: Any])?["objects"] as? [[String: String]])
            #expect(objects.map { $0["id"]! } == ["cert/web", "key/signing", "secret/api-key/0", "secret/api-key/1", "secret/db-pass", "secret/web"])
            #expect(emulator.keyVaultRequestCount == 7)
            #expect(emulator.tokenRequestCount == 1)
            for line in driver.logs.all { #expect(!line.contains("s3cr3t") && !line.contains("PRIVATE KEY")) }
        }
        try await http.shutdown()
        try await emulator.shutdown()
    }
}
