import SecretsStoreHTTPClient
import Testing

/// ``ProxyDecision`` and the proxy variables, as pure values: which variable wins, which URLs go through which
/// proxy, every `NO_PROXY` form Go's `httpproxy` accepts, and that credentials never appear in a description or
/// an error.
@Suite("Proxy variables and the per-request proxy decision (Go httpproxy rules)", .timeLimit(.minutes(3)))
struct ProxyDecisionTests {
    static let proxy = ProxyServer(host: "proxy.corp", port: 3128)

    static func decision(_ environment: [String: String]) throws -> ProxyDecision {
        try ProxyDecision(environment: ProxyEnvironment(environment))
    }

    @Test("the upper-case variable wins when both are set; an empty one counts as unset")
    func caseAndEmptiness() throws {
        let both = ProxyEnvironment(["HTTPS_PROXY": "upper:1", "https_proxy": "lower:2", "NO_PROXY": "a.test", "no_proxy": "b.test"])
        #expect(both.httpsProxy == .init(variable: "HTTPS_PROXY", text: "upper:1"))
        #expect(both.noProxy == "a.test")
        let emptyUpper = ProxyEnvironment(["HTTPS_PROXY": "", "https_proxy": "lower:2", "HTTP_PROXY": "", "no_proxy": "b.test"])
        #expect(emptyUpper.httpsProxy == .init(variable: "https_proxy", text: "lower:2"))
        #expect(emptyUpper.httpProxy == nil)
        #expect(emptyUpper.noProxy == "b.test")
        #expect(ProxyEnvironment([:]) == .none)
        #expect(try ProxyDecision(environment: .none) == .direct)
    }

    @Test("https URLs use HTTPS_PROXY only, http URLs HTTP_PROXY only, other schemes go direct")
    func schemes() throws {
        let onlyHTTP = try Self.decision(["HTTP_PROXY": "http://plain.corp:8080"])
        #expect(onlyHTTP.proxy(for: "https://kv.vault.azure.net/secrets/a") == nil, "HTTP_PROXY is never used for https")
        #expect(onlyHTTP.proxy(for: "http://example.test/x") == ProxyServer(host: "plain.corp", port: 8080))
        let both = try Self.decision(["HTTPS_PROXY": "proxy.corp:3128", "HTTP_PROXY": "plain.corp:8080"])
        #expect(both.proxy(for: "https://login.microsoftonline.com/t/oauth2/v2.0/token") == Self.proxy)
        #expect(both.proxy(for: "HTTPS://KV.vault.azure.net:443/") == Self.proxy)
        #expect(both.proxy(for: "unix:///var/run/x.sock") == nil)
        #expect(both.proxy(for: "not a url") == nil)
    }

    @Test("localhost and loopback addresses always go direct, whatever NO_PROXY says")
    func loopback() throws {
        let decision = try Self.decision(["HTTPS_PROXY": "proxy.corp:3128"])
        for url in ["https://localhost:8443/x", "https://LOCALHOST/", "https://127.0.0.1:8443/", "https://127.9.9.9/", "https://[::1]:443/", "https://[::ffff:127.0.0.1]/"] {
            #expect(decision.proxy(for: url) == nil, "\(url)")
        }
        #expect(decision.proxy(for: "https://localhost.example/") == Self.proxy, "only the name localhost itself")
        #expect(decision.proxy(for: "https://128.0.0.1/") == Self.proxy)
    }

    @Test("a NO_PROXY domain matches itself and its subdomains by whole labels; .domain and *.domain only subdomains")
    func domains() throws {
        let decision = try Self.decision(["HTTPS_PROXY": "proxy.corp:3128", "NO_PROXY": " Vault.Azure.NET , .internal.corp,*.svc.test"])
        #expect(decision.proxy(for: "https://vault.azure.net/") == nil)
        #expect(decision.proxy(for: "https://myvault.vault.azure.net/secrets/s") == nil)
        #expect(decision.proxy(for: "https://MyVault.Vault.Azure.Net/") == nil, "case-insensitive")
        #expect(decision.proxy(for: "https://badvault.azure.net/") == Self.proxy)
        #expect(decision.proxy(for: "https://notvault.azure.net/") == Self.proxy, "a bare suffix is matched by labels, not characters")
        #expect(decision.proxy(for: "https://a.internal.corp/") == nil)
        #expect(decision.proxy(for: "https://internal.corp/") == Self.proxy, "a leading dot: subdomains only")
        #expect(decision.proxy(for: "https://api.svc.test/") == nil)
        #expect(decision.proxy(for: "https://svc.test/") == Self.proxy, "*. is a leading dot")
        #expect(decision.proxy(for: "https://login.microsoftonline.com/") == Self.proxy)
    }

    @Test("NO_PROXY entries with a port only match that port (the scheme's default when the URL names none)")
    func ports() throws {
        let decision = try Self.decision(["HTTPS_PROXY": "proxy.corp:3128", "NO_PROXY": "vault.test:8443,login.test:443,10.1.2.3:443,[fd00::1]:8443"])
        #expect(decision.proxy(for: "https://kv.vault.test:8443/") == nil)
        #expect(decision.proxy(for: "https://kv.vault.test/") == Self.proxy)
        #expect(decision.proxy(for: "https://login.test/") == nil, "443 is https's default")
        #expect(decision.proxy(for: "https://login.test:8443/") == Self.proxy)
        #expect(decision.proxy(for: "https://10.1.2.3/") == nil)
        #expect(decision.proxy(for: "https://10.1.2.3:8443/") == Self.proxy)
        #expect(decision.proxy(for: "https://[fd00::1]:8443/") == nil)
        #expect(decision.proxy(for: "https://[fd00::1]/") == Self.proxy)
    }

    @Test("NO_PROXY IP addresses and CIDR blocks (IPv4, IPv6, IPv4-mapped) match hosts written as addresses only")
    func addresses() throws {
        let decision = try Self.decision([
            "HTTPS_PROXY": "proxy.corp:3128", "NO_PROXY": "10.0.0.0/8,192.168.1.7,fd00::/8,2001:db8::1,172.16.0.0/33,bogus/x",
        ])
        #expect(decision.proxy(for: "https://10.200.3.4/") == nil)
        #expect(decision.proxy(for: "https://11.0.0.1/") == Self.proxy)
        #expect(decision.proxy(for: "https://192.168.1.7/") == nil)
        #expect(decision.proxy(for: "https://192.168.1.8/") == Self.proxy)
        #expect(decision.proxy(for: "https://[fd12:3456::1]/") == nil)
        #expect(decision.proxy(for: "https://[fe80::1]/") == Self.proxy)
        #expect(decision.proxy(for: "https://[2001:db8::1]/") == nil)
        #expect(decision.proxy(for: "https://[::ffff:10.9.9.9]/") == nil, "an IPv4-mapped address is the IPv4 address")
        #expect(decision.proxy(for: "https://172.16.0.1/") == Self.proxy, "a CIDR with a bad length is skipped")
        #expect(decision.proxy(for: "https://ten.example/") == Self.proxy, "names are never resolved for CIDR entries")
        let link = try Self.decision(["HTTPS_PROXY": "proxy.corp:3128", "NO_PROXY": "169.254.169.254"])
        #expect(link.proxy(for: "https://169.254.169.254/metadata") == nil)
    }

    @Test("NO_PROXY=* sends everything direct; empty and malformed entries are skipped")
    func everythingAndMalformed() throws {
        let all = try Self.decision(["HTTPS_PROXY": "proxy.corp:3128", "HTTP_PROXY": "proxy.corp:3128", "NO_PROXY": "a.test, * "])
        #expect(all.proxy(for: "https://anything.example/") == nil)
        #expect(all.proxy(for: "http://anything.example/") == nil)
        let odd = try Self.decision(["HTTPS_PROXY": "proxy.corp:3128", "NO_PROXY": ",, :443,[,.,x.test"])
        #expect(odd.proxy(for: "https://x.test/") == nil)
        #expect(odd.proxy(for: "https://y.test/") == Self.proxy)
    }

    @Test("proxy values: a bare host[:port] is http://, ports default per scheme, credentials are percent-decoded")
    func proxyValues() throws {
        func parse(_ text: String) throws -> ProxyServer {
            try ProxyServer(parsing: .init(variable: "HTTPS_PROXY", text: text))
        }
        #expect(try parse("proxy.corp:3128") == ProxyServer(host: "proxy.corp", port: 3128))
        #expect(try parse("proxy.corp") == ProxyServer(host: "proxy.corp", port: 80))
        #expect(try parse("HTTP://proxy.corp:3128/") == ProxyServer(host: "proxy.corp", port: 3128))
        #expect(try parse("http://[fd00::5]:3128") == ProxyServer(host: "fd00::5", port: 3128))
        #expect(try parse(" socks5://gw.corp ") == ProxyServer(kind: .socks5, host: "gw.corp", port: 1080))
        #expect(try parse("socks5h://gw.corp:9050") == ProxyServer(kind: .socks5, host: "gw.corp", port: 9050))
        let withCredentials = try parse("http://al%40ice:p%40ss:w@proxy.corp:3128")
        #expect(withCredentials.credentials == .init(username: "al@ice", password: "p@ss:w"))
        #expect(try parse("bob@proxy.corp:3128").credentials == .init(username: "bob", password: ""))
    }

    @Test("descriptions and errors never show proxy credentials")
    func secrecy() throws {
        let password = "S3cr3t-Pr0xy-Pass"
        let environment = ProxyEnvironment(["HTTPS_PROXY": "http://user:\(password)@proxy.corp:3128", "NO_PROXY": ".svc"])
        let decision = try ProxyDecision(environment: environment)
        for text in ["\(environment)", "\(decision)", "\(decision.httpsProxy!)"] {
            #expect(!text.contains(password), "\(text)")
            #expect(!text.contains("user"), "\(text)")
        }
        #expect("\(decision.httpsProxy!)" == "http://***@proxy.corp:3128")
        #expect("\(decision)" == "https=http://***@proxy.corp:3128 http=direct no_proxy=.svc")

        let https = #expect(throws: ProxyConfigurationError.self) {
            try Self.decision(["https_proxy": "https://user:\(password)@proxy.corp:8443"])
        }
        #expect(https?.description == "https_proxy names the proxy https://proxy.corp:8443: only http:// (HTTP CONNECT) and socks5:// proxies are supported")
        let malformed = #expect(throws: ProxyConfigurationError.self) {
            try Self.decision(["HTTPS_PROXY": "http://user:\(password)%zz@proxy.corp:3128"])
        }
        #expect(malformed?.problem == .notAURL)
        let socks = #expect(throws: ProxyConfigurationError.self) {
            try Self.decision(["HTTP_PROXY": "socks5://user:\(password)@gw.corp"])
        }
        #expect(socks?.problem == .socksCredentials)
        let other = #expect(throws: ProxyConfigurationError.self) { try Self.decision(["HTTPS_PROXY": "ftp://proxy.corp"]) }
        #expect(other?.problem == .unsupportedScheme("ftp://"))
        for error in [https, malformed, socks, other].compactMap({ $0 }) {
            #expect(!error.description.contains(password), "\(error)")
        }
    }
}
