import KeyVaultEmulator
import Logging
import NIOHTTP1
import SecretsStoreAzure
import SecretsStoreCore
import SecretsStoreHTTPClient
import SecretsStoreHTTPServer
import Synchronization
import Testing

/// The Azure provider's HTTPS client through a real HTTP `CONNECT` proxy on loopback (``TestConnectProxy``)
/// to the Key Vault emulator's TLS port.
///
/// Entra ID and Key Vault are addressed by names only the proxy "resolves" (`*.proxy.test`, tunnelled to
/// 127.0.0.1), and the emulator's certificate names them: so a fetch that succeeds went through the proxy and
/// verified the emulator's certificate inside the tunnel, and a request that `NO_PROXY` sends direct cannot
/// reach them (the name does not resolve). Environments are dictionaries; the process's is never touched.
@Suite("Outbound proxy: HTTPS_PROXY, NO_PROXY and IMDS against a real CONNECT proxy", .serialized, .timeLimit(.minutes(3)))
struct ProxyTunnelTests {
    static let tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
    static let proxyPassword = "Pr0xy-P@ss-SENTINEL"
    static let clientSecret = "sp-secret-SENTINEL"
    /// Short connection limits: failed connections are retried until the connect timeout.
    // Connect: 3 s, not less: the full test run loads two cores enough that a loopback connect to the proxy
    // took more than 500 ms (HTTPClientError.connectTimeout in imdsBypass).
    static let quick = HTTPSClientTimeouts(connect: .seconds(3), read: .seconds(10))
    static let objects = """
        array:
          - |
            objectName: db-pass
            objectType: secret
        """

    /// The clients a test made.
    final class Clients: Sendable {
        let list = Mutex<[AzureHTTP]>([])
    }

    /// The emulator (certificate for the `*.proxy.test` names), a proxy, and the provider's endpoints.
    struct Setup {
        let emulator: KeyVaultEmulator
        let proxy: TestConnectProxy
        let port: Int
        let ca: [UInt8]
        /// Every client made by ``http(_:)``, shut down by ``ProxyTunnelTests/withSetup(requiredAuthorization:_:)``
        /// when the test throws before its own shutdown (a client dropped without it traps in a debug build).
        let clients = Clients()

        var overrides: AzureEndpointOverrides {
            AzureEndpointOverrides(
                keyVaultURLTemplate: "https://kv.proxy.test:\(port)/{vault}",
                authorityHost: "https://login.proxy.test:\(port)/",
                imdsEndpoint: "https://imds.proxy.test:\(port)",
                caBundlePEM: ca
            )
        }

        /// `HTTPS_PROXY` pointing at the test proxy with credentials (a percent-encoded `@` in the password).
        var proxyURL: String { "http://csi-user:Pr0xy-P%40ss-SENTINEL@127.0.0.1:\(proxy.port)" }

        /// A client trusting the emulator's CA that honours `environment`, with a short connect timeout (a
        /// connection that fails is retried until it).
        func http(_ environment: [String: String]) throws -> AzureHTTP {
            let http = try AzureHTTP(
                tls: HTTPSClientTLS(trustRoots: .system(extraPEM: ca)),
                timeouts: ProxyTunnelTests.quick,
                proxy: ProxyEnvironment(environment)
            )
            clients.list.withLock { $0.append(http) }
            return http
        }

        /// A provider whose client honours `environment`.
        func provider(_ environment: [String: String]) throws -> (AzureKeyVaultProvider, AzureHTTP) {
            let http = try http(environment)
            return (AzureKeyVaultProvider(http: http, overrides: overrides), http)
        }

        /// A service-principal mount of `db-pass`.
        var request: ProviderRequest {
            ProviderRequest(
                attributes: [
                    "keyvaultName": "kv1", "tenantID": ProxyTunnelTests.tenant, "objects": ProxyTunnelTests.objects,
                    "csi.storage.k8s.io/pod.name": "web-0", "csi.storage.k8s.io/pod.namespace": "ns",
                ],
                secrets: ["clientid": "sp-app", "clientsecret": ProxyTunnelTests.clientSecret],
                targetPath: "/t",
                currentObjectVersions: []
            )
        }

        /// The hosts the proxy was asked to tunnel to.
        var tunnelledHosts: Set<String> {
            Set(proxy.tunnels.map { String($0.target.prefix { $0 != ":" }) })
        }
    }

    static func withSetup(requiredAuthorization: String? = nil, _ body: (Setup) async throws -> Void) async throws {
        let certificates = try EmulatorCertificates.generate(
            hostNames: ["kv.proxy.test", "login.proxy.test", "imds.proxy.test", "localhost"]
        )
        let emulator = try await KeyVaultEmulator(
            seed: EmulatorSeed(
                tenantID: tenant,
                clients: [.init(clientID: "sp-app", secret: clientSecret)],
                managedIdentities: ["system"],
                vaults: ["kv1": .init(secrets: ["db-pass": [.init(value: "s3cr3t-db-password")]])]
            ),
            certificates: certificates
        )
        let proxy: TestConnectProxy
        do {
            proxy = try await TestConnectProxy(requiredAuthorization: requiredAuthorization)
        } catch {
            try? await emulator.shutdown()
            throw error
        }
        let port = Int(emulator.baseURL.split(separator: ":").last!)!
        let setup = Setup(emulator: emulator, proxy: proxy, port: port, ca: Array(certificates.caCertificatePEM.utf8))
        do {
            try await body(setup)
        } catch {
            for http in setup.clients.list.withLock({ $0 }) { try? await http.shutdown() }  // already shut down: ignored
            try? await proxy.shutdown()
            try? await emulator.shutdown()
            throw error
        }
        try await proxy.shutdown()
        try await emulator.shutdown()
    }

    @Test("with HTTPS_PROXY set, Entra ID and Key Vault go through the proxy, with its credentials, and TLS is still verified")
    func throughTheProxy() async throws {
        try await Self.withSetup(requiredAuthorization: "Basic Y3NpLXVzZXI6UHIweHktUEBzcy1TRU5USU5FTA==") { setup in
            let (provider, http) = try setup.provider(["HTTPS_PROXY": setup.proxyURL])
            let response = try await provider.fetch(setup.request, logger: Logger(label: "test"))
            try await http.shutdown()
            #expect(response.files.map(\.path) == ["db-pass"])
            #expect(response.files.first.map { String(decoding: $0.contents, as: UTF8.self) } == "s3cr3t-db-password")
            #expect(!setup.proxy.tunnels.isEmpty, "the proxy tunnelled the requests")
            #expect(setup.proxy.tunnels.allSatisfy { $0.accepted }, "every CONNECT carried the decoded credentials as Basic")
            #expect(setup.tunnelledHosts == ["login.proxy.test", "kv.proxy.test"])
            #expect(setup.emulator.keyVaultRequestCount >= 1)
        }
    }

    @Test("a server certificate that does not verify still fails inside the tunnel")
    func tunnelKeepsVerification() async throws {
        try await Self.withSetup { setup in
            let otherCA = Array(try EmulatorCertificates.generate().caCertificatePEM.utf8)
            let http = try AzureHTTP(
                tls: HTTPSClientTLS(trustRoots: .only(pem: otherCA)),
                timeouts: Self.quick,
                proxy: ProxyEnvironment(["HTTPS_PROXY": setup.proxyURL])
            )
            await #expect(throws: (any Error).self) {
                _ = try await http.send(.GET, "https://kv.proxy.test:\(setup.port)/kv1/secrets/db-pass?api-version=7.4")
            }
            try await http.shutdown()
            #expect(setup.tunnelledHosts == ["kv.proxy.test"], "it went through the proxy and was refused by TLS")
        }
    }

    @Test("NO_PROXY covering Key Vault sends only Key Vault direct; covering both sends nothing through the proxy")
    func noProxy() async throws {
        try await Self.withSetup { setup in
            // Key Vault direct: the token comes through the proxy, the vault name resolves nowhere.
            let (kvDirect, first) = try setup.provider(["HTTPS_PROXY": setup.proxyURL, "NO_PROXY": "kv.proxy.test"])
            var bounded = setup.request
            bounded.deadline = .now + .seconds(2)  // the Key Vault client retries transport failures until then
            await #expect(throws: ProviderFailure.self) { _ = try await kvDirect.fetch(bounded, logger: Logger(label: "test")) }
            try await first.shutdown()
            #expect(setup.tunnelledHosts == ["login.proxy.test"])
            #expect(setup.emulator.keyVaultRequestCount == 0)

            // Everything under .proxy.test direct (lower-case variables): no tunnel at all.
            let before = setup.proxy.tunnels.count
            let (allDirect, second) = try setup.provider(["https_proxy": setup.proxyURL, "no_proxy": ".proxy.test"])
            let failure = await #expect(throws: ProviderFailure.self) {
                _ = try await allDirect.fetch(setup.request, logger: Logger(label: "test"))
            }
            try await second.shutdown()
            #expect(setup.proxy.tunnels.count == before, "no CONNECT for a NO_PROXY host")
            if case .unavailable(let message, _)? = failure {
                #expect(message.contains("login.proxy.test"), "the direct attempt names the host: \(message)")
            } else {
                Issue.record("expected unavailable, got \(String(describing: failure))")
            }
        }
    }

    @Test("IMDS is never proxied, even with HTTPS_PROXY set and no NO_PROXY; the same URL without the bypass is")
    func imdsBypass() async throws {
        try await Self.withSetup { setup in
            let http = try setup.http(["HTTPS_PROXY": setup.proxyURL])
            let url = "https://imds.proxy.test:\(setup.port)/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net"
            await #expect(throws: (any Error).self) {
                _ = try await http.send(.GET, url, headers: [("Metadata", "true")], bypassProxy: true)
            }
            #expect(setup.proxy.tunnels.isEmpty, "the bypassed request connected directly (and the name did not resolve)")
            #expect(try await http.send(.GET, url, headers: [("Metadata", "true")]).status == 200)
            #expect(setup.tunnelledHosts == ["imds.proxy.test"])

            // The provider's managed-identity path uses the bypass.
            let provider = AzureKeyVaultProvider(http: http, overrides: setup.overrides)
            var request = setup.request
            request.attributes["useVMManagedIdentity"] = "true"
            request.secrets = [:]
            let before = setup.proxy.tunnels.count
            await #expect(throws: ProviderFailure.self) { _ = try await provider.fetch(request, logger: Logger(label: "test")) }
            #expect(setup.proxy.tunnels.count == before, "no IMDS token request went to the proxy")
            try await http.shutdown()
        }
    }

    @Test("a proxy refusing the credentials fails the mount as UNAVAILABLE, naming neither the password nor the secret")
    func refusedProxyCredentials() async throws {
        try await Self.withSetup(requiredAuthorization: "Basic c29tZW9uZTplbHNl") { setup in
            let (provider, http) = try setup.provider(["HTTPS_PROXY": setup.proxyURL])
            let failure = await #expect(throws: ProviderFailure.self) {
                _ = try await provider.fetch(setup.request, logger: Logger(label: "test"))
            }
            try await http.shutdown()
            #expect(setup.proxy.tunnels.first?.accepted == false)
            let text = "\(String(describing: failure))"
            #expect(text.contains("unavailable") && text.contains("proxyAuthenticationRequired"), "\(text)")
            for secret in [Self.proxyPassword, "Pr0xy-P%40ss", "Y3NpLXVzZXI6", Self.clientSecret] {
                #expect(!text.contains(secret), "\(text)")
            }
            #expect("\(http.proxySummary ?? "")" == "https=http://***@127.0.0.1:\(setup.proxy.port) http=direct no_proxy=")
        }
    }

    @Test("every request's User-Agent carries the custom suffix after the driver's own; a line break is refused")
    func customUserAgent() async throws {
        let agents = Mutex<[String]>([])
        let server = try await RunningHTTPListener { request in
            agents.withLock { $0.append(request.headers["User-Agent"].joined(separator: "|")) }
            return .init(status: 200, headers: [("Content-Type", "application/json")], body: Array(#"{"access_token":"t","expires_in":3600}"#.utf8))
        }
        let recorder = UserAgentRecorder()
        let http = try AzureHTTP(tls: HTTPSClientTLS(), proxy: .none, customUserAgent: " aks-addon/1.2", onExchange: { recorder.record($0) })
        let base = "http://127.0.0.1:\(server.port)"
        _ = try await http.send(.POST, base + "/tenant/oauth2/v2.0/token", body: Array("grant_type=x".utf8))
        _ = try await http.send(.GET, base + "/kv1/secrets/db-pass/?api-version=7.4")
        // IMDS through the token provider, which sends with the proxy bypass.
        let tokens = TokenProvider(http: http, imdsEndpoint: base)
        _ = try await tokens.token(for: .managedIdentity(clientID: nil), tenantID: "t", authorityHost: base + "/", resource: "https://vault.azure.net")
        try await http.shutdown()
        try await server.shutdown()
        #expect(http.customUserAgent == "aks-addon/1.2", "leading spaces dropped")
        #expect(agents.withLock { $0 } == Array(repeating: "\(AzureHTTP.baseUserAgent) aks-addon/1.2", count: 3))
        let exchanges = recorder.exchanges
        #expect(exchanges.map(\.status) == [200, 200, 200])
        #expect(exchanges.map { $0.keyVaultObject.map { "\($0.type)/\($0.name)" } } == [nil, "secret/db-pass", nil])
        #expect(exchanges.allSatisfy { !$0.url.contains("?") && !$0.proxied }, "no query string is reported")
        #expect(throws: AzureHTTPConfigurationError.self) { try AzureHTTP(proxy: .none, customUserAgent: "x\r\nInjected: yes") }
        let plain = try AzureHTTP(proxy: .none, customUserAgent: "")
        #expect(plain.customUserAgent == nil)
        try await plain.shutdown()
    }

    @Test("Key Vault object URLs are recognised for metrics; Entra ID and IMDS URLs are not")
    func keyVaultObjectLabels() {
        func object(_ url: String) -> String? {
            AzureHTTPExchange(method: "GET", url: url, status: 200, duration: .zero, proxied: false).keyVaultObject.map { "\($0.type)/\($0.name)" }
        }
        #expect(object("https://kv.vault.azure.net/secrets/db-pass/") == "secret/db-pass")
        #expect(object("https://kv.vault.azure.net/secrets/db-pass/0123456789abcdef0123456789abcdef") == "secret/db-pass")
        #expect(object("https://kv.vault.azure.net/keys/signing/versions") == "key/signing")
        #expect(object("https://127.0.0.1:8443/kv1/certificates/web/") == "cert/web")
        #expect(object("https://127.0.0.1:8443/secrets/keys/0123456789ABCDEF0123456789ABCDEF") == "secret/keys")
        #expect(object("https://login.microsoftonline.com/t/oauth2/v2.0/token") == nil)
        #expect(object("http://169.254.169.254/metadata/identity/oauth2/token") == nil)
    }
}

/// Collects observed exchanges.
final class UserAgentRecorder: Sendable {
    private let state = Mutex<[AzureHTTPExchange]>([])
    func record(_ exchange: AzureHTTPExchange) { state.withLock { $0.append(exchange) } }
    var exchanges: [AzureHTTPExchange] { state.withLock { $0 } }
}
