import Logging
import NIOCore
import NIOHTTP1
import SecretsStoreAzure
import SecretsStoreCore
import SecretsStoreHTTPClient
import SecretsStoreHTTPServer
import Testing

#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// The Azure provider keeps the error behind a failure as its ``ErrorCause``: the `DecodingError` of a Key
/// Vault answer that is not JSON, and the transport error of an unreachable Key Vault or IMDS. ``AzureHTTP``
/// never lets a header value (a token) reach an error.
@Suite("Azure provider: the cause of a failure is kept", .timeLimit(.minutes(1)))
struct KeyVaultCauseTests {
    /// Nothing listens on port 1 of the loopback address: every connection is refused.
    static let closedPort = "http://127.0.0.1:1"

    /// A volume reading secret `db-pass` of vault `kv1` with the node's managed identity.
    static func request(deadline: ContinuousClock.Instant? = nil) -> ProviderRequest {
        ProviderRequest(
            attributes: [
                "keyvaultName": "kv1", "tenantID": "tenant", "useVMManagedIdentity": "true",
                "objects": "array:\n  - |\n    objectName: db-pass\n    objectType: secret\n",
                "csi.storage.k8s.io/pod.name": "web-0", "csi.storage.k8s.io/pod.namespace": "ns",
            ],
            secrets: [:],
            targetPath: "/t",
            currentObjectVersions: [],
            deadline: deadline
        )
    }

    /// A plain-HTTP server answering IMDS with a token and every other path (Key Vault) with `keyVaultBody`,
    /// and a provider whose IMDS is that server and whose Key Vault is `keyVault` (the server when `nil`).
    static func withProvider(
        keyVaultBody: String = "{}",
        keyVault: String? = nil,
        imds: String? = nil,
        _ body: (AzureKeyVaultProvider) async throws -> Void
    ) async throws {
        let server = try await RunningHTTPListener { request in
            if request.path.hasPrefix("/metadata/identity/") {
                return .init(status: 200, headers: [("Content-Type", "application/json")], body: Array(#"{"access_token":"imds-token","expires_in":3600}"#.utf8))
            }
            return .init(status: 200, headers: [("Content-Type", "text/html")], body: Array(keyVaultBody.utf8))
        }
        let base = "http://127.0.0.1:\(server.port)"
        let http = try AzureHTTP(tls: HTTPSClientTLS(), proxy: .none)
        let overrides = AzureEndpointOverrides(keyVaultURLTemplate: (keyVault ?? base) + "/{vault}", imdsEndpoint: imds ?? base)
        do {
            try await body(AzureKeyVaultProvider(http: http, overrides: overrides))
        } catch {
            try? await http.shutdown()
            try? await server.shutdown()
            throw error
        }
        try await http.shutdown()
        try await server.shutdown()
    }

    @Test("a Key Vault answer that is not JSON is an invalid response caused by a DecodingError; the text is unchanged")
    func notJSONKeepsTheDecodingError() async throws {
        try await Self.withProvider(keyVaultBody: "<html>gateway</html>") { provider in
            let failure = await #expect(throws: ProviderFailure.self) {
                _ = try await provider.fetch(Self.request(), logger: Logger(label: "test"))
            }
            guard case .invalidResponse(let message, let cause)? = failure else {
                Issue.record("expected invalidResponse, got \(String(describing: failure))")
                return
            }
            let decoding = try #require(cause?.error as? DecodingError, "cause: \(String(describing: cause))")
            guard case .dataCorrupted = decoding else {
                Issue.record("expected dataCorrupted, got \(decoding)")
                return
            }
            #expect(
                message == "failed to mount objects, error: failed to get objectType:secret, objectName:db-pass, objectVersion:: \(decoding)"
            )
        }
    }

    @Test("an unreachable Key Vault is unavailable, caused by the transport error of the last attempt")
    func unreachableKeyVaultKeepsTheTransportError() async throws {
        try await Self.withProvider(keyVault: Self.closedPort) { provider in
            // Room for one retry (800 ms) but not the second (2.4 s): the failure comes within about a second.
            let failure = await #expect(throws: ProviderFailure.self) {
                _ = try await provider.fetch(Self.request(deadline: .now + .seconds(2)), logger: Logger(label: "test"))
            }
            guard case .unavailable(let message, let kept)? = failure else {
                Issue.record("expected unavailable, got \(String(describing: failure))")
                return
            }
            let refused = try #require(kept?.error as? IOError, "cause: \(String(describing: kept))")
            #expect(refused.errnoCode == ECONNREFUSED)
            #expect(message.contains("GET \(Self.closedPort)/kv1/secrets/db-pass"), "\(message)")
        }
    }

    @Test("an unreachable IMDS is unavailable, caused by the transport error")
    func unreachableIMDSKeepsTheTransportError() async throws {
        try await Self.withProvider(imds: Self.closedPort) { provider in
            let failure = await #expect(throws: ProviderFailure.self) {
                _ = try await provider.fetch(Self.request(), logger: Logger(label: "test"))
            }
            guard case .unavailable(let message, let kept)? = failure else {
                Issue.record("expected unavailable, got \(String(describing: failure))")
                return
            }
            let refused = try #require(kept?.error as? IOError, "cause: \(String(describing: kept))")
            #expect(refused.errnoCode == ECONNREFUSED)
            #expect(message.contains("managed identity endpoint unreachable"), "\(message)")
        }
    }

    @Test("a header value with a control character is refused by name; its value (a token) appears nowhere")
    func headerWithControlCharacterIsNotQuoted() async throws {
        let http = try AzureHTTP(tls: HTTPSClientTLS(), proxy: .none)
        let error = await #expect(throws: (any Error).self) {
            _ = try await http.send(.GET, Self.closedPort + "/kv1/secrets/x", headers: [("Authorization", "Bearer token-part\u{1}")])
        }
        try await http.shutdown()
        #expect(error as? AzureHTTPHeaderError == AzureHTTPHeaderError(name: "Authorization"), "\(String(describing: error))")
        #expect(!"\(String(describing: error))".contains("token-part"))
    }

    @Test("a secret-list page that is not Key Vault's JSON keeps its DecodingError as the cause")
    func listPageDecodingCause() throws {
        #expect(throws: SecretListing.Failure.self) { try SecretListing.page(from: Array("<html>".utf8)) }
        do {
            _ = try SecretListing.page(from: Array("<html>".utf8))
        } catch {
            guard case .decoding(let message, let cause) = error else { Issue.record("got \(error)"); return }
            #expect(message.hasPrefix("failed to list secrets: "))
            #expect(cause?.matches(DecodingError.self) == true, "\(String(describing: cause))")
        }
    }
}
