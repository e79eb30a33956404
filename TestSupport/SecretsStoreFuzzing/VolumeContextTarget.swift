import SecretsStoreAzure
import SecretsStoreCore

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension FuzzTarget {
    /// kubelet's `volume_context`, as a JSON object of strings, through ``ValidatedPublishRequest`` and, for its
    /// `serviceAccount.tokens` entry (and for the raw text itself), ``AzureMountParameters/serviceAccountToken(_:audience:)``.
    ///
    /// Properties: a validated request names a non-empty namespace and SecretProviderClass, taken from the context
    /// unchanged, and keeps the context; a token is only ever returned non-empty.
    package static let volumeContextJSON = FuzzTarget(
        name: "volume-context-json",
        summary: "volume_context JSON through ValidatedPublishRequest and the service account token lookup",
        seeds: VolumeContextSeeds.contexts.map(VolumeContextSeeds.json),
        dictionary: VolumeContextSeeds.tokens.map { Array($0.utf8) },
        maxInputLength: 32 * 1024,
        check: checkVolumeContext
    )

    private static func checkVolumeContext(_ bytes: [UInt8]) -> FuzzOutcome {
        let name = "volume-context-json"
        checkTokenLookup(String(decoding: bytes, as: UTF8.self), input: bytes)

        let context: [String: String]
        do {
            context = try JSONDecoder().decode([String: String].self, from: Data(bytes))
        } catch {
            return .rejected("not a JSON object of strings")
        }
        checkTokenLookup(context[VolumeContextKey.serviceAccountTokens] ?? "", input: bytes)

        let request = PublishRequest(
            volumeID: "csi-8f1e2d3c4b5a69788796a5b4c3d2e1f0",
            targetPath: "/var/lib/kubelet/pods/0b7d6c5e-4f3a-4b2c-9d1e-8f7a6b5c4d3e/volumes/kubernetes.io~csi/secrets/mount",
            accessType: .mount,
            readOnly: true,
            volumeContext: context,
            secrets: [:]
        )
        do {
            let validated = try ValidatedPublishRequest(request)
            require(!validated.pod.namespace.isEmpty, "validated a request without a namespace", target: name, input: bytes)
            require(!validated.secretProviderClassName.isEmpty, "validated a request without a SecretProviderClass", target: name, input: bytes)
            require(
                validated.pod.namespace == context[VolumeContextKey.podNamespace]
                    && validated.secretProviderClassName == context[VolumeContextKey.secretProviderClass],
                "the validated request names another pod namespace or SecretProviderClass than the context",
                target: name,
                input: bytes
            )
            require(validated.volumeContext == context, "the validated request changed the volume context", target: name, input: bytes)
            return .accepted
        } catch {
            require(!error.description.isEmpty, "rejected with an empty message", target: name, input: bytes)
            return .rejected(error.description)
        }
    }

    private static func checkTokenLookup(_ json: String, input: [UInt8]) {
        do {
            let token = try AzureMountParameters.serviceAccountToken(json, audience: "api://AzureADTokenExchange")
            require(!token.isEmpty, "returned an empty service account token", target: "volume-context-json", input: input)
        } catch {
            require(!error.message.isEmpty, "token lookup failed with an empty message", target: "volume-context-json", input: input)
        }
    }
}

/// Realistic `volume_context` maps, as kubelet sends them with `podInfoOnMount` and `tokenRequests`.
enum VolumeContextSeeds {
    /// An unsigned JWT of the shape kubelet mints for a workload-identity audience (fixed claims).
    static let serviceAccountToken: String = {
        func segment(_ json: String) -> String {
            Data(json.utf8).base64EncodedString()
                .replacing("+", with: "-").replacing("/", with: "_").replacing("=", with: "")
        }
        let header = #"{"alg":"RS256","kid":"kTq0fuzz","typ":"JWT"}"#
        let claims = #"{"aud":["api://AzureADTokenExchange"],"exp":1893456000,"iat":1893452400,"iss":"https://oidc.example/issuer","kubernetes.io":{"namespace":"default","pod":{"name":"web-7d9c6b5f4-x2x9q","uid":"0b7d6c5e-4f3a-4b2c-9d1e-8f7a6b5c4d3e"},"serviceaccount":{"name":"web","uid":"9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d"}},"nbf":1893452400,"sub":"system:serviceaccount:default:web"}"#
        return segment(header) + "." + segment(claims) + ".c2lnbmF0dXJlLW5vdC1jaGVja2Vk"
    }()

    static let contexts: [[String: String]] = [
        [
            VolumeContextKey.secretProviderClass: "azure-kv-web",
            VolumeContextKey.podName: "web-7d9c6b5f4-x2x9q",
            VolumeContextKey.podNamespace: "default",
            VolumeContextKey.podUID: "0b7d6c5e-4f3a-4b2c-9d1e-8f7a6b5c4d3e",
            VolumeContextKey.serviceAccountName: "web",
            VolumeContextKey.ephemeral: "false",
            VolumeContextKey.serviceAccountTokens:
                #"{"api://AzureADTokenExchange":{"token":"\#(serviceAccountToken)","expirationTimestamp":"2030-01-01T00:00:00Z"}}"#,
        ],
        [
            VolumeContextKey.secretProviderClass: "vault-db",
            VolumeContextKey.podName: "db-0",
            VolumeContextKey.podNamespace: "payments",
            VolumeContextKey.podUID: "5f4e3d2c-1b0a-4988-8776-655443322110",
            VolumeContextKey.serviceAccountName: "db",
            VolumeContextKey.ephemeral: "true",
            "usePodIdentity": "false",
            VolumeContextKey.serviceAccountTokens:
                #"{"api://AzureADTokenExchange":{"token":"\#(serviceAccountToken)","expirationTimestamp":"2030-01-01T00:00:00Z"},"vault":{"token":"eyJhbGciOiJSUzI1NiJ9.e30.c2ln","expirationTimestamp":"2030-01-01T00:00:00Z"}}"#,
        ],
        [
            VolumeContextKey.secretProviderClass: "minimal",
            VolumeContextKey.podNamespace: "kube-system",
        ],
    ]

    /// A context as kubelet's JSON would carry it (keys sorted, so the seed bytes never change).
    static func json(_ context: [String: String]) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do {
            return Array(try encoder.encode(context))
        } catch {
            preconditionFailure("a map of strings always encodes: \(error)")
        }
    }

    static let tokens: [String] = [
        VolumeContextKey.secretProviderClass, VolumeContextKey.podName, VolumeContextKey.podNamespace,
        VolumeContextKey.podUID, VolumeContextKey.serviceAccountName, VolumeContextKey.serviceAccountTokens,
        VolumeContextKey.ephemeral,
    ].map { "\"\($0)\"" } + [
        "\"api://AzureADTokenExchange\"", "\\\"token\\\"", "\\\"api://AzureADTokenExchange\\\"", "\\\"\\\"",
        "\\\"expirationTimestamp\\\"", "\"token\"", "\":\"", "\",\"", "{\\\"", "\\\":{", "}}",
    ]
}
