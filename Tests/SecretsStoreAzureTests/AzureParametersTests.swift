import SecretsStoreAzure
import Testing

@Suite("Azure SecretProviderClass parameters")
struct AzureParametersTests {
    static let objects = """
        array:
          - |
            objectName: secret1
            objectType: secret
            objectAlias: "  SECRET_1  "
          - |
            objectName: key1
            objectType: key
            objectVersion: abc
          - |
            objectName: cert1
            objectType: secret
            objectFormat: PFX
            objectEncoding: Base64
            filePermission: 0600
          - |
            objectName: hist
            objectType: secret
            objectVersionHistory: 3
        """

    static func attributes(_ extra: [String: String] = [:]) -> [String: String] {
        var attributes = [
            "keyvaultName": " kv1 ", "tenantId": "tid", "objects": objects,
            "csi.storage.k8s.io/pod.name": "p", "csi.storage.k8s.io/pod.namespace": "ns",
        ]
        attributes.merge(extra) { _, new in new }
        return attributes
    }

    static let spSecrets = ["ClientID": "app", "ClientSecret": "pw"]

    @Test func parsesAWellFormedClass() throws {
        let parameters = try AzureMountParameters(attributes: Self.attributes(), secrets: Self.spSecrets, defaultFilePermission: 0o644)
        #expect(parameters.keyVaultName == "kv1")
        #expect(parameters.tenantID == "tid")
        #expect(parameters.identity == .servicePrincipal(clientID: "app", clientSecret: "pw"))
        #expect(parameters.objects.count == 4)
        #expect(parameters.objects[0].fileName == "SECRET_1")
        #expect(parameters.objects[1].type == .key && parameters.objects[1].version == "abc")
        #expect(parameters.objects[2].format == .pfx && parameters.objects[2].encoding == .base64)
        #expect(parameters.objects[2].filePermission == 0o600)
        #expect(parameters.objects[3].versionHistory == 3)
    }

    @Test func tenantIDWinsOverTenantId() throws {
        let parameters = try AzureMountParameters(
            attributes: Self.attributes(["tenantID": "new"]),
            secrets: Self.spSecrets,
            defaultFilePermission: 0o644
        )
        #expect(parameters.tenantID == "new")
    }

    @Test func workloadIdentityAndManagedIdentity() throws {
        let tokens = #"{"api://AzureADTokenExchange":{"token":"jwt-value","expirationTimestamp":"2030-01-01T00:00:00Z"}}"#
        let wi = try AzureMountParameters(
            attributes: Self.attributes(["clientID": "wi-app", "csi.storage.k8s.io/serviceAccount.tokens": tokens]),
            secrets: [:],
            defaultFilePermission: 0o644
        )
        #expect(wi.identity == .workloadIdentity(clientID: "wi-app", serviceAccountToken: "jwt-value"))
        let mi = try AzureMountParameters(
            attributes: Self.attributes(["useVMManagedIdentity": "true", "userAssignedIdentityID": "uami"]),
            secrets: [:],
            defaultFilePermission: 0o644
        )
        #expect(mi.identity == .managedIdentity(clientID: "uami"))
        let system = try AzureMountParameters(
            attributes: Self.attributes(["useVMManagedIdentity": "1"]),
            secrets: [:],
            defaultFilePermission: 0o644
        )
        #expect(system.identity == .managedIdentity(clientID: nil))
    }

    @Test(
        "errors keep the upstream texts and order",
        arguments: [
            (["csi.storage.k8s.io/pod.name": ""], "pod name is not provided"),
            (["csi.storage.k8s.io/pod.namespace": ""], "pod namespace is not provided"),
            (["useVMManagedIdentity": "tru"], "failed to parse useVMManagedIdentity flag, error: strconv.ParseBool: parsing \"tru\": invalid syntax"),
            (["useVMManagedIdentity": "true", "usePodIdentity": "true"], "only one identity mode can be enabled at a time: usePodIdentity, useVMManagedIdentity, or useAzureTokenProxy"),
            (["keyvaultName": ""], "keyvaultName is not provided"),
            (["tenantId": ""], "tenantId is not provided"),
            (["objects": ""], "objects is not set"),
            (["objects": "- objectName: a"], "failed to yaml unmarshal objects, error:"),
            (["objects": "array:\n  - objectName: a\n"], "failed to yaml unmarshal objects, error:"),
            (["objects": "array:\n  - |\n    objectName: a\n    objectType: Secret\n"], "failed to get objectType:Secret, objectName:a, objectVersion:: Invalid vaultObjectTypes. Should be secret, key, or cert"),
            (["objects": "array:\n  - |\n    objectName: a\n    objectType: key\n    objectFormat: pfx\n"], "PFX format only supported for objectType: secret"),
            (["objects": "array:\n  - |\n    objectName: a\n    objectType: secret\n    objectFormat: pkcs\n"], "invalid objectFormat: pkcs, should be PEM or PFX"),
            (["objects": "array:\n  - |\n    objectName: a\n    objectType: secret\n    objectEncoding: utf-16\n"], "invalid objectEncoding: utf-16, should be hex, base64 or utf-8"),
            (["objects": "array:\n  - |\n    objectName: a\n    objectType: cert\n    objectEncoding: hex\n"], "objectEncoding only supported for objectType: secret"),
            (["objects": "array:\n  - |\n    objectName: a\n    objectType: secret\n    objectAlias: ../x\n"], "file name must not contain '..'"),
            (["objects": "array:\n  - |\n    objectName: a\n    objectType: secret\n    objectAlias: /etc/x\n"], "file name must be a relative path"),
            (["objects": "array:\n  - |\n    objectName: a\n    objectType: secret\n    filePermission: 0o644\n"], "invalid filePermission: 0o644"),
            (["objects": "array:\n  - |\n    objectName: a\n    objectType: secret\n    filePermission: 999\n"], "invalid filePermission: 999"),
            (["objects": "array:\n  - |\n    objectName: a\n    objectType: secret\n    objectVersionHistory: \"5\"\n"], "unmarshal failed for keyVaultObjects at index 0"),
            (["objects": "array:\n  - |\n    objectType: secret\n    objectAlias: web.pfx\n"], "objectName:, objectVersion:: objectName is not set"),
            (["keyvaultName": "kv"], "Invalid vault name: \"kv\", must be between 3 and 24 chars"),
            (["keyvaultName": "kv_1"], "must match [-a-zA-Z0-9]{3,24}"),
            (["clientID": "x"], "service account tokens not found"),
            (["clientID": "x", "csi.storage.k8s.io/serviceAccount.tokens": "{]"], "failed to unmarshal service account tokens"),
            (["clientID": "x", "csi.storage.k8s.io/serviceAccount.tokens": #"{"other":{"token":"t"}}"#], "token for audience api://AzureADTokenExchange not found"),
            (["usePodIdentity": "true"], "usePodIdentity is not supported"),
        ]
    )
    func rejects(extra: [String: String], expected: String) {
        let error = #expect(throws: AzureMountParameters.Invalid.self) {
            try AzureMountParameters(attributes: Self.attributes(extra), secrets: Self.spSecrets, defaultFilePermission: 0o644)
        }
        #expect(error?.message.contains(expected) == true, "got: \(error?.message ?? "nil")")
    }

    @Test(
        "service principal secrets",
        arguments: [
            ([String: String](), "nodePublishSecretRef secret is not set"),
            (["clientsecret": "x"], "could not find clientid in secrets"),
            (["clientid": "x"], "could not find clientsecret in secrets"),
        ]
    )
    func servicePrincipalErrors(secrets: [String: String], expected: String) {
        let error = #expect(throws: AzureMountParameters.Invalid.self) {
            try AzureMountParameters(attributes: Self.attributes(), secrets: secrets, defaultFilePermission: 0o644)
        }
        #expect(error?.message.contains(expected) == true)
    }

    @Test func emptyArrayIsAccepted() throws {
        let parameters = try AzureMountParameters(
            attributes: Self.attributes(["objects": "array:", "keyvaultName": "x"]),
            secrets: Self.spSecrets,
            defaultFilePermission: 0o644
        )
        #expect(parameters.objects.isEmpty)
    }

    @Test func clouds() throws {
        #expect(try AzureCloud.named("azurecloud", environmentFile: nil) == .publicCloud)
        #expect(try AzureCloud.named("AzureUSGovernment", environmentFile: nil).keyVaultDNSSuffix == "vault.usgovcloudapi.net")
        #expect(try AzureCloud.named("AzureChinaCloud", environmentFile: nil).authorityHost == "https://login.chinacloudapi.cn/")
        #expect(try AzureCloud.named(nil, environmentFile: nil, authorityHostOverride: "https://127.0.0.1:1").authorityHost == "https://127.0.0.1:1/")
        let error = #expect(throws: AzureMountParameters.Invalid.self) { try AzureCloud.named("Mars", environmentFile: nil) }
        #expect(error?.message == "cloudName Mars is not valid, error: autorest/azure: There is no cloud environment matching the name \"MARS\"")
        #expect(throws: AzureMountParameters.Invalid.self) { try AzureCloud.named("AzureStackCloud", environmentFile: "/nonexistent.json") }
    }
}
