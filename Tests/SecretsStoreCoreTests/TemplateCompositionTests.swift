import Logging
import SecretsStoreCore
import SecretsStoreCoreTesting
import SecretsStoreLinux
import SecretsStoreTemplates
import Testing

/// Values composed from several files: `fileTemplates` written into the mount (and refreshed with it), Secret
/// keys with a `template` on the node and in the sync controller, the errors (INVALID_ARGUMENT's publish error,
/// Ready=False `InvalidSpec`), and that no value or output reaches an error or a log line.
@Suite("Templates composing files and Secret keys", .timeLimit(.minutes(2)))
struct TemplateCompositionTests {
    static let secretValue = "s3cr3t-value"
    static let fileTemplates = """
        db.url: "postgres://{{username}}:{{password}}@db/app"
        conf/app.ini: |
          user = {{uppercased(username)}}
          cert = {{base64Encode(certs/tls.crt)}}

        """

    static func spc(
        fileTemplates: String? = TemplateCompositionTests.fileTemplates,
        secretObjects: [SecretProviderClass.SecretObject] = [],
        sync: SecretProviderClass.SyncSpec? = nil
    ) -> SecretProviderClass {
        var parameters = PipelineHarness.spc.parameters
        parameters["fileTemplates"] = fileTemplates
        return SecretProviderClass(namespace: "ns", name: "spc", provider: "test", parameters: parameters, secretObjects: secretObjects, sync: sync)
    }

    static let urlSecret = SecretProviderClass.SecretObject(
        secretName: "db", type: "Opaque",
        data: [
            .init(key: "DATABASE_URL", template: "postgres://{{username}}:{{password}}@{{certs/tls.crt}}/app"),
            .init(objectName: "db.url", key: "from-composed-file"),
            .init(key: "auth", template: "{{base64Encode(username)}}"),
        ]
    )

    // MARK: Files in the mount

    @Test("fileTemplates are written into the mount beside the provider's files, with the default mode")
    func composedFilesAreWritten() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let harness = PipelineHarness(root: root, spc: Self.spc())
            #expect(try await harness.publish() == .published)
            #expect(try harness.read("db.url") == "postgres://admin:s3cr3t-value@db/app")
            #expect(try harness.read("conf/app.ini") == "user = ADMIN\ncert = Q0VSVA==\n")
            #expect(try harness.read("username") == "admin")
            #expect(try harness.fileSystem.permissions(of: harness.target + "/db.url") == 0o644)
            #expect(try harness.entries().filter { !$0.hasPrefix("..") } == ["certs", "conf", "db.url", "password", "username"])
        }
    }

    @Test("a rotation recomposes the files in the same swap as the provider's")
    func composedFilesAreRefreshed() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let harness = PipelineHarness(root: root, rotation: RotationPolicy(enabled: true, interval: .seconds(60)), spc: Self.spc())
            try await harness.publish()
            var rotated = PipelineHarness.files
            rotated.files[1].contents = Array("rotated-pass".utf8)
            rotated.objectVersions[1].version = "8"
            harness.provider.respond(with: rotated)
            harness.clock.advance(by: .seconds(61))
            #expect(try await harness.publish() == .refreshed(changed: true))
            #expect(try harness.read("db.url") == "postgres://admin:rotated-pass@db/app")
            #expect(try harness.read("password") == "rotated-pass")
        }
    }

    @Test("a template of a missing optional object is left out, as that object's file is")
    func missingOptionalSourceLeavesTheFileOut() throws {
        var response = PipelineHarness.files
        response.files.remove(at: 1)
        response.missingOptionalObjects = [MissingObject(id: "secret/password", path: "password")]
        let composed = try ClassTemplates(Self.spc()).compose(response)
        #expect(composed.files.map(\.path) == ["username", "certs/tls.crt", "conf/app.ini"])
    }

    @Test(
        "a wrong template fails the publish before anything is written: invalidTemplate naming the field, no value",
        arguments: [
            ("x: \"{{nope}}\"", TemplateError(.fileTemplate(name: "x"), .unknownFile("nope"))),
            ("x: \"{{password\"", TemplateError(.fileTemplate(name: "x"), .unterminatedTag(line: 1, column: 1))),
            ("x: \"{{base64Decode(password)}}\"", TemplateError(.fileTemplate(name: "x"), .notBase64(file: "password"))),
            ("[x]", TemplateError(.fileTemplates, .notAMapOfStrings)),
            ("x: {a: b}", TemplateError(.fileTemplates, .notAMapOfStrings)),
            ("username: \"{{password}}\"", TemplateError(.fileTemplate(name: "username"), .fileNameTaken)),
            ("certs: \"{{password}}\"", TemplateError(.fileTemplate(name: "certs"), .fileNameTaken)),
            ("../x: \"{{password}}\"", TemplateError(.fileTemplate(name: "../x"), .invalidFileName(reason: "the path must not contain '..'"))),
        ] as [(String, TemplateError)]
    )
    func wrongFileTemplateFailsThePublish(fileTemplates: String, expected: TemplateError) async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let harness = PipelineHarness(root: root, spc: Self.spc(fileTemplates: fileTemplates))
            await #expect(throws: PublishError.invalidTemplate(namespace: "ns", name: "spc", expected)) { try await harness.publish() }
            #expect(harness.mounter.mounted.isEmpty)
            let message = "\(PublishError.invalidTemplate(namespace: "ns", name: "spc", expected))"
            #expect(message.hasPrefix("secretproviderclass ns/spc is invalid: spec.parameters.fileTemplates"))
            for line in harness.logs.all + [message] {
                #expect(!line.contains(Self.secretValue), "\(line)")
                #expect(!line.contains("postgres://admin"), "\(line)")
            }
        }
    }

    @Test("a provider that writes its files itself cannot have files composed beside them")
    func providerThatWritesItself() throws {
        let selfWritten = ProviderResponse(files: [], objectVersions: PipelineHarness.files.objectVersions)
        #expect(throws: TemplateError(.fileTemplate(name: "x"), .providerWritesItsOwnFiles)) {
            try ClassTemplates(Self.spc(fileTemplates: "x: constant")).compose(selfWritten)
        }
    }

    // MARK: Secret sync on the node

    @Test("node Secret sync: a template key, a key naming a composed file, a transformed key")
    func nodeSyncsTemplateKeys() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let harness = PipelineHarness(root: root, syncSecrets: true, spc: Self.spc(secretObjects: [Self.urlSecret]))
            try await harness.publish()
            let secret = try #require(harness.kubernetes.secrets["ns/db"])
            #expect(secret.data["DATABASE_URL"] == Array("postgres://admin:s3cr3t-value@CERT/app".utf8))
            #expect(secret.data["from-composed-file"] == Array("postgres://admin:s3cr3t-value@db/app".utf8))
            #expect(secret.data["auth"] == Array("YWRtaW4=".utf8))
        }
    }

    @Test(
        "node Secret sync: a wrong template key fails the publish (INVALID_ARGUMENT's case) naming the Secret and key",
        arguments: [
            (SecretProviderClass.SecretObject.DataEntry(key: "URL", template: "{{username}}:{{passwrod}}"), TemplateProblem.unknownFile("passwrod")),
            (.init(key: "URL", template: "{{username"), .unterminatedTag(line: 1, column: 1)),
            (.init(key: "URL", template: "{{base64Decode(password)}}"), .notBase64(file: "password")),
            ({ var both = SecretProviderClass.SecretObject.DataEntry(key: "URL", template: "{{username}}"); both.objectName = "username"; return both }(), .objectNameAndTemplate),
            ({ var neither = SecretProviderClass.SecretObject.DataEntry(key: "URL", template: ""); neither.template = nil; return neither }(), .neitherObjectNameNorTemplate),
        ] as [(SecretProviderClass.SecretObject.DataEntry, TemplateProblem)]
    )
    func nodeRefusesAWrongTemplateKey(entry: SecretProviderClass.SecretObject.DataEntry, problem: TemplateProblem) async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let object = SecretProviderClass.SecretObject(secretName: "db", type: "Opaque", data: [entry])
            let harness = PipelineHarness(root: root, syncSecrets: true, spc: Self.spc(fileTemplates: nil, secretObjects: [object]))
            let expected = TemplateError(.secretObjectKey(secretName: "db", key: "URL"), problem)
            await #expect(throws: PublishError.invalidTemplate(namespace: "ns", name: "spc", expected)) { try await harness.publish() }
            #expect(harness.kubernetes.secrets.isEmpty)
            for line in harness.logs.all { #expect(!line.contains(Self.secretValue), "\(line)") }
        }
    }

    @Test("without Secret sync the node ignores secretObjects' templates, as it ignores secretObjects")
    func nodeWithoutSyncIgnoresSecretTemplates() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let object = SecretProviderClass.SecretObject(secretName: "db", type: "Opaque", data: [.init(key: "URL", template: "{{nope")])
            let harness = PipelineHarness(root: root, syncSecrets: false, spc: Self.spc(fileTemplates: nil, secretObjects: [object]))
            #expect(try await harness.publish() == .published)
        }
    }

    @Test("the syncer: a template key of a missing optional object is left out; a tls Secret then not written")
    func syncerLeavesMissingOptionalTemplateKeysOut() throws {
        let files: [String: [UInt8]] = ["username": Array("admin".utf8)]
        let missing = [MissingObject(id: "secret/password", path: "password")]
        let opaque = SecretProviderClass.SecretObject(
            secretName: "db", type: "Opaque",
            data: [.init(key: "URL", template: "{{username}}:{{password}}"), .init(objectName: "username", key: "user")]
        )
        let secret = try #require(try SecretSyncer.desiredSecret(opaque, namespace: "ns", files: files, owners: [], missing: missing))
        #expect(secret.data == ["user": Array("admin".utf8)])
        let tls = SecretProviderClass.SecretObject(
            secretName: "tls", type: "kubernetes.io/tls",
            data: [.init(key: "tls.crt", template: "{{password}}"), .init(objectName: "username", key: "tls.key")]
        )
        #expect(try SecretSyncer.desiredSecret(tls, namespace: "ns", files: files, owners: [], missing: missing) == nil)
        // A template error is a failure that carries it, for the controller to tell InvalidSpec.
        let wrong = SecretProviderClass.SecretObject(secretName: "db", type: "Opaque", data: [.init(key: "URL", template: "{{nope}}")])
        let failure = #expect(throws: SecretSyncer.Failure.self) { try SecretSyncer.desiredSecret(wrong, namespace: "ns", files: files, owners: []) }
        #expect(failure?.template == TemplateError(.secretObjectKey(secretName: "db", key: "URL"), .unknownFile("nope")))
        #expect(failure?.message == "spec.secretObjects[db].data[URL]: the template names \"nope\", which is not a file of this class")
    }

    // MARK: The sync controller

    static func controllerStep(_ api: InMemoryKubernetesAPI, provider: StaticProvider) -> SecretProviderClassSyncStep {
        api.addServiceAccount(namespace: "ns", name: "app")
        return SecretProviderClassSyncStep(
            kubernetes: api,
            providers: FixedProviderDirectory(["test": provider]),
            tokens: ServiceAccountTokenCache(client: api, nowSeconds: { 1_800_000_000 }),
            audiences: .init { _ async throws(KubernetesClientError) in [] }
        )
    }

    @Test("controller: Secrets with template keys, from its own provider call and the composed files")
    func controllerSyncsTemplateKeys() async throws {
        let api = InMemoryKubernetesAPI()
        let provider = StaticProvider(PipelineHarness.files)
        let step = Self.controllerStep(api, provider: provider)
        let outcome = await step.sync(Self.spc(secretObjects: [Self.urlSecret], sync: .init(serviceAccountName: "app")), previous: [], logger: Logger(label: "test"))
        #expect(outcome.reason == .synced, "\(outcome.message)")
        let secret = try #require(api.secrets["ns/db"])
        #expect(secret.data["DATABASE_URL"] == Array("postgres://admin:s3cr3t-value@CERT/app".utf8))
        #expect(secret.data["from-composed-file"] == Array("postgres://admin:s3cr3t-value@db/app".utf8))
        #expect(provider.requests.count == 1)
    }

    @Test(
        "controller: a wrong template is Ready=False InvalidSpec naming the field; one found only in the answer is retried",
        arguments: [
            // Found without the provider: no provider call, not retried until the class changes.
            (SecretProviderClass.SecretObject.DataEntry(key: "URL", template: "{{username"), nil as String?, "spec.secretObjects[db].data[URL]", false, 0),
            (.init(key: "URL", template: "{{password}}"), "[x]", "spec.parameters.fileTemplates", false, 0),
            ({ var both = SecretProviderClass.SecretObject.DataEntry(key: "URL", template: "{{username}}"); both.objectName = "username"; return both }(), nil, "spec.secretObjects[db].data[URL]", false, 0),
            // Found in the provider's answer: the store's content may change, so the timer retries.
            (.init(key: "URL", template: "{{username}}:{{passwrod}}"), nil, "spec.secretObjects[db].data[URL]", true, 1),
            (.init(key: "URL", template: "{{base64Decode(password)}}"), nil, "spec.secretObjects[db].data[URL]", true, 1),
            (.init(key: "URL", template: "{{password}}"), "x: \"{{nope}}\"", "spec.parameters.fileTemplates[x]", true, 1),
        ] as [(SecretProviderClass.SecretObject.DataEntry, String?, String, Bool, Int)]
    )
    func controllerInvalidSpec(entry: SecretProviderClass.SecretObject.DataEntry, fileTemplates: String?, field: String, retryable: Bool, providerCalls: Int) async throws {
        let api = InMemoryKubernetesAPI()
        let provider = StaticProvider(PipelineHarness.files)
        let step = Self.controllerStep(api, provider: provider)
        let logs = LogCapture()
        let spc = Self.spc(
            fileTemplates: fileTemplates,
            secretObjects: [.init(secretName: "db", type: "Opaque", data: [entry])],
            sync: .init(serviceAccountName: "app")
        )
        let outcome = await step.sync(spc, previous: [], logger: logs.logger())
        #expect(outcome.reason == .invalidSpec)
        #expect(outcome.message.hasPrefix(field + ":"), "\(outcome.message)")
        #expect(outcome.retryable == retryable)
        #expect(provider.requests.count == providerCalls)
        #expect(api.secrets.isEmpty)
        for line in logs.all + [outcome.message] { #expect(!line.contains(Self.secretValue), "\(line)") }
    }

    // MARK: What render checks

    @Test("problems without values: every template checked against the names of the provider's files")
    func problemsAgainstFileNames() {
        let spc = Self.spc(
            fileTemplates: "db.url: \"{{username}}:{{passwrod}}\"\nusername: \"{{host}}\"\nbad: \"{{x\"\n",
            secretObjects: [
                .init(secretName: "db", type: "Opaque", data: [
                    .init(key: "URL", template: "{{db.url}} {{missing}}"),
                    .init(objectName: "username", key: "user"),
                ])
            ]
        )
        let names: Set<String> = ["username", "password"]
        #expect(ClassTemplates.problems(in: spc, providerFiles: nil).map(\.description) == [
            "spec.parameters.fileTemplates[bad]: the tag opened at line 1, column 1 is not closed (no matching }})",
        ])
        #expect(ClassTemplates.problems(in: spc, providerFiles: names).map(\.description) == [
            "spec.parameters.fileTemplates[bad]: the tag opened at line 1, column 1 is not closed (no matching }})",
            "spec.parameters.fileTemplates[username]: names a path another file of the volume already uses (the same path, or one inside the other); give the composed file another name",
            "spec.parameters.fileTemplates[db.url]: the template names \"passwrod\", which is not a file of this class",
            "spec.parameters.fileTemplates[username]: the template names \"host\", which is not a file of this class",
            "spec.secretObjects[db].data[URL]: the template names \"missing\", which is not a file of this class",
        ])
    }
}
