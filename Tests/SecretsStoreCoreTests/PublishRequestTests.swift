import SecretsStoreCore
import Testing

@Suite("NodePublishVolume argument checks")
struct PublishRequestTests {
    static let context = [
        "secretProviderClass": "spc",
        "csi.storage.k8s.io/pod.name": "pod",
        "csi.storage.k8s.io/pod.namespace": "ns",
        "csi.storage.k8s.io/pod.uid": "uid-1",
    ]

    static func request(
        volumeID: String = "vol",
        target: String = "/t",
        access: PublishRequest.AccessType = .mount,
        readOnly: Bool = true,
        context: [String: String] = context
    ) -> PublishRequest {
        PublishRequest(
            volumeID: volumeID,
            targetPath: target,
            accessType: access,
            readOnly: readOnly,
            volumeContext: context,
            secrets: [:]
        )
    }

    @Test(
        "each missing or wrong argument is rejected with its own message",
        arguments: [
            (request(volumeID: ""), "Volume ID missing in request"),
            (request(target: ""), "Target path missing in request"),
            (request(access: .missing), "Volume capability missing in request"),
            (request(access: .block), "Block access is not supported: secrets are mounted as files"),
            (request(context: [:]), "Volume attributes missing in request"),
            (request(readOnly: false), "Readonly is not true in request"),
            (request(context: ["csi.storage.k8s.io/pod.namespace": "ns"]), "secretProviderClass is not set"),
            (request(context: ["secretProviderClass": ""]), "secretProviderClass is not set"),
        ]
    )
    func rejects(request: PublishRequest, message: String) {
        #expect(throws: PublishError.invalidRequest(message)) { try ValidatedPublishRequest(request) }
    }

    @Test func missingNamespaceNamesPodInfoOnMount() {
        #expect(throws: PublishError.self) {
            try ValidatedPublishRequest(Self.request(context: ["secretProviderClass": "spc"]))
        }
    }

    @Test func acceptsAWellFormedRequest() throws {
        let validated = try ValidatedPublishRequest(Self.request())
        #expect(validated.secretProviderClassName == "spc")
        #expect(validated.pod == PodReference(namespace: "ns", name: "pod", uid: "uid-1"))
    }
}

@Suite("Provider request")
struct ProviderRequestBuilderTests {
    @Test("attributes are SPC parameters, then volume context over them, then tokens")
    func attributePrecedence() throws {
        var context = PublishRequestTests.context
        context["keyvaultName"] = "from-volume"
        context["csi.storage.k8s.io/serviceAccount.tokens"] = "{\"context\":1}"
        var request = PublishRequestTests.request(context: context)
        request.secrets = ["clientid": "id", "csi.storage.k8s.io/serviceAccount.tokens": "{\"secrets\":1}"]
        let spc = SecretProviderClass(
            namespace: "ns",
            name: "spc",
            provider: "azure",
            parameters: ["keyvaultName": "from-spc", "tenantId": "t"]
        )
        let built = ProviderRequestBuilder.build(
            for: try ValidatedPublishRequest(request),
            secretProviderClass: spc,
            currentObjectVersions: [ObjectVersion(id: "secret/a", version: "1")]
        )
        #expect(built.attributes["keyvaultName"] == "from-volume")
        #expect(built.attributes["tenantId"] == "t")
        #expect(built.attributes["csi.storage.k8s.io/serviceAccount.tokens"] == "{\"secrets\":1}")
        #expect(built.attributes["csi.storage.k8s.io/pod.uid"] == "uid-1")
        #expect(built.secrets["clientid"] == "id")
        #expect(built.permission == 0o644)
        #expect(built.currentObjectVersions == [ObjectVersion(id: "secret/a", version: "1")])
    }

    @Test("tokens fall back to the volume context when secrets carry none")
    func tokensFromContext() throws {
        var context = PublishRequestTests.context
        context["csi.storage.k8s.io/serviceAccount.tokens"] = "{\"context\":1}"
        let built = ProviderRequestBuilder.build(
            for: try ValidatedPublishRequest(PublishRequestTests.request(context: context)),
            secretProviderClass: SecretProviderClass(namespace: "ns", name: "spc", provider: "p", parameters: ["a": "b"]),
            currentObjectVersions: []
        )
        #expect(built.attributes["csi.storage.k8s.io/serviceAccount.tokens"] == "{\"context\":1}")
    }

    @Test(
        "provider names are limited to socket-safe characters",
        arguments: [("azure", true), ("e2e-provider", true), ("a_b", true), ("", true), ("../x", false), ("a/b", false),
                    ("a.b", false), (String(repeating: "a", count: 31), false), (String(repeating: "a", count: 30), true)]
    )
    func providerNames(name: String, valid: Bool) {
        #expect(ProviderRequestBuilder.isValidProviderName(name) == valid)
    }
}
