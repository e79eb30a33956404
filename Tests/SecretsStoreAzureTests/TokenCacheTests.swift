import Logging
import SecretsStoreAzure
import SecretsStoreHTTPClient
import SecretsStoreHTTPServer
import Synchronization
import Testing

@Suite("Token cache", .timeLimit(.minutes(3)))
struct TokenCacheTests {
    @Test("a fresh token is known to be cached before any request, so a volume's objects can all be fetched at once")
    func freshTokenIsKnownWithoutARequest() async throws {
        let requests = Mutex(0)
        let server = try await RunningHTTPListener { _ in
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

    @Test("the cache key's digest of a secret is SHA-256 in full hex, a leading zero digit kept")
    func digestIsFullWidthHex() {
        #expect(TokenProvider.digest("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        // SHA-256("b") has a 0x00 byte, which one digit a byte wrote as "0".
        #expect(TokenProvider.digest("b") == "3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d")
        #expect(TokenProvider.digest("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }
}
