import CSIProtocol
import Foundation
import GRPCCore
import KeyVaultEmulator
import SecretsStoreApplication
import SecretsStoreAzure
import SecretsStoreCore
import SecretsStoreCoreTesting
import SecretsStoreTesting
import Testing

/// The failure series of `/metrics`, read as Prometheus scrapes them from the driver as assembled (the production
/// `DriverAssembly` and its listener): each test drives a real failure through the driver and looks for the
/// exact series, labels and value.
@Suite("Failure metrics end to end", .serialized, .timeLimit(.minutes(3)))
struct FailureMetricsEndToEndTests {
    /// The `/metrics` text the driver's listener serves now (the blocking socket calls run off the cooperative
    /// threads, which the listener and the fakes need).
    static func scrape(_ driver: DriverHarness) async throws -> String {
        let port = driver.metricsPort
        let answer = try await blocking { try fetch("/metrics", port: port) }
        #expect(answer.status == 200)
        return answer.text
    }

    @Test("a failed publish is node_publish_error_total with the provider and the error_type of its failure")
    func publishErrorsByErrorType() async throws {
        try await withDriver(providerBehaviour: .fail(.unavailable, "vault down")) { driver in
            // No SecretProviderClass yet: the provider is not known.
            await #expect(throws: RPCError.self) { _ = try await driver.node.nodePublishVolume(driver.publishRequest()) }
            // The class exists; its provider fails twice.
            driver.seedSecretProviderClass()
            for _ in 0..<2 {
                await #expect(throws: RPCError.self) { _ = try await driver.node.nodePublishVolume(driver.publishRequest()) }
            }
            let metrics = try await Self.scrape(driver)
            #expect(metrics.contains("\nnode_publish_error_total{provider=\"\",error_type=\"SecretProviderClassNotFound\",os_type=\"linux\"} 1\n"))
            #expect(metrics.contains("\nnode_publish_error_total{provider=\"test\",error_type=\"GRPCProviderError\",os_type=\"linux\"} 2\n"))
            #expect(!metrics.contains("node_publish_total{"))
        }
    }

    @Test("a failed refresh is rotation_reconcile_error_total with its error_type and rotated=\"false\"")
    func rotationErrorsByErrorType() async throws {
        try await withDriver(rotation: RotationPolicy(enabled: true, interval: .milliseconds(1))) { driver in
            driver.seedSecretProviderClass()
            _ = try await driver.node.nodePublishVolume(driver.publishRequest())
            driver.provider.setBehaviour(.fail(.unavailable, "vault down"))
            // Paces the cycle: the volume is due once its 1 ms interval has passed.
            try await Task.sleep(for: .milliseconds(5))
            let outcomes = await driver.publisher.rotate(logger: driver.logs.logger())
            #expect(outcomes.count == 1)
            let metrics = try await Self.scrape(driver)
            #expect(
                metrics.contains(
                    "\nrotation_reconcile_error_total{provider=\"test\",error_type=\"GRPCProviderError\",os_type=\"linux\",rotated=\"false\"} 1\n"
                )
            )
            #expect(!metrics.contains("rotation_reconcile_total{"))
            #expect(metrics.contains("\nnode_publish_total{provider=\"test\",os_type=\"linux\"} 1\n"))
        }
    }

    @Test("the assembly's own Azure provider counts every Key Vault answer by status in keyvault_request_total")
    func keyVaultRequestsByStatus() async throws {
        let tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
        let emulator = try await KeyVaultEmulator(
            seed: EmulatorSeed(
                tenantID: tenant,
                clients: [.init(clientID: "sp", secret: "sp-secret")],
                vaults: ["kv1": .init(secrets: ["db-pass": [.init(value: "one")]])]
            )
        )
        let azure = DriverConfiguration.BuiltInAzure(
            overrides: AzureEndpointOverrides(
                keyVaultURLTemplate: emulator.baseURL + "/{vault}",
                authorityHost: emulator.baseURL + "/",
                caBundlePEM: Array(emulator.certificates.caCertificatePEM.utf8)
            )
        )
        do {
            try await withDriver(builtInAzure: azure) { driver in
                func objects(_ name: String) -> [String: String] {
                    ["keyvaultName": "kv1", "tenantId": tenant, "objects": "array:\n  - |\n    objectName: \(name)\n    objectType: secret\n"]
                }
                driver.seedSecretProviderClass(name: "found", provider: "azure", parameters: objects("db-pass"))
                driver.seedSecretProviderClass(name: "missing", provider: "azure", parameters: objects("nope"))
                let credentials = ["clientid": "sp", "clientsecret": "sp-secret"]
                _ = try await driver.node.nodePublishVolume(driver.publishRequest(spc: "found", secrets: credentials))
                await #expect(throws: RPCError.self) {
                    _ = try await driver.node.nodePublishVolume(
                        driver.publishRequest(spc: "missing", target: driver.targetPath(volume: "other"), secrets: credentials)
                    )
                }
                #expect(emulator.keyVaultRequestCount == 2)
                let metrics = try await Self.scrape(driver)
                #expect(metrics.contains("\nkeyvault_request_total{status=\"200\"} 1\n"))
                #expect(metrics.contains("\nkeyvault_request_total{status=\"404\"} 1\n"))
                #expect(metrics.contains("\nnode_publish_error_total{provider=\"azure\",error_type=\"GRPCProviderError\",os_type=\"linux\"} 1\n"))
            }
        } catch {
            try await emulator.shutdown()
            throw error
        }
        try await emulator.shutdown()
    }
}
