import SecretsStoreAzure
import SecretsStoreCore
import Testing

/// The parser's errors say what is wrong by their case, and the class check (what `render` runs for `azure`)
/// places each problem by that case: which parameter, which entry of `objects`, or which pod input is absent.
@Suite("Azure class check: problems placed by the parser's error cases")
struct AzureClassCheckTests {
    typealias Invalid = AzureMountParameters.Invalid

    /// A valid class's attributes (a service principal, one secret), with `changes` applied (`nil` removes).
    static func attributes(_ changes: [String: String?] = [:]) -> [String: String] {
        var attributes = [
            "csi.storage.k8s.io/pod.name": "render",
            "csi.storage.k8s.io/pod.namespace": "default",
            "keyvaultName": "kv1",
            "tenantID": "tenant",
            "objects": "array:\n  - |\n    objectName: a\n    objectType: secret\n",
        ]
        for (key, value) in changes { attributes[key] = value }
        return attributes
    }

    static let secrets = ["clientid": "app", "clientsecret": "s"]

    func check(_ attributes: [String: String], secrets: [String: String]? = secrets, dryRun: Bool = true) -> AzureClassCheck.Result {
        AzureClassCheck.check(
            .init(attributes: attributes, secrets: secrets, dryRun: dryRun, defaultCloudName: "AzurePublicCloud", overrides: .init())
        )
    }

    /// The one problem of `result`, failing the test when there is not exactly one.
    func only(_ result: AzureClassCheck.Result, sourceLocation: SourceLocation = #_sourceLocation) throws -> AzureClassCheck.Problem {
        #expect(result.problems.count == 1, "\(result.problems)", sourceLocation: sourceLocation)
        return try #require(result.problems.first, sourceLocation: sourceLocation)
    }

    @Test("a valid class has no problem and a plan")
    func valid() {
        let result = check(Self.attributes())
        #expect(result.problems.isEmpty)
        #expect(result.plan?.identity == .servicePrincipal(clientID: "app"))
        #expect(result.plan?.files.map(\.path) == ["a"])
    }

    @Test("workload identity without the pod's token: the token's place, absent; a token that is there but unreadable is not absent")
    func serviceAccountToken() throws {
        let missing = try only(check(Self.attributes(["clientID": "app"]), secrets: nil, dryRun: false))
        #expect(missing.place == .serviceAccountToken)
        #expect(missing.absent == .serviceAccountToken)
        #expect(missing.cause == .workloadIdentityToken(.tokensMissing, managedIdentity: false))
        #expect(missing.message == "failed to build auth config for mode None: failed to parse workload identity tokens, error: service account tokens not found")

        let otherAudience = try only(
            check(Self.attributes(["clientID": "app", VolumeContextKey.serviceAccountTokens: #"{"other":{"token":"t"}}"#]), secrets: nil, dryRun: false)
        )
        #expect(otherAudience.place == .serviceAccountToken)
        #expect(otherAudience.absent == .serviceAccountToken)
        #expect(otherAudience.cause == .workloadIdentityToken(.noTokenForAudience("api://AzureADTokenExchange"), managedIdentity: false))

        let unreadable = try only(check(Self.attributes(["clientID": "app", VolumeContextKey.serviceAccountTokens: "{]"]), secrets: nil, dryRun: false))
        #expect(unreadable.place == .serviceAccountToken)
        #expect(unreadable.absent == nil)
        #expect(unreadable.cause == .workloadIdentityToken(.tokensNotJSON, managedIdentity: false))
    }

    @Test("a service principal without nodePublishSecretRef data: its place, absent; data without clientid is not absent")
    func nodePublishSecretRef() throws {
        let notSet = try only(check(Self.attributes(), secrets: nil, dryRun: false))
        #expect(notSet.place == .nodePublishSecretRef)
        #expect(notSet.absent == .nodePublishSecretRef)
        #expect(notSet.cause == .servicePrincipal(.secretNotSet))

        let noClientID = try only(check(Self.attributes(), secrets: ["clientsecret": "s"], dryRun: false))
        #expect(noClientID.place == .nodePublishSecretRef)
        #expect(noClientID.absent == nil)
        #expect(noClientID.cause == .servicePrincipal(.clientIDMissing))
        #expect(noClientID.message == "failed to build auth config for mode None: could not find clientid in secrets")
    }

    @Test("identity flags, the token proxy included: the parameters as a whole, never the token's place")
    func identityFlags() throws {
        let flag = try only(check(Self.attributes(["useVMManagedIdentity": "maybe"])))
        #expect(flag.place == .parameters)
        #expect(flag.cause == .invalidFlag(.init(flag: "useVMManagedIdentity", text: "maybe")))
        #expect(flag.absent == nil)

        let proxy = try only(check(Self.attributes(["useAzureTokenProxy": "true"])))
        #expect(proxy.place == .parameters)
        #expect(proxy.cause == .azureTokenProxyUnsupported)
        let proxyFlag = try only(check(Self.attributes(["useAzureTokenProxy": "yes"])))
        #expect(proxyFlag.place == .parameters)
        #expect(proxyFlag.cause == .invalidFlag(.init(flag: "useAzureTokenProxy", text: "yes")))
    }

    @Test("vault, tenant and cloud: each its own parameter")
    func vaultTenantCloud() throws {
        let vault = try only(check(Self.attributes(["keyvaultName": "a"])))
        #expect(vault.place == .parameter("keyvaultName"))
        #expect(vault.cause == .invalidKeyVaultName(.init(name: "a", reason: .length)))
        #expect(vault.message == "failed to get vault: Invalid vault name: \"a\", must be between 3 and 24 chars")

        let tenant = try only(check(Self.attributes(["tenantID": nil])))
        #expect(tenant.place == .parameter("tenantID"))
        #expect(tenant.cause == .tenantMissing)

        let cloud = try only(check(Self.attributes(["cloudName": "Mars"])))
        #expect(cloud.place == .parameter("cloudName"))
        #expect(cloud.cause == .unknownCloud(name: "Mars"))
    }

    @Test("objects: every broken entry at its own index with its field's case; a list that is not one, as a whole")
    func objects() throws {
        let objects = """
            array:
              - |
                objectName: fine
                objectType: secret
              - |
                objectName: db
                objectType: secrets
              - objectName: mapping
              - |
                objectName: web
                objectType: cert
                filePermission: "999"
            """
        let result = check(Self.attributes(["objects": objects]))
        let entries = result.problems.filter { $0.place != .parameters }
        #expect(entries.map(\.place) == [.object(index: 1), .object(index: 2), .object(index: 3)], "\(result.problems)")
        #expect(entries.first?.cause == .invalidObject(.init(index: 1, type: "secrets", name: "db", version: ""), .unknownType))
        #expect(entries.dropFirst().first?.cause == nil)
        #expect(entries.dropFirst().first?.message.hasPrefix("must be a YAML string") == true)
        #expect(entries.last?.cause == .invalidObject(.init(index: 3, type: "cert", name: "web", version: ""), .invalidFilePermission("999")))
        #expect(entries.last?.message == "failed to get objectType:cert, objectName:web, objectVersion:: invalid filePermission: 999, should be an octal mode such as 0644")

        let notAList = try only(check(Self.attributes(["objects": "- objectName: a"])))
        #expect(notAList.place == .objects)
        guard case .objectsNotYAML? = notAList.cause else {
            Issue.record("not objectsNotYAML: \(String(describing: notAList.cause))")
            return
        }
        let missing = try only(check(Self.attributes(["objects": nil])))
        #expect(missing.place == .objects)
        #expect(missing.cause == .objectsMissing)
    }

    @Test("the parser's cases name the entry and the field, with the upstream texts")
    func parserCases() {
        let objects = "array:\n  - |\n    objectName: a\n    objectType: secret\n  - |\n    objectName: b\n    objectType: secret\n    optional: maybe\n    objectVersion: v1\n"
        let error = #expect(throws: Invalid.self) { try AzureMountParameters.parseObjects(objects) }
        #expect(error == .invalidObject(.init(index: 1, type: "secret", name: "b", version: "v1"), .invalidOptional(.init(flag: "optional", text: "maybe"))))
        #expect(error?.message == "failed to get objectType:secret, objectName:b, objectVersion:v1: failed to parse optional flag, error: strconv.ParseBool: parsing \"maybe\": invalid syntax")
        let entry = #expect(throws: Invalid.self) { try AzureMountParameters.parseObject("objectName: [a", at: 4) }
        guard case .objectNotYAML(index: 4, _)? = entry else {
            Issue.record("not objectNotYAML at index 4: \(String(describing: entry))")
            return
        }
        #expect(entry?.message.hasPrefix("unmarshal failed for keyVaultObjects at index 4, error: ") == true)
    }
}
