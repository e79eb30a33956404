import Crypto
import KeyVaultEmulator
import SecretsStoreAzure
import SecretsStoreCore
import Testing
import _CryptoExtras

import Foundation

/// The object fields this driver adds to the upstream `objects` YAML (`optional`, `keyvaultName`, `tenantID`),
/// and the pure parts of the certificate features: splitting PEM into `.crt`/`.key`, reading PKCS#12 layouts.
@Suite("Azure object options and certificate helpers")
struct AzureObjectOptionsTests {
    static func attributes(objects: String, vault: String = "kv1") -> [String: String] {
        [
            "keyvaultName": vault, "tenantID": "tid", "objects": objects,
            "csi.storage.k8s.io/pod.name": "p", "csi.storage.k8s.io/pod.namespace": "ns",
        ]
    }

    static let secrets = ["clientid": "app", "clientsecret": "pw"]

    @Test func optionalVaultAndTenantParse() throws {
        let objects = """
            array:
              - |
                objectName: a
                objectType: secret
                optional: true
              - |
                objectName: b
                objectType: secret
                optional: "False"
                keyvaultName: " kv-two "
                tenantId: legacy-tenant
              - |
                objectName: c
                objectType: key
                optional: "1"
                keyvaultName: kv-three
                tenantID: new-tenant
                tenantId: ignored
              - |
                objectName: d
                objectType: cert
            """
        let parameters = try AzureMountParameters(attributes: Self.attributes(objects: objects), secrets: Self.secrets, defaultFilePermission: 0o644)
        #expect(parameters.objects.map(\.optional) == [true, false, true, false])
        #expect(parameters.objects.map(\.keyVaultName) == [nil, "kv-two", "kv-three", nil])
        #expect(parameters.objects.map(\.tenantID) == [nil, "legacy-tenant", "new-tenant", nil])
        #expect(parameters.objects.map { parameters.vaultName(of: $0) } == ["kv1", "kv-two", "kv-three", "kv1"])
        #expect(parameters.objects.map { parameters.tenant(of: $0) } == ["tid", "legacy-tenant", "new-tenant", "tid"])
        #expect(parameters.objects.map { parameters.readsAnotherVault($0) } == [false, true, true, false])
    }

    @Test(
        "an object's vault name is checked like the class's, with the same texts, naming the object",
        arguments: [
            ("keyvaultName: kv", "failed to get objectType:secret, objectName:a, objectVersion:: failed to get vault: Invalid vault name: \"kv\", must be between 3 and 24 chars"),
            ("keyvaultName: kv_two", "failed to get objectType:secret, objectName:a, objectVersion:: failed to get vault: Invalid vault name: \"kv_two\", must match [-a-zA-Z0-9]{3,24}"),
            ("keyvaultName: a-vault-name-of-25-chars-x", "must be between 3 and 24 chars"),
            ("optional: maybe", "failed to get objectType:secret, objectName:a, objectVersion:: failed to parse optional flag, error: strconv.ParseBool: parsing \"maybe\": invalid syntax"),
        ]
    )
    func rejects(field: String, expected: String) {
        let objects = "array:\n  - |\n    objectName: a\n    objectType: secret\n    \(field)\n"
        let error = #expect(throws: AzureMountParameters.Invalid.self) { try AzureMountParameters.parseObjects(objects) }
        #expect(error?.message.contains(expected) == true, "got: \(error?.message ?? "nil")")
        let viaInit = #expect(throws: AzureMountParameters.Invalid.self) {
            try AzureMountParameters(attributes: Self.attributes(objects: objects), secrets: Self.secrets, defaultFilePermission: 0o644)
        }
        #expect(viaInit?.message == error?.message)
    }

    @Test("the class's keyvaultName stays required and is checked as before, even when every object names its own")
    func classVaultStaysRequired() {
        let objects = "array:\n  - |\n    objectName: a\n    objectType: secret\n    keyvaultName: kv-two\n"
        let missing = #expect(throws: AzureMountParameters.Invalid.self) {
            try AzureMountParameters(attributes: Self.attributes(objects: objects, vault: ""), secrets: Self.secrets, defaultFilePermission: 0o644)
        }
        #expect(missing?.message == "keyvaultName is not provided")
        let invalid = #expect(throws: AzureMountParameters.Invalid.self) {
            try AzureMountParameters(attributes: Self.attributes(objects: objects, vault: "k"), secrets: Self.secrets, defaultFilePermission: 0o644)
        }
        #expect(invalid?.message == "failed to get vault: Invalid vault name: \"k\", must be between 3 and 24 chars")
    }

    @Test("the options keep upstream's defaults")
    func flagDefaults() {
        let overrides = AzureEndpointOverrides()
        #expect(overrides.constructPEMChain)
        #expect(!overrides.writeCertAndKeyInSeparateFiles)
    }

    @Test("splitting PEM: CERTIFICATE blocks to .crt, every other block to .key, in Go's layout; non-PEM text gives nothing")
    func splitCertificatesAndKeys() {
        let key = PEM.encode(type: "EC PRIVATE KEY", der: [1, 2, 3])
        let first = PEM.encode(type: "CERTIFICATE", der: [4, 5])
        let second = PEM.encode(type: "CERTIFICATE", der: [6, 7])
        let crlf = (first + "junk between blocks\n" + key + second).replacing("\n", with: "\r\n")
        let split = ObjectContents.splitCertificatesAndKeys(crlf)
        #expect(split.certificates == first + second)
        #expect(split.keys == key)
        let notPEM = ObjectContents.splitCertificatesAndKeys("MIIKxAIBAzCCCnoGCSqGSIb3DQEHAaCCCms=")
        #expect(notPEM.certificates.isEmpty && notPEM.keys.isEmpty)
    }

    @Test("secretFiles applies objectEncoding to each file and returns .crt, .key, then the file")
    func secretFilesOrderAndEncoding() throws {
        let chain = try TestCertificateChain.make()
        let pfx = try chain.pkcs12Base64(certificates: [chain.leaf, chain.intermediate, chain.root])
        let files = try ObjectContents.secretFiles(
            value: pfx, contentType: "application/x-pkcs12", isCertificateBacked: true, format: .pfx, encoding: .base64, separateFiles: true
        )
        #expect(files.map(\.suffix) == [".crt", ".key", ""])
        #expect(files[0].contents.isEmpty && files[1].contents.isEmpty)
        #expect(files[2].contents == Array(Data(base64Encoded: pfx)!))
        let plain = try ObjectContents.secretFiles(
            value: "v", contentType: nil, isCertificateBacked: false, format: .pem, encoding: .utf8, separateFiles: true
        )
        #expect(plain.map(\.suffix) == [""])
    }

    @Test("the unencrypted PKCS#12 the tests build reads with NIOSSL and with the layout scan alike")
    func unencryptedPKCS12Reads() throws {
        let chain = try TestCertificateChain.make()
        let base64 = chain.unencryptedPKCS12Base64(certificates: [chain.root, chain.leaf, chain.intermediate])
        let pem = try ObjectContents.pkcs12ToPEM(base64: base64, constructChain: false)
        #expect(PEM.decode(pem).map(\.der) == [chain.leafKeyPKCS8, chain.root, chain.leaf, chain.intermediate])
        let ordered = try ObjectContents.pkcs12ToPEM(base64: base64)
        #expect(PEM.decode(ordered).map(\.der) == [chain.leafKeyPKCS8, chain.leaf, chain.intermediate, chain.root])
    }
}
