import Logging
import SecretsStoreCore
import SecretsStoreCoreTesting
import SecretsStoreLinux
import Testing

/// Missing optional objects (events, Secret keys left out), Secret sync that reconciles on every refresh, and
/// the form of `tls.key`, over the pipeline's fakes (``PipelineHarness``).
@Suite("Optional objects, reconciling sync and tls.key (fakes, no root)")
struct OptionalObjectsAndReconcileTests {
    static func spc(_ objects: [SecretProviderClass.SecretObject]) -> SecretProviderClass {
        SecretProviderClass(namespace: "ns", name: "spc", provider: "test", parameters: ["a": "b"], secretObjects: objects)
    }

    static let present = ProviderResponse(
        files: [SecretFile(path: "username", mode: 0o644, contents: Array("admin".utf8))],
        objectVersions: [ObjectVersion(id: "secret/username", version: "1")],
        missingOptionalObjects: [MissingObject(id: "secret/password", path: "password")]
    )

    static let rotation = RotationPolicy(enabled: true, interval: .seconds(60))

    func missingEvents(_ harness: PipelineHarness) -> [PodEvent] {
        harness.kubernetes.events.filter { $0.reason == PodEvent.optionalObjectsMissing }
    }

    @Test("missing optional objects: no file, a warning naming them once, again only when what the volume holds changes")
    func optionalObjectsMissingEvent() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let harness = PipelineHarness(root: root, rotation: Self.rotation, response: Self.present)
            #expect(try await harness.publish() == .published)
            #expect(try harness.entries().filter { !$0.hasPrefix("..") } == ["username"])
            let events = missingEvents(harness)
            #expect(events.count == 1)
            #expect(events.first?.kind == .warning)
            #expect(
                events.first?.message
                    == "mounted spc ns/spc without optional objects the store does not have: secret/password (password)"
            )
            await harness.publisher.podStatusWrites.settle()
            #expect(harness.kubernetes.podStatuses["ns/pod-ns-spc"]?.objects.map(\.id) == ["secret/username"])

            // Still missing, nothing else changed: no new event.
            harness.clock.advance(by: .seconds(61))
            #expect(await harness.publisher.rotate(logger: harness.logs.logger())[harness.target] == .refreshed(changed: false))
            #expect(missingEvents(harness).count == 1)

            // It appears: the refresh writes it, and there is nothing missing to report.
            var appeared = PipelineHarness.files
            appeared.files = Array(appeared.files.prefix(2))
            harness.provider.respond(with: appeared)
            harness.clock.advance(by: .seconds(61))
            #expect(await harness.publisher.rotate(logger: harness.logs.logger())[harness.target] == .refreshed(changed: true))
            #expect(try harness.read("password") == "s3cr3t-value")
            #expect(missingEvents(harness).count == 1)

            // Another object goes missing: a new event names it.
            var other = appeared
            other.files.removeFirst()
            other.objectVersions.removeFirst()
            other.missingOptionalObjects = [MissingObject(id: "secret/username", path: "username")]
            harness.provider.respond(with: other)
            harness.clock.advance(by: .seconds(61))
            _ = await harness.publisher.rotate(logger: harness.logs.logger())
            #expect(missingEvents(harness).map(\.message).last?.hasSuffix("secret/username (username)") == true)
            #expect(missingEvents(harness).count == 2)
            #expect(try harness.entries().filter { !$0.hasPrefix("..") } == ["password"])
            for event in harness.kubernetes.events { #expect(!event.message.contains("admin") && !event.message.contains("s3cr3t")) }
        }
    }

    @Test("keys whose source is a missing optional object are left out; the Secret is written with the others")
    func syncLeavesOutMissingKeys() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let opaque = SecretProviderClass.SecretObject(
                secretName: "app",
                type: "Opaque",
                data: [
                    .init(objectName: "username", key: "user"), .init(objectName: "password", key: "pass"),
                    .init(objectName: "hist/0", key: "h0"), .init(objectName: "web.key", key: "k"),
                ]
            )
            let tls = SecretProviderClass.SecretObject(
                secretName: "web-tls",
                type: "kubernetes.io/tls",
                data: [.init(objectName: "username", key: "tls.crt"), .init(objectName: "web", key: "tls.key")]
            )
            var response = Self.present
            response.missingOptionalObjects += [MissingObject(id: "secret/hist", path: "hist"), MissingObject(id: "secret/web", path: "web")]
            let harness = PipelineHarness(root: root, syncSecrets: true, spc: Self.spc([opaque, tls]), response: response)
            try await harness.publish()
            #expect(harness.kubernetes.secrets["ns/app"]?.data == ["user": Array("admin".utf8)])
            #expect(harness.kubernetes.secrets["ns/web-tls"] == nil)
            #expect(!harness.kubernetes.events.contains { $0.reason == PodEvent.failedToCreateSecret })
        }
    }

    @Test("a source file absent for another reason still fails the Secret, as before")
    func otherAbsentFilesStillFail() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let typo = SecretProviderClass.SecretObject(
                secretName: "app",
                type: "Opaque",
                data: [.init(objectName: "username", key: "user"), .init(objectName: "passwrod", key: "pass")]
            )
            let harness = PipelineHarness(root: root, syncSecrets: true, spc: Self.spc([typo]), response: Self.present)
            try await harness.publish()
            #expect(harness.kubernetes.secrets.isEmpty)
            #expect(harness.kubernetes.events.contains {
                $0.reason == PodEvent.failedToCreateSecret && $0.message == "secret app: file passwrod not found in the volume"
            })
        }
    }

    @Test("every refresh reconciles: an edited Secret is restored, an unchanged one costs no write and no event")
    func everyRefreshReconciles() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let harness = PipelineHarness(root: root, rotation: Self.rotation, syncSecrets: true, spc: Self.spc([SyncAndRotationTests.opaque]))
            try await harness.publish()
            let created = try #require(harness.kubernetes.secrets["ns/app-secret"])

            // Nothing changed anywhere: the refresh reads the Secret and leaves it alone.
            harness.clock.advance(by: .seconds(61))
            #expect(await harness.publisher.rotate(logger: harness.logs.logger())[harness.target] == .refreshed(changed: false))
            #expect(harness.kubernetes.secrets["ns/app-secret"]?.resourceVersion == created.resourceVersion)
            #expect(!harness.kubernetes.events.contains { $0.reason == PodEvent.secretRotationComplete })

            // Someone edits a key: the next refresh puts it back (though the vault did not change).
            var edited = created
            edited.data["user"] = Array("intruder".utf8)
            harness.kubernetes.add(edited)
            harness.clock.advance(by: .seconds(61))
            #expect(await harness.publisher.rotate(logger: harness.logs.logger())[harness.target] == .refreshed(changed: false))
            #expect(harness.kubernetes.secrets["ns/app-secret"]?.data == created.data)
            #expect(harness.kubernetes.events.filter { $0.reason == PodEvent.secretRotationComplete }.count == 1)

            // The SecretProviderClass's secretObjects change: applied at the next refresh too.
            var changed = SyncAndRotationTests.opaque
            changed.data = [.init(objectName: "password", key: "pw")]
            harness.kubernetes.add(Self.spc([changed]))
            harness.clock.advance(by: .seconds(61))
            _ = await harness.publisher.rotate(logger: harness.logs.logger())
            #expect(harness.kubernetes.secrets["ns/app-secret"]?.data == ["pw": Array("s3cr3t-value".utf8)])
            #expect(harness.kubernetes.events.filter { $0.reason == PodEvent.secretRotationComplete }.count == 2)
        }
    }

    // MARK: tls.key and tls.crt

    static func tlv(_ tag: UInt8, _ content: [UInt8]) -> [UInt8] {
        content.count < 0x80 ? [tag, UInt8(content.count)] + content : [tag, 0x81, UInt8(content.count)] + content
    }
    static let rsaOID: [UInt8] = [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01]
    static let ecOID: [UInt8] = [0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01]
    static let p256: [UInt8] = [0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07]
    /// A PKCS#1 shape: version 0 and eight more integers.
    static let pkcs1 = tlv(0x30, tlv(0x02, [0x00]) + (1...8).flatMap { tlv(0x02, [UInt8($0)]) })
    static let point = [0x00, 0x04] + [UInt8](repeating: 7, count: 64)
    static func pkcs8(_ algorithm: [UInt8], _ key: [UInt8]) -> [UInt8] {
        tlv(0x30, tlv(0x02, [0x00]) + tlv(0x30, algorithm) + tlv(0x04, key))
    }

    static func tlsKey(_ pem: String) throws(SecretSyncer.Failure) -> String? {
        let object = SecretProviderClass.SecretObject(
            secretName: "t", type: "kubernetes.io/tls", data: [.init(objectName: "f", key: "tls.key")]
        )
        let secret = try SecretSyncer.desiredSecret(object, namespace: "ns", files: ["f": Array(pem.utf8)], owners: [])
        return secret?.data["tls.key"].map { String(decoding: $0, as: UTF8.self) }
    }

    @Test("tls.key is written as upstream writes it: RSA as PKCS#1, EC as SEC 1 with curve and public key; others as found")
    func tlsKeyForms() throws {
        // PKCS#8 RSA → the PKCS#1 it wraps.
        let rsa = Self.pkcs8(Self.tlv(0x06, Self.rsaOID) + [0x05, 0x00], Self.pkcs1)
        #expect(try Self.tlsKey(PEM.encode(type: "PRIVATE KEY", der: rsa)) == PEM.encode(type: "RSA PRIVATE KEY", der: Self.pkcs1))
        // PKCS#1 stays PKCS#1.
        #expect(try Self.tlsKey(PEM.encode(type: "RSA PRIVATE KEY", der: Self.pkcs1)) == PEM.encode(type: "RSA PRIVATE KEY", der: Self.pkcs1))
        // PKCS#8 EC (inner key without the curve, scalar one byte short) → SEC 1 with the curve, padded scalar.
        let inner = Self.tlv(0x30, Self.tlv(0x02, [0x01]) + Self.tlv(0x04, [UInt8](repeating: 9, count: 31)) + Self.tlv(0xA1, Self.tlv(0x03, Self.point)))
        let ec = Self.pkcs8(Self.tlv(0x06, Self.ecOID) + Self.tlv(0x06, Self.p256), inner)
        let sec1 = Self.tlv(
            0x30,
            Self.tlv(0x02, [0x01]) + Self.tlv(0x04, [0] + [UInt8](repeating: 9, count: 31)) + Self.tlv(0xA0, Self.tlv(0x06, Self.p256))
                + Self.tlv(0xA1, Self.tlv(0x03, Self.point))
        )
        #expect(try Self.tlsKey(PEM.encode(type: "PRIVATE KEY", der: ec)) == PEM.encode(type: "EC PRIVATE KEY", der: sec1))
        #expect(try Self.tlsKey(PEM.encode(type: "EC PRIVATE KEY", der: sec1)) == PEM.encode(type: "EC PRIVATE KEY", der: sec1))
        // An EC key stored without its public key, an Ed25519 key and bytes that are no key are kept as found.
        let noPublic = Self.pkcs8(
            Self.tlv(0x06, Self.ecOID) + Self.tlv(0x06, Self.p256),
            Self.tlv(0x30, Self.tlv(0x02, [0x01]) + Self.tlv(0x04, [UInt8](repeating: 9, count: 32)))
        )
        let ed25519 = Self.pkcs8(Self.tlv(0x06, [0x2B, 0x65, 0x70]), Self.tlv(0x04, [UInt8](repeating: 1, count: 32)))
        for (type, der) in [("PRIVATE KEY", noPublic), ("PRIVATE KEY", ed25519), ("PRIVATE KEY", [1, 2, 3])] {
            #expect(try Self.tlsKey(PEM.encode(type: type, der: der)) == PEM.encode(type: type, der: der))
        }
    }

    @Test("a file with two private keys is refused for tls.key")
    func twoPrivateKeys() {
        let pem = PEM.encode(type: "PRIVATE KEY", der: [1]) + PEM.encode(type: "EC PRIVATE KEY", der: [2])
        let error = #expect(throws: SecretSyncer.Failure.self) { try Self.tlsKey(pem) }
        #expect(error?.message == "secret t: 2 private keys in f; a kubernetes.io/tls Secret takes one")
    }

    @Test("a PKCS#12 file's parts fill a kubernetes.io/tls Secret; without parts it fails naming the file")
    func tlsFromCertificateParts() throws {
        let object = SecretProviderClass.SecretObject(
            secretName: "web-tls", type: "kubernetes.io/tls",
            data: [.init(objectName: "web.pfx", key: "tls.crt"), .init(objectName: "web.pfx", key: "tls.key")]
        )
        let rsa = Self.pkcs8(Self.tlv(0x06, Self.rsaOID) + [0x05, 0x00], Self.pkcs1)
        let parts = CertificateBundleParts(certificates: [[0x30, 0x01, 0x01], [0x30, 0x01, 0x02]], privateKeyPKCS8: rsa)
        let files = ["web.pfx": Array("TUlJS3hBSUJBekND".utf8)]
        let secret = try #require(
            try SecretSyncer.desiredSecret(object, namespace: "ns", files: files, owners: [], certificateParts: ["web.pfx": parts])
        )
        #expect(secret.data["tls.crt"] == Array((PEM.encode(type: "CERTIFICATE", der: [0x30, 0x01, 0x01]) + PEM.encode(type: "CERTIFICATE", der: [0x30, 0x01, 0x02])).utf8))
        #expect(secret.data["tls.key"] == Array(PEM.encode(type: "RSA PRIVATE KEY", der: Self.pkcs1).utf8))
        let error = #expect(throws: SecretSyncer.Failure.self) {
            try SecretSyncer.desiredSecret(object, namespace: "ns", files: files, owners: [])
        }
        #expect(error?.message == "secret web-tls: no certificate in web.pfx")
    }
}
