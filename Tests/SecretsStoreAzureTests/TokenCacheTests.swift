import Logging
import SecretsStoreAzure
import SecretsStoreHTTPClient
import SecretsStoreHTTPServer
import Synchronization
import Testing

@Suite("Token cache")
struct TokenCacheTests {
    @Test("a fresh token is known to be cached before any request, so a volume's objects can all be fetched at once")
    func freshTokenIsKnownWithoutARequest() async throws {
        let requests = Mutex(0)
        let server = try await LoopbackHTTPServer { _ in
            requests.withLock { $0 += 1 }
            return .init(status: 200, headers: [("Content-Type", "application/json")], body: Array(#"{"access_token":"t","expires_in":3600}"#.utf8))
        }
        let http = try AzureHTTP(tls: HTTPSClientTLS(), proxy: .none)
        let base = "http://127.0.0.1:\(server.port)"
        let tokens = TokenProvider(http: http, imdsEndpoint: base)
        let identity = AzureIdentity.servicePrincipal(clientID: "app", clientSecret: "pw")
        let other = AzureIdentity.servicePrincipal(clientID: "app", clientSecret: "another")
        #expect(!tokens.hasFreshToken(for: identity, tenantID: "t", authorityHost: base + "/", resource: "https://vault.azure.net"))
        _ = try await tokens.token(for: identity, tenantID: "t", authorityHost: base + "/", resource: "https://vault.azure.net")
        #expect(tokens.hasFreshToken(for: identity, tenantID: "t", authorityHost: base + "/", resource: "https://vault.azure.net"))
        #expect(!tokens.hasFreshToken(for: other, tenantID: "t", authorityHost: base + "/", resource: "https://vault.azure.net"))
        #expect(!tokens.hasFreshToken(for: identity, tenantID: "t2", authorityHost: base + "/", resource: "https://vault.azure.net"))
        #expect(requests.withLock { $0 } == 1, "asking the cache sends nothing")
        try await http.shutdown()
        try await server.shutdown()
    }
}
