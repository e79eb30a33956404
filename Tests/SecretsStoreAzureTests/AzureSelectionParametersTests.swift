import Logging
import SecretsStoreAzure
import SecretsStoreCore
import Testing

/// The `objects` fields of issue 24 as the parser reads them: selectors (`objectNameRegex`, `objectTags`),
/// `objectJSONFields`, the class parameter `maxSelectedObjects`, and every refusal as a typed case whose text
/// names the entry and the field, never a value; the class check places each by its case.
@Suite("Azure selectors and JSON fields: parameters")
struct AzureSelectionParametersTests {
    typealias Invalid = AzureMountParameters.Invalid

    static func attributes(objects: String, extra: [String: String] = [:]) -> [String: String] {
        [
            "keyvaultName": "kv1", "tenantID": "tid", "objects": objects,
            "csi.storage.k8s.io/pod.name": "p", "csi.storage.k8s.io/pod.namespace": "ns",
        ].merging(extra) { _, new in new }
    }

    static let secrets = ["clientid": "app", "clientsecret": "pw"]

    /// `objects` of the given entries (each the YAML lines of one `- |` item).
    static func objects(_ entries: [String]) -> String {
        "array:\n" + entries.map { entry in
            "  - |\n" + entry.split(separator: "\n").map { "    \($0)\n" }.joined()
        }.joined()
    }

    func parse(_ entries: [String], extra: [String: String] = [:]) throws(Invalid) -> AzureMountParameters {
        try AzureMountParameters(attributes: Self.attributes(objects: Self.objects(entries), extra: extra), secrets: Self.secrets, defaultFilePermission: 0o644)
    }

    func refusal(_ entries: [String], extra: [String: String] = [:], sourceLocation: SourceLocation = #_sourceLocation) -> Invalid? {
        #expect(throws: Invalid.self, sourceLocation: sourceLocation) { try parse(entries, extra: extra) }
    }

    @Test("a selector and JSON fields parse; maxSelectedObjects defaults to 100")
    func parses() throws {
        let parameters = try parse([
            "objectType: secret\nobjectNameRegex: \"^db-\"\nobjectTags: \"env=prod, team = web ,\"\nfilePermission: \"0440\"",
            "objectName: db-creds\nobjectType: secret\nobjectJSONFields: \"username,password:db-pass, a.b.host\"",
            "objectName: plain\nobjectType: secret",
        ])
        let selector = try #require(parameters.objects[0].selector)
        #expect(selector == SecretSelector(namePattern: "^db-", tags: [.init(key: "env", value: "prod"), .init(key: "team", value: "web")]))
        #expect(parameters.objects[0].filePermission == 0o440)
        #expect(parameters.objects[0].name.isEmpty && parameters.objects[0].jsonFields.isEmpty)
        #expect(parameters.objects[1].selector == nil)
        #expect(parameters.objects[1].jsonFields == [
            JSONField(path: ["username"], fileName: "username"),
            JSONField(path: ["password"], fileName: "db-pass"),
            JSONField(path: ["a", "b", "host"], fileName: "host"),
        ])
        #expect(parameters.objects[2].selector == nil && parameters.objects[2].jsonFields.isEmpty)
        #expect(parameters.maxSelectedObjects == 100)
        #expect(try parse(["objectNameRegex: x\nobjectType: secret"], extra: ["maxSelectedObjects": " 1000 "]).maxSelectedObjects == 1000)
        let tagsOnly = try parse(["objectTags: \"k=\"\nobjectType: secret"]).objects[0].selector
        #expect(tagsOnly == SecretSelector(namePattern: nil, tags: [.init(key: "k", value: "")]))
        let valueWithEquals = try parse(["objectTags: \"k=a=b\"\nobjectType: secret"]).objects[0].selector
        #expect(valueWithEquals?.tags == [.init(key: "k", value: "a=b")])
    }

    @Test(
        "each refusal is its typed case, names the entry and the field, and repeats no value",
        arguments: [
            ("objectNameRegex: \"([secret-pattern\"\nobjectType: secret", Invalid.invalidSelector(index: 1, .regexDoesNotCompile),
             "objects[1] (a selector): objectNameRegex does not compile as a regular expression (Swift Regex syntax)"),
            ("objectTags: \"env=prod,secret-tag\"\nobjectType: secret", .invalidSelector(index: 1, .tagNotKeyValue(tag: 2)),
             "objects[1] (a selector): objectTags: tag 2 is not key=value (write objectTags: \"key=value,key2=value2\")"),
            ("objectTags: \"=secret-tag\"\nobjectType: secret", .invalidSelector(index: 1, .tagNotKeyValue(tag: 1)),
             "objects[1] (a selector): objectTags: tag 1 is not key=value (write objectTags: \"key=value,key2=value2\")"),
            ("objectNameRegex: x\nobjectType: secret\nobjectAlias: secret-alias", .invalidSelector(index: 1, .conflictingField("objectAlias")),
             "objects[1] (a selector): objectAlias cannot be used with objectNameRegex or objectTags: each selected secret is written under its own name, at its latest version"),
            ("objectNameRegex: x\nobjectType: secret\nobjectVersion: secret-version", .invalidSelector(index: 1, .conflictingField("objectVersion")),
             "objects[1] (a selector): objectVersion cannot be used with objectNameRegex or objectTags: each selected secret is written under its own name, at its latest version"),
            ("objectTags: a=b\nobjectType: secret\nobjectVersionHistory: 1", .invalidSelector(index: 1, .conflictingField("objectVersionHistory")),
             "objects[1] (a selector): objectVersionHistory cannot be used with objectNameRegex or objectTags: each selected secret is written under its own name, at its latest version"),
            ("objectTags: a=b\nobjectType: secret\nobjectName: secret-name", .invalidSelector(index: 1, .conflictingField("objectName")),
             "objects[1] (a selector): objectName cannot be used with objectNameRegex or objectTags: each selected secret is written under its own name, at its latest version"),
            ("objectTags: a=b\nobjectType: secret\nobjectJSONFields: secret-field", .invalidSelector(index: 1, .conflictingField("objectJSONFields")),
             "objects[1] (a selector): objectJSONFields cannot be used with objectNameRegex or objectTags: each selected secret is written under its own name, at its latest version"),
            ("objectNameRegex: x\nobjectType: key", .invalidSelector(index: 1, .notSecret),
             "objects[1] (a selector): objectType must be secret with objectNameRegex or objectTags: selectors list secrets only"),
            ("objectNameRegex: \"\"\nobjectTags: \" , \"\nobjectType: secret", .invalidSelector(index: 1, .empty),
             "objects[1] (a selector): objectNameRegex and objectTags are both empty: set at least one"),
            ("objectName: j\nobjectType: secret\nobjectJSONFields: \"user,a..secret-field\"",
             .invalidJSONFields(.init(index: 1, type: "secret", name: "j", version: ""), .emptySegment(field: 2)),
             "objects[1] (objectName j): objectJSONFields: field 2 has an empty path segment (write field[:fileName], a nested field as a.b)"),
            ("objectName: j\nobjectType: secret\nobjectJSONFields: \"user,,pass\"",
             .invalidJSONFields(.init(index: 1, type: "secret", name: "j", version: ""), .emptySegment(field: 2)),
             "objects[1] (objectName j): objectJSONFields: field 2 has an empty path segment (write field[:fileName], a nested field as a.b)"),
            ("objectName: j\nobjectType: secret\nobjectJSONFields: \".user\"",
             .invalidJSONFields(.init(index: 1, type: "secret", name: "j", version: ""), .emptySegment(field: 1)),
             "objects[1] (objectName j): objectJSONFields: field 1 has an empty path segment (write field[:fileName], a nested field as a.b)"),
            ("objectName: j\nobjectType: secret\nobjectJSONFields: \"user:../escape\"",
             .invalidJSONFields(.init(index: 1, type: "secret", name: "j", version: ""), .invalidFileName(field: 1)),
             "objects[1] (objectName j): objectJSONFields: field 1 is written to a file name that is empty, absolute or contains '..'"),
            ("objectName: j\nobjectType: secret\nobjectJSONFields: \"a.user,b.user\"",
             .invalidJSONFields(.init(index: 1, type: "secret", name: "j", version: ""), .duplicateFileName(field: 2, fileName: "user", alsoWrittenBy: nil)),
             "objects[1] (objectName j): objectJSONFields: field 2 is written to user, which this entry also writes: give it another name with field:fileName"),
            ("objectName: j\nobjectType: secret\nobjectAlias: whole\nobjectJSONFields: \"x:whole\"",
             .invalidJSONFields(.init(index: 1, type: "secret", name: "j", version: ""), .duplicateFileName(field: 1, fileName: "whole", alsoWrittenBy: nil)),
             "objects[1] (objectName j): objectJSONFields: field 1 is written to whole, which this entry also writes: give it another name with field:fileName"),
            ("objectName: j\nobjectType: secret\nobjectJSONFields: \"user,first\"",
             .invalidJSONFields(.init(index: 1, type: "secret", name: "j", version: ""), .duplicateFileName(field: 2, fileName: "first", alsoWrittenBy: 0)),
             "objects[1] (objectName j): objectJSONFields: field 2 is written to first, which objects[0] also writes: give it another name with field:fileName"),
            ("objectName: j\nobjectType: cert\nobjectJSONFields: user",
             .invalidJSONFields(.init(index: 1, type: "cert", name: "j", version: ""), .notSecret),
             "objects[1] (objectName j): objectJSONFields needs objectType: secret"),
            ("objectName: j\nobjectType: secret\nobjectVersionHistory: 3\nobjectJSONFields: user",
             .invalidJSONFields(.init(index: 1, type: "secret", name: "j", version: ""), .withVersionHistory),
             "objects[1] (objectName j): objectJSONFields cannot be used with objectVersionHistory above 1"),
        ]
    )
    func refuses(entry: String, expected: Invalid, message: String) {
        let error = refusal(["objectName: first\nobjectType: secret", entry])
        #expect(error == expected)
        #expect(error?.message == message)
        for value in ["secret-pattern", "secret-tag", "secret-alias", "secret-version", "secret-name", "secret-field", "escape"] {
            #expect(error?.message.contains(value) == false, "\(value) in \(error?.message ?? "")")
        }
    }

    @Test("a JSON field's file written by a later entry is refused at the JSON entry")
    func duplicateAcrossEntriesEitherOrder() {
        let error = refusal(["objectName: j\nobjectType: secret\nobjectJSONFields: user", "objectName: user\nobjectType: secret"])
        #expect(error == .invalidJSONFields(.init(index: 0, type: "secret", name: "j", version: ""), .duplicateFileName(field: 1, fileName: "user", alsoWrittenBy: 1)))
    }

    @Test("maxSelectedObjects out of 1...1000, or not a number, is refused without repeating it", arguments: ["0", "1001", "-5", "lots", "1e3"])
    func maxSelectedObjectsOutOfRange(text: String) {
        let error = refusal(["objectNameRegex: x\nobjectType: secret"], extra: ["maxSelectedObjects": text])
        #expect(error == .maxSelectedObjectsOutOfRange)
        #expect(error?.message == "maxSelectedObjects must be a whole number from 1 to 1000 (default 100)")
    }

    @Test("the refusals map to INVALID_ARGUMENT's provider failure, misconfigured, through the provider")
    func misconfiguredThroughProvider() async throws {
        let http = try AzureHTTP()
        let provider = AzureKeyVaultProvider(http: http)
        let request = ProviderRequest(
            attributes: Self.attributes(objects: Self.objects(["objectTags: nokey\nobjectType: secret"])),
            secrets: Self.secrets,
            targetPath: "/t",
            currentObjectVersions: []
        )
        await #expect(throws: ProviderFailure.misconfigured("failed to mount objects, error: objects[0] (a selector): objectTags: tag 1 is not key=value (write objectTags: \"key=value,key2=value2\")")) {
            _ = try await provider.fetch(request, logger: .init(label: "test"))
        }
        try await http.shutdown()
    }

    // MARK: The class check

    func check(_ attributes: [String: String]) -> AzureClassCheck.Result {
        AzureClassCheck.check(.init(attributes: attributes, secrets: Self.secrets, dryRun: true, defaultCloudName: "AzurePublicCloud", overrides: .init()))
    }

    @Test("the class check places every new problem: each broken entry at its index, maxSelectedObjects at its parameter")
    func classCheckPlaces() {
        let result = check(Self.attributes(
            objects: Self.objects([
                "objectNameRegex: \"(\"\nobjectType: secret",
                "objectName: ok\nobjectType: secret",
                "objectName: j\nobjectType: secret\nobjectJSONFields: \"a..b\"",
            ]),
            extra: ["maxSelectedObjects": "0"]
        ))
        #expect(result.problems.map(\.place) == [.object(index: 0), .object(index: 2), .parameter("maxSelectedObjects")])
        #expect(result.problems.map(\.cause) == [
            .invalidSelector(index: 0, .regexDoesNotCompile),
            .invalidJSONFields(.init(index: 2, type: "secret", name: "j", version: ""), .emptySegment(field: 1)),
            .maxSelectedObjectsOutOfRange,
        ])
        let across = check(Self.attributes(objects: Self.objects([
            "objectName: user\nobjectType: secret", "objectName: j\nobjectType: secret\nobjectJSONFields: user",
        ])))
        #expect(across.problems.map(\.place) == [.object(index: 1)])
    }

    @Test("the plan: one file per JSON field (and the whole secret under its alias only); a selector plans no file")
    func plannedFiles() throws {
        let result = check(Self.attributes(objects: Self.objects([
            "objectNameRegex: \"^db-\"\nobjectType: secret",
            "objectName: creds\nobjectType: secret\nobjectJSONFields: \"username,password:db-pass\"\nfilePermission: \"0400\"",
            "objectName: other\nobjectType: secret\nobjectAlias: other.json\nobjectJSONFields: a.b",
        ])))
        #expect(result.problems.isEmpty, "\(result.problems)")
        let plan = try #require(result.plan)
        #expect(plan.files.map(\.path) == ["username", "db-pass", "b", "other.json"])
        #expect(plan.files.map(\.source) == ["secret/creds field username", "secret/creds field password", "secret/other field a.b", "secret/other"])
        #expect(plan.files[0].mode == 0o400)
        #expect(plan.objects[0].selector != nil)
    }
}
