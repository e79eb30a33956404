import CSIProtocol
import Foundation
import GRPCCore
import KeyVaultEmulator
import SecretsStoreAzure
import SecretsStoreCore
import SecretsStoreCoreTesting
import SecretsStoreLinux
import SecretsStoreObservability
import SecretsStoreTesting
import Testing

/// Rotation and sync with every real part: the socket server, the REST client against the fake API server,
/// the built-in Azure provider against the Key Vault emulator over HTTPS, real tmpfs when root.
@Suite("Rotation and sync end to end", .serialized, .timeLimit(.minutes(3)))
struct RotationEndToEndTests {
    @Test("changing a secret in the vault updates 20 pods' files and the synced Secret in one cycle, one GET per object")
    func rotationAcrossTwentyPods() async throws {
        let tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
        let emulator = try await KeyVaultEmulator(
            seed: EmulatorSeed(
                tenantID: tenant,
                clients: [.init(clientID: "sp", secret: "sp-secret")],
                vaults: ["kv1": .init(secrets: ["db-pass": [.init(value: "one")], "api-key": [.init(value: "k1")]])]
            )
        )
        let http = try AzureHTTP(extraCABundlePEM: Array(emulator.certificates.caCertificatePEM.utf8))
        let azure = AzureKeyVaultProvider(
            http: http,
            overrides: AzureEndpointOverrides(keyVaultURLTemplate: emulator.baseURL + "/{vault}", authorityHost: emulator.baseURL + "/")
        )
        try await withDriver(
            rotation: RotationPolicy(enabled: true, interval: .milliseconds(1)),
            builtIn: ["azure": azure],
            syncSecrets: true
        ) { driver in
            driver.api.seed(
                path: "/apis/secrets-store.csi.x-k8s.io/v1/namespaces/ns/secretproviderclasses",
                object: [
                    "metadata": ["name": "spc"],
                    "spec": [
                        "provider": "azure",
                        "parameters": [
                            "keyvaultName": "kv1", "tenantId": tenant,
                            "objects": "array:\n  - |\n    objectName: db-pass\n    objectType: secret\n  - |\n    objectName: api-key\n    objectType: secret\n",
                        ],
                        "secretObjects": [["secretName": "db", "type": "Opaque", "data": [["objectName": "db-pass", "key": "password"]]]],
                    ],
                ]
            )
            for index in 0..<20 {
                driver.api.seed(path: "/api/v1/namespaces/ns/pods", object: ["metadata": ["name": "web-\(index)", "uid": "uid-\(index)"]])
                var request = driver.publishRequest(target: driver.targetPath(podUID: "uid-\(index)"))
                request.volumeContext["csi.storage.k8s.io/pod.name"] = "web-\(index)"
                request.volumeContext["csi.storage.k8s.io/pod.uid"] = "uid-\(index)"
                request.secrets = ["clientid": "sp", "clientsecret": "sp-secret"]
                _ = try await driver.node.nodePublishVolume(request)
            }
            let secretPath = "/api/v1/namespaces/ns/secrets/db"
            let synced = try #require(driver.api.object(at: secretPath))
            #expect(((synced["data"] as? [String: String])?["password"]).flatMap { Data(base64Encoded: $0) } == Data("one".utf8))
            #expect((synced["metadata"] as? [String: Any]).flatMap { $0["labels"] as? [String: String] }?["secrets-store.csi.k8s.io/managed"] == "true")

            emulator.setSecret(vault: "kv1", name: "db-pass", value: "two")
            emulator.resetCounters()
            try await Task.sleep(for: .milliseconds(5))
            let outcomes = await driver.publisher.rotate(logger: driver.logs.logger())
            #expect(outcomes.count == 20)
            #expect(outcomes.values.allSatisfy { $0 == .refreshed(changed: true) })
            // One GET per distinct object for the whole node, not per pod.
            #expect(emulator.keyVaultRequestCount == 2)

            let fileSystem = PosixFileSystem()
            for index in 0..<20 {
                let contents = try fileSystem.readFile(at: driver.targetPath(podUID: "uid-\(index)") + "/db-pass")
                #expect(contents == Array("two".utf8))
            }
            let updated = try #require(driver.api.object(at: secretPath))
            #expect(((updated["data"] as? [String: String])?["password"]).flatMap { Data(base64Encoded: $0) } == Data("two".utf8))
            let owners = (updated["metadata"] as? [String: Any])?["ownerReferences"] as? [[String: Any]] ?? []
            #expect(owners.count == 20)  // bare pods: each pod's status object owns it

            let events = driver.api.requests.filter { $0.method == "POST" && $0.path.hasSuffix("/events") }
            #expect(events.count >= 40)  // MountRotationComplete + SecretRotationComplete per pod
            let metrics = driver.metrics.render()
            for name in ["node_publish_total", "rotation_reconcile_total", "rotation_reconcile_duration_sec", "sync_k8s_secret_total", "k8s_secret_duration_sec", "provider_fetch_duration_sec", "node_unpublish_total"] {
                #expect(metrics.contains(name), "missing \(name)")
            }
            #expect(metrics.contains("rotation_reconcile_total{provider=\"azure\",os_type=\"linux\",rotated=\"true\"} 20"))
            for index in 0..<20 {
                _ = try await driver.node.nodeUnpublishVolume(driver.unpublishRequest(target: driver.targetPath(podUID: "uid-\(index)")))
            }
        }
        try await http.shutdown()
        try await emulator.shutdown()
    }
}
