import Crypto
import KeyVaultEmulator
import Logging
import SecretsStoreAzure
import SecretsStoreCore
import Testing
import _CryptoExtras

import Foundation

/// Optional objects, several vaults and tenants in one SecretProviderClass, and the AKS add-on's two file
/// layout flags, against the Key Vault emulator over HTTPS.
@Suite("Azure provider object features against the emulator", .serialized, .timeLimit(.minutes(3)))
struct AzureObjectFeaturesTests {
    static let otherTenant = "0b5c3d1e-2f4a-4b6c-8d7e-9f0a1b2c3d4e"
    static let unknownVersion = "0123456789abcdef0123456789abcdef"

    static func objects(_ entries: [String]) -> String {
        "array:\n" + entries.map { entry in
            "  - |\n" + entry.split(separator: "\n").map { "    \($0)\n" }.joined()
        }.joined()
    }

    // MARK: Optional objects

    @Test("an optional object Key Vault does not have is left out: no file, no object version, named in the response")
    func optionalObjectsMissing() async throws {
        try await AzureHarness.withHarness { (harness: AzureHarness) async throws in
            let objects = Self.objects([
                "objectName: db-pass\nobjectType: secret",
                "objectName: nope\nobjectType: secret\nobjectAlias: NOPE\noptional: true",
                "objectName: db-pass\nobjectType: secret\nobjectVersion: \(Self.unknownVersion)\nobjectAlias: OLD\noptional: \"true\"",
                "objectName: signing\nobjectType: key",
                "objectName: missing-history\nobjectType: secret\nobjectVersionHistory: 2\noptional: true",
                "objectName: api-key\nobjectType: secret\nobjectVersion: \(Self.unknownVersion)\nobjectVersionHistory: 2\nobjectAlias: hist\noptional: true",
                "objectName: absent-cert\nobjectType: cert\noptional: true",
            ])
            let response = try await harness.fetch(harness.request(objects: objects))
            #expect(response.files.map(\.path) == ["db-pass", "signing"])
            #expect(response.objectVersions.map(\.id) == ["secret/db-pass", "key/signing"])
            #expect(
                response.missingOptionalObjects == [
                    MissingObject(id: "secret/nope", path: "NOPE"),
                    MissingObject(id: "secret/db-pass", path: "OLD"),
                    MissingObject(id: "secret/missing-history", path: "missing-history"),
                    MissingObject(id: "secret/api-key", path: "hist"),
                    MissingObject(id: "cert/absent-cert", path: "absent-cert"),
                ]
            )
        }
    }

    @Test("an optional object that appears later is written by the next fetch")
    func optionalObjectAppears() async throws {
        try await AzureHarness.withHarness { (harness: AzureHarness) async throws in
            let objects = Self.objects(["objectName: db-pass\nobjectType: secret", "objectName: later\nobjectType: secret\noptional: true"])
            let before = try await harness.fetch(harness.request(objects: objects))
            #expect(before.files.map(\.path) == ["db-pass"])
            let version = harness.emulator.setSecret(vault: "kv1", name: "later", value: "now-here")
            let after = try await harness.fetch(harness.request(objects: objects))
            #expect(after.files.map(\.path) == ["db-pass", "later"])
            #expect(after.files[1].contents == Array("now-here".utf8))
            #expect(after.objectVersions[1] == ObjectVersion(id: "secret/later", version: version))
            #expect(after.missingOptionalObjects.isEmpty)

            harness.emulator.deleteSecret(vault: "kv1", name: "later")
            let gone = try await harness.fetch(harness.request(objects: objects))
            #expect(gone.files.map(\.path) == ["db-pass"])
        }
    }

    @Test("optional only forgives Key Vault's object-not-found: a 404 of a non-optional object, a 403 and a disabled version still fail")
    func optionalForgivesOnlyNotFound() async throws {
        try await AzureHarness.withHarness { (harness: AzureHarness) async throws in
            let required = Self.objects(["objectName: db-pass\nobjectType: secret", "objectName: nope\nobjectType: secret"])
            let notFound = await #expect(throws: ProviderFailure.self) { try await harness.fetch(harness.request(objects: required)) }
            guard case .objectNotFound(let message) = notFound else { Issue.record("got \(String(describing: notFound))"); return }
            #expect(message.contains("failed to get objectType:secret, objectName:nope") && message.contains("SecretNotFound"))

            let locked = Self.objects(["objectName: s\nobjectType: secret\noptional: true", "objectName: t\nobjectType: secret\noptional: true"])
            let forbidden = await #expect(throws: ProviderFailure.self) {
                try await harness.fetch(harness.request(objects: locked, vault: "locked"))
            }
            guard case .permissionDenied = forbidden else { Issue.record("got \(String(describing: forbidden))"); return }

            let versions = harness.emulator.secretVersions(vault: "kv1", name: "api-key")
            harness.emulator.setSecretEnabled(vault: "kv1", name: "api-key", version: versions[0], enabled: false)
            let disabled = Self.objects(["objectName: db-pass\nobjectType: secret", "objectName: api-key\nobjectType: secret\nobjectVersion: \(versions[0])\noptional: true"])
            let refused = await #expect(throws: ProviderFailure.self) { try await harness.fetch(harness.request(objects: disabled)) }
            guard case .permissionDenied(let text) = refused else { Issue.record("got \(String(describing: refused))"); return }
            #expect(text.contains("disabled"))
        }
    }

    @Test("a volume whose every object is optional and missing fails as not found, naming them")
    func everyObjectOptionalAndMissing() async throws {
        try await AzureHarness.withHarness { (harness: AzureHarness) async throws in
            let objects = Self.objects(["objectName: a1\nobjectType: secret\noptional: true", "objectName: b1\nobjectType: key\noptional: true"])
            let failure = await #expect(throws: ProviderFailure.self) { try await harness.fetch(harness.request(objects: objects)) }
            guard case .objectNotFound(let message) = failure else { Issue.record("got \(String(describing: failure))"); return }
            #expect(
                message == "failed to mount objects, error: every object is optional and none is in Key Vault (secret/a1, key/b1); refusing to publish an empty volume"
            )
        }
    }

    // MARK: Several vaults and tenants

    @Test("objects in two vaults of one tenant: one token, vault-qualified ids for the other vault, same names kept apart")
    func twoVaultsOneTenant() async throws {
        try await AzureHarness.withHarness(adjustSeed: { seed, _ in
            seed.vaults?["kv2"] = .init(secrets: ["db-pass": [.init(value: "kv2-db-password")], "only-kv2": [.init(value: "two")]])
        }) { (harness: AzureHarness) async throws in
            let objects = Self.objects([
                "objectName: db-pass\nobjectType: secret",
                "objectName: db-pass\nobjectType: secret\nkeyvaultName: kv2\nobjectAlias: kv2-db-pass",
                "objectName: only-kv2\nobjectType: secret\nkeyvaultName: \" KV2 \"",
                "objectName: api-key\nobjectType: secret\nkeyvaultName: kv1\nobjectAlias: same-vault",
            ])
            let response = try await harness.fetch(harness.request(objects: objects))
            #expect(response.files.map(\.path) == ["db-pass", "kv2-db-pass", "only-kv2", "same-vault"])
            #expect(response.files.map { String(decoding: $0.contents, as: UTF8.self) } == ["s3cr3t-db-password", "kv2-db-password", "two", "key-v3"])
            #expect(response.objectVersions.map(\.id) == ["secret/db-pass", "kv2/secret/db-pass", "KV2/secret/only-kv2", "secret/api-key"])
            #expect(Set(response.objectVersions.map(\.id)).count == response.objectVersions.count)
            #expect(harness.emulator.tokenRequestCount == 1)
            #expect(harness.emulator.requestCounts["GET /kv2/secrets/db-pass/"] == 1)
            // One client per vault, whatever the case an object writes its name in.
            #expect(harness.emulator.requestCounts["GET /kv2/secrets/only-kv2/"] == 1, "\(harness.emulator.requestCounts)")
        }
    }

    @Test("an object with its own tenantID gets that tenant's token; each tenant is asked once")
    func objectsOfAnotherTenant() async throws {
        try await AzureHarness.withHarness(adjustSeed: { seed, _ in
            seed.additionalTenantIDs = [Self.otherTenant]
            seed.vaults?["kv-b"] = .init(secrets: ["b1": [.init(value: "b-one")], "b2": [.init(value: "b-two")]])
        }) { (harness: AzureHarness) async throws in
            let objects = Self.objects([
                "objectName: db-pass\nobjectType: secret",
                "objectName: b1\nobjectType: secret\nkeyvaultName: kv-b\ntenantID: \(Self.otherTenant)",
                "objectName: b2\nobjectType: secret\nkeyvaultName: kv-b\ntenantId: \(Self.otherTenant)",
                "objectName: api-key\nobjectType: secret",
            ])
            let response = try await harness.fetch(harness.request(objects: objects))
            #expect(response.files.map { String(decoding: $0.contents, as: UTF8.self) } == ["s3cr3t-db-password", "b-one", "b-two", "key-v3"])
            #expect(response.objectVersions.map(\.id) == ["secret/db-pass", "kv-b/secret/b1", "kv-b/secret/b2", "secret/api-key"])
            #expect(harness.emulator.requestCounts["POST /\(AzureHarness.tenant)/oauth2/v2.0/token"] == 1)
            #expect(harness.emulator.requestCounts["POST /\(Self.otherTenant)/oauth2/v2.0/token"] == 1)

            // A tenant the identity is not known in fails like any identity error, naming the object.
            let wrong = Self.objects(["objectName: b1\nobjectType: secret\nkeyvaultName: kv-b\ntenantID: not-a-tenant"])
            let failure = await #expect(throws: ProviderFailure.self) { try await harness.fetch(harness.request(objects: wrong)) }
            guard case .permissionDenied(let message) = failure else { Issue.record("got \(String(describing: failure))"); return }
            #expect(message.contains("objectName:b1") && message.contains("AADSTS90002"))
        }
    }

    // MARK: --write-cert-and-key-in-separate-files and --construct-pem-chain

    @Test("separate files: <file>.crt and <file>.key before the file, same mode and version, byte for byte")
    func separateCertificateAndKeyFiles() async throws {
        try await AzureHarness.withHarness(writeCertAndKeyInSeparateFiles: true, adjustSeed: { seed, chain in
            let pem = PEM.encode(type: "PRIVATE KEY", der: chain.leafKeyPKCS8) + PEM.encode(type: "CERTIFICATE", der: chain.leaf)
                + PEM.encode(type: "CERTIFICATE", der: chain.intermediate)
            seed.vaults?["kv1"]?.certificates?["pem-web"] = [.init(pem: pem)]
        }) { (harness: AzureHarness) async throws in
            let chain = harness.chain
            let objects = Self.objects([
                "objectName: web\nobjectType: secret\nfilePermission: \"0600\"",
                "objectName: web\nobjectType: secret\nobjectFormat: pfx\nobjectAlias: web.pfx",
                "objectName: pem-web\nobjectType: secret",
                "objectName: db-pass\nobjectType: secret",
                "objectName: web\nobjectType: cert\nobjectAlias: leaf.pem",
            ])
            let response = try await harness.fetch(harness.request(objects: objects))
            #expect(
                response.files.map(\.path) == [
                    "web.crt", "web.key", "web", "web.pfx.crt", "web.pfx.key", "web.pfx", "pem-web.crt", "pem-web.key", "pem-web", "db-pass", "leaf.pem",
                ]
            )
            let key = PEM.encode(type: "PRIVATE KEY", der: chain.leafKeyPKCS8)
            let certificates = [chain.leaf, chain.intermediate, chain.root].map { PEM.encode(type: "CERTIFICATE", der: $0) }.joined()
            func text(_ index: Int) -> String { String(decoding: response.files[index].contents, as: UTF8.self) }
            #expect(text(0) == certificates)
            #expect(text(1) == key)
            #expect(text(2) == key + certificates)
            #expect(response.files[0...2].allSatisfy { $0.mode == 0o600 })
            #expect(text(3).isEmpty && text(4).isEmpty)  // a PFX is base64 text: nothing to split (as upstream)
            #expect(Data(base64Encoded: text(5)) != nil)
            #expect(text(6) == PEM.encode(type: "CERTIFICATE", der: chain.leaf) + PEM.encode(type: "CERTIFICATE", der: chain.intermediate))
            #expect(text(7) == key)
            #expect(text(8) == key + PEM.encode(type: "CERTIFICATE", der: chain.leaf) + PEM.encode(type: "CERTIFICATE", der: chain.intermediate))
            #expect(response.objectVersions.map(\.id) == [
                "secret/web", "secret/web", "secret/web", "secret/web", "secret/web", "secret/web",
                "secret/pem-web", "secret/pem-web", "secret/pem-web", "secret/db-pass", "cert/web",
            ])
            #expect(Set(response.objectVersions[0...5].map(\.version)).count == 1)
        }
    }

    @Test("separate files in version history mode are <file>/<index>.crt and .key")
    func separateFilesWithVersionHistory() async throws {
        try await AzureHarness.withHarness(writeCertAndKeyInSeparateFiles: true) { (harness: AzureHarness) async throws in
            let response = try await harness.fetch(
                harness.request(objects: Self.objects(["objectName: web\nobjectType: secret\nobjectAlias: w\nobjectVersionHistory: 2"]))
            )
            #expect(response.files.map(\.path) == ["w/0.crt", "w/0.key", "w/0"])
            #expect(response.objectVersions.map(\.id) == ["secret/web/0", "secret/web/0", "secret/web/0"])
        }
    }

    @Test("--construct-pem-chain=false keeps the PKCS#12's order; true orders leaf, intermediate, root")
    func constructPEMChainFlag() async throws {
        for construct in [false, true] {
            try await AzureHarness.withHarness(constructPEMChain: construct, adjustSeed: { seed, chain in
                seed.vaults?["kv1"]?.certificates?["stored"] = [.init(pkcs12: chain.unencryptedPKCS12Base64(certificates: [chain.root, chain.leaf, chain.intermediate]))]
            }) { (harness: AzureHarness) async throws in
                let chain = harness.chain
                let response = try await harness.fetch(
                    harness.request(objects: Self.objects(["objectName: stored\nobjectType: secret", "objectName: web\nobjectType: secret"]))
                )
                let key = PEM.encode(type: "PRIVATE KEY", der: chain.leafKeyPKCS8)
                let stored = construct ? [chain.leaf, chain.intermediate, chain.root] : [chain.root, chain.leaf, chain.intermediate]
                #expect(String(decoding: response.files[0].contents, as: UTF8.self) == key + stored.map { PEM.encode(type: "CERTIFICATE", der: $0) }.joined())
                // The seeded `web` PFX is encrypted (NIOSSL's layout) and stores leaf, root, intermediate.
                let web = construct ? [chain.leaf, chain.intermediate, chain.root] : [chain.leaf, chain.root, chain.intermediate]
                #expect(String(decoding: response.files[1].contents, as: UTF8.self) == key + web.map { PEM.encode(type: "CERTIFICATE", der: $0) }.joined())
            }
        }
    }

    @Test("a PKCS#12 with several private keys fails with a clear message instead of writing one of them")
    func severalPrivateKeys() async throws {
        let chain = try TestCertificateChain.make()
        let extra = Array(P256.Signing.PrivateKey().derRepresentation)
        let twoKeys = chain.unencryptedPKCS12Base64(certificates: [chain.leaf, chain.intermediate], extraKeys: [extra])
        try await AzureHarness.withHarness(adjustSeed: { seed, _ in
            seed.vaults?["kv1"]?.secrets?["two-keys"] = [.init(pkcs12: twoKeys)]
        }) { (harness: AzureHarness) async throws in
            let failure = await #expect(throws: ProviderFailure.self) {
                try await harness.fetch(harness.request(objects: Self.objects(["objectName: two-keys\nobjectType: secret"])))
            }
            guard case .misconfigured(let message) = failure else { Issue.record("got \(String(describing: failure))"); return }
            #expect(
                message == "failed to mount objects, error: failed to get objectType:secret, objectName:two-keys, objectVersion:: the PKCS#12 secret holds 2 private keys; the driver writes one private key per certificate object (store each key with its own certificate in Key Vault)"
            )
            // As PFX the file is written unchanged (nothing is decoded).
            let pfx = try await harness.fetch(harness.request(objects: Self.objects(["objectName: two-keys\nobjectType: secret\nobjectFormat: pfx"])))
            #expect(pfx.files[0].contents == Array(twoKeys.utf8))
        }
    }

    @Test("PKCS#12 files without a key, without a certificate, or whose key matches no certificate fail clearly")
    func malformedPKCS12() throws {
        let chain = try TestCertificateChain.make()
        let other = Array(P256.Signing.PrivateKey().derRepresentation)
        let cases: [([UInt8], String)] = [
            (UnencryptedPKCS12.make(keys: [], certificates: [chain.leaf]), "the PKCS#12 secret holds no private key"),
            (UnencryptedPKCS12.make(keys: [chain.leafKeyPKCS8], certificates: []), "the PKCS#12 secret holds no certificate"),
            (UnencryptedPKCS12.make(keys: [other], certificates: [chain.leaf, chain.root]), "the PKCS#12 secret holds no certificate of its private key"),
        ]
        for (der, expected) in cases {
            let error = #expect(throws: ObjectContents.Failure.self) { try ObjectContents.readPKCS12(der: der) }
            #expect(error?.message == expected)
        }
        let read = try ObjectContents.readPKCS12(der: UnencryptedPKCS12.make(keys: [chain.leafKeyPKCS8], certificates: [chain.intermediate, chain.leaf]))
        #expect(read.privateKeyPKCS8 == chain.leafKeyPKCS8)
        #expect(read.certificates == [chain.intermediate, chain.leaf])
    }

    @Test("a PKCS#12 written as pfx carries its certificates and key for kubernetes.io/tls sync, whatever its encoding")
    func certificatePartsForPFX() async throws {
        try await AzureHarness.withHarness { (harness: AzureHarness) async throws in
            let chain = harness.chain
            let objects = Self.objects([
                "objectName: web\nobjectType: secret\nobjectFormat: pfx\nobjectAlias: web.pfx",
                "objectName: web\nobjectType: secret\nobjectFormat: pfx\nobjectEncoding: base64\nobjectAlias: web.p12",
                "objectName: web\nobjectType: secret",
                "objectName: db-pass\nobjectType: secret",
            ])
            let response = try await harness.fetch(harness.request(objects: objects))
            let expected = CertificateBundleParts(certificates: [chain.leaf, chain.root, chain.intermediate], privateKeyPKCS8: chain.leafKeyPKCS8)
            #expect(response.certificateParts == ["web.pfx": expected, "web.p12": expected])
            #expect(!"\(expected)".contains("MII"))
        }
    }
}

extension AzureObjectFeaturesTests {
    @Test("kubernetes.io/tls from pfx objects: tls.crt the certificates as stored, tls.key PKCS#1 for RSA and SEC 1 for EC, as upstream writes them")
    func tlsSecretFromPFXObjects() async throws {
        let rsa = try TestRSACertificate.make()
        let rsaPFX = Data(UnencryptedPKCS12.make(keys: [rsa.keyPKCS8], certificates: [rsa.certificate])).base64EncodedString()
        try await AzureHarness.withHarness(adjustSeed: { seed, _ in
            seed.vaults?["kv1"]?.certificates?["rsa-web"] = [.init(pkcs12: rsaPFX)]
        }) { (harness: AzureHarness) async throws in
            let chain = harness.chain
            let objects = Self.objects([
                "objectName: web\nobjectType: secret\nobjectFormat: pfx\nobjectAlias: web.pfx",
                "objectName: rsa-web\nobjectType: secret\nobjectFormat: pfx\nobjectEncoding: base64\nobjectAlias: rsa.p12",
                "objectName: web\nobjectType: secret\nobjectAlias: web.pem",
            ])
            let response = try await harness.fetch(harness.request(objects: objects))
            let files = Dictionary(uniqueKeysWithValues: response.files.map { ($0.path, $0.contents) })
            func tls(_ file: String) throws -> KubernetesSecret? {
                try SecretSyncer.desiredSecret(
                    .init(secretName: "s", type: "kubernetes.io/tls", data: [.init(objectName: file, key: "tls.crt"), .init(objectName: file, key: "tls.key")]),
                    namespace: "ns",
                    files: files,
                    owners: [],
                    certificateParts: response.certificateParts
                )
            }
            let ec = try P256.Signing.PrivateKey(derRepresentation: chain.leafKeyPKCS8)
            func der(_ tag: UInt8, _ content: [UInt8]) -> [UInt8] {
                content.count < 0x80 ? [tag, UInt8(content.count)] + content : [tag, 0x81, UInt8(content.count)] + content
            }
            // Go's MarshalECPrivateKey: version 1, the scalar, [0] the curve, [1] the public point.
            let sec1 = der(
                0x30,
                der(0x02, [1]) + der(0x04, Array(ec.rawRepresentation))
                    + der(0xA0, der(0x06, [0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07]))
                    + der(0xA1, der(0x03, [0] + Array(ec.publicKey.x963Representation)))
            )
            let chainPEM = [chain.leaf, chain.root, chain.intermediate].map { PEM.encode(type: "CERTIFICATE", der: $0) }.joined()
            let web = try #require(try tls("web.pfx"))
            #expect(web.data["tls.crt"] == Array(chainPEM.utf8))
            #expect(web.data["tls.key"] == Array(PEM.encode(type: "EC PRIVATE KEY", der: sec1).utf8))

            let rsaSecret = try #require(try tls("rsa.p12"))
            #expect(rsaSecret.data["tls.crt"] == Array(PEM.encode(type: "CERTIFICATE", der: rsa.certificate).utf8))
            #expect(rsaSecret.data["tls.key"] == Array(PEM.encode(type: "RSA PRIVATE KEY", der: rsa.keyPKCS1).utf8))

            // A PEM object gives the same key form (chain ordered by --construct-pem-chain, as the file is).
            let pem = try #require(try tls("web.pem"))
            #expect(pem.data["tls.key"] == web.data["tls.key"])
            #expect(pem.data["tls.crt"] == Array([chain.leaf, chain.intermediate, chain.root].map { PEM.encode(type: "CERTIFICATE", der: $0) }.joined().utf8))
        }
    }
}
