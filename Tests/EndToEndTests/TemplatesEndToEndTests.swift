import CSIProtocol
import Foundation
import GRPCCore
import SecretsStoreCore
import SecretsStoreCoreTesting
import SecretsStoreLinux
import SecretsStoreTesting
import Testing

/// `fileTemplates` and `secretObjects[].data[].template` through the real CSI server: the class read over REST
/// from the fake API server (so through the Kubernetes adapter's decoding), the test provider on its socket, the
/// files written into the mount, the Secret written over REST, and INVALID_ARGUMENT for a wrong template.
@Suite("Templates end to end", .serialized, .timeLimit(.minutes(2)))
struct TemplatesEndToEndTests {
    static let spcs = "/apis/secrets-store.csi.x-k8s.io/v1/namespaces/ns/secretproviderclasses"

    static func seed(_ driver: DriverHarness, fileTemplates: String, template: String) {
        driver.api.seed(path: "/api/v1/namespaces/ns/pods", object: ["metadata": ["name": "web-0", "uid": "uid-1"]])
        driver.api.seed(
            path: spcs,
            object: [
                "apiVersion": "secrets-store.csi.x-k8s.io/v1", "kind": "SecretProviderClass",
                "metadata": ["name": "spc", "namespace": "ns"],
                "spec": [
                    "provider": "test",
                    "parameters": ["objects": "array: []", "fileTemplates": fileTemplates],
                    "secretObjects": [
                        [
                            "secretName": "db", "type": "Opaque",
                            "data": [["key": "DATABASE_URL", "template": template], ["key": "dsn-file", "objectName": "db.dsn"]],
                        ]
                    ],
                ],
            ]
        )
    }

    @Test("a publish writes the composed file beside the provider's and syncs the template keys")
    func publishComposes() async throws {
        try await withDriver(syncSecrets: true) { driver in
            Self.seed(driver, fileTemplates: "db.dsn: \"user={{username}} password={{password}}\"\n", template: "postgres://{{username}}:{{password}}@db/app")
            _ = try await driver.node.nodePublishVolume(driver.publishRequest())
            let target = driver.targetPath()
            let fileSystem = PosixFileSystem()
            #expect(try fileSystem.readFile(at: target + "/db.dsn") == Array("user=admin password=p@ss-SENTINEL".utf8))
            #expect(try fileSystem.readFile(at: target + "/username") == Array("admin".utf8))
            let secret = try #require(driver.api.object(at: "/api/v1/namespaces/ns/secrets/db"))
            let data = (secret["data"] as? [String: String] ?? [:]).compactMapValues { Data(base64Encoded: $0).map { String(decoding: $0, as: UTF8.self) } }
            #expect(data == ["DATABASE_URL": "postgres://admin:p@ss-SENTINEL@db/app", "dsn-file": "user=admin password=p@ss-SENTINEL"])
            _ = try await driver.node.nodeUnpublishVolume(driver.unpublishRequest())
        }
    }

    @Test(
        "a wrong template is INVALID_ARGUMENT naming the field, with no value in the message or the logs",
        arguments: [
            ("x: \"{{passwrod}}\"\n", "{{username}}", "spec.parameters.fileTemplates[x]: the template names \"passwrod\""),
            ("x: \"{{password}}\"\n", "{{username", "spec.secretObjects[db].data[DATABASE_URL]: the tag opened at line 1, column 1 is not closed"),
            ("x: \"{{base64Decode(password)}}\"\n", "{{username}}", "spec.parameters.fileTemplates[x]: base64Decode: the value of \"password\" is not base64"),
        ]
    )
    func wrongTemplateIsInvalidArgument(fileTemplates: String, template: String, message: String) async throws {
        try await withDriver(syncSecrets: true) { driver in
            Self.seed(driver, fileTemplates: fileTemplates, template: template)
            do {
                _ = try await driver.node.nodePublishVolume(driver.publishRequest())
                Issue.record("the publish succeeded")
            } catch let error as RPCError {
                #expect(error.code == .invalidArgument)
                #expect(error.message.contains("secretproviderclass ns/spc is invalid: " + message), "\(error.message)")
                #expect(!error.message.contains("SENTINEL"))
            }
            #expect(try await !driver.isMounted(driver.targetPath()))
            #expect(driver.api.object(at: "/api/v1/namespaces/ns/secrets/db") == nil)
            for line in driver.logs.all { #expect(!line.contains("SENTINEL"), "\(line)") }
        }
    }
}
