import Foundation
import KeyVaultEmulator
import NIOHTTP1
import SecretsStoreAzure
import SecretsStoreTesting
import Testing

/// What a client that validates its authority first (Go MSAL, in upstream's Azure provider) needs of the emulator's
/// Entra: instance discovery, OIDC metadata under the host it addressed, and the OpenID scopes MSAL adds to every
/// token request ignored as Entra ignores them.
@Suite("Key Vault emulator: Entra instance discovery and MSAL's scopes", .timeLimit(.minutes(1)))
struct EmulatorEntraDiscoveryTests {
    static let tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
    static let seed = EmulatorSeed(tenantID: tenant, clients: [.init(clientID: "sp", secret: "sp-secret")], vaults: [:])

    static func json(_ body: [UInt8]) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] ?? [:]
    }

    @Test("instance discovery names the tenant's OIDC metadata under the authority's host; no authority is a 400")
    func instanceDiscovery() async throws {
        try await withKeyVaultEmulator(seed: Self.seed) { emulator, http in
            let authorize = "https://login.microsoftonline.com/\(Self.tenant)/oauth2/v2.0/authorize"
            let answer = try await http.send(
                .GET, emulator.baseURL + "/common/discovery/instance?api-version=1.1&authorization_endpoint=" + authorize
            )
            #expect(answer.status == 200)
            let body = Self.json(answer.body)
            #expect(body["tenant_discovery_endpoint"] as? String == "https://login.microsoftonline.com/\(Self.tenant)/v2.0/.well-known/openid-configuration")
            let aliases = (body["metadata"] as? [[String: Any]])?.first?["aliases"] as? [String]
            #expect(aliases == ["login.microsoftonline.com"])

            let refused = try await http.send(.GET, emulator.baseURL + "/common/discovery/instance?api-version=1.1")
            #expect(refused.status == 400)
            #expect(Self.json(refused.body)["error"] as? String == "invalid_instance")
        }
    }

    @Test("OIDC metadata names its endpoints under the host the client addressed")
    func metadataUnderTheAddressedHost() async throws {
        try await withKeyVaultEmulator(seed: Self.seed) { emulator, http in
            let path = "/\(Self.tenant)/v2.0/.well-known/openid-configuration"
            let direct = Self.json(try await http.send(.GET, emulator.baseURL + path).body)
            #expect(direct["token_endpoint"] as? String == emulator.baseURL + "/\(Self.tenant)/oauth2/v2.0/token")
            let viaEntra = Self.json(try await http.send(.GET, emulator.baseURL + path, headers: [("Host", "login.microsoftonline.com")]).body)
            #expect(viaEntra["token_endpoint"] as? String == "https://login.microsoftonline.com/\(Self.tenant)/oauth2/v2.0/token")
        }
    }

    @Test("a client-credentials request with MSAL's OpenID scopes beside /.default gets a token; those scopes alone do not")
    func openIDScopesIgnored() async throws {
        try await withKeyVaultEmulator(seed: Self.seed) { emulator, http in
            func token(scope: String) async throws -> (status: Int, body: [String: Any]) {
                let answer = try await http.send(
                    .POST, emulator.baseURL + "/\(Self.tenant)/oauth2/v2.0/token",
                    headers: [("Content-Type", "application/x-www-form-urlencoded")],
                    body: FormEncoding.encode([
                        ("grant_type", "client_credentials"), ("client_id", "sp"), ("client_secret", "sp-secret"), ("scope", scope),
                    ])
                )
                return (answer.status, Self.json(answer.body))
            }
            let msal = try await token(scope: "https://vault.azure.net/.default openid offline_access profile")
            #expect(msal.status == 200 && msal.body["access_token"] is String)
            let openIDOnly = try await token(scope: "openid offline_access profile")
            #expect(openIDOnly.status == 400)
            #expect(openIDOnly.body["error"] as? String == "invalid_scope")
            let twoResources = try await token(scope: "https://vault.azure.net/.default https://management.azure.com/.default")
            #expect(twoResources.status == 400)
        }
    }
}
