import KeyVaultEmulator
import NIOHTTP1
import SecretsStoreAzure
import SecretsStoreHTTPClient
import Testing

/// The one HTTPS client builder (`HTTPClient.make(tls:timeouts:)`, reached through ``AzureHTTP``) against the
/// emulator's TLS port: which roots it trusts, the client certificate it presents, verification off, and the
/// read timeout.
@Suite("HTTPS client builder against the emulator's TLS listener", .serialized, .timeLimit(.minutes(3)))
struct HTTPSClientTests {
    /// An IMDS token request: answered by the emulator without any Key Vault token.
    static func imdsURL(_ emulator: KeyVaultEmulator) -> String {
        emulator.baseURL + "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net"
    }

    /// Short connection limits: a refused handshake is retried until the connect timeout, so keep it short.
    static let quick = HTTPSClientTimeouts(connect: .seconds(1), read: .seconds(10))
    /// For a request that should succeed: a TLS handshake in a debug build, with the whole suite running in
    /// parallel on a loaded machine, took more than the quick second.
    static let patient = HTTPSClientTimeouts(connect: .seconds(15), read: .seconds(15))

    /// Sends one GET with a client built from `tls` and `timeouts`; the HTTP status, or the thrown error.
    static func status(
        _ url: String,
        tls: HTTPSClientTLS,
        timeouts: HTTPSClientTimeouts = quick
    ) async throws -> Result<Int, any Error> {
        let http = try AzureHTTP(tls: tls, timeouts: timeouts)
        let result: Result<Int, any Error>
        do {
            result = .success(try await http.send(.GET, url, headers: [("Metadata", "true")]).status)
        } catch {
            result = .failure(error)
        }
        try await http.shutdown()
        return result
    }

    static func withEmulator(requireClientCertificate: Bool = false, _ body: (KeyVaultEmulator) async throws -> Void) async throws {
        let emulator = try await KeyVaultEmulator(
            seed: EmulatorSeed(managedIdentities: ["system"]),
            requireClientCertificate: requireClientCertificate
        )
        do {
            try await body(emulator)
        } catch {
            try? await emulator.shutdown()
            throw error
        }
        try await emulator.shutdown()
    }

    @Test("system roots alone refuse the emulator; system roots plus its CA, or only its CA, accept it")
    func trustRoots() async throws {
        try await Self.withEmulator { emulator in
            let ca = Array(emulator.certificates.caCertificatePEM.utf8)
            let url = Self.imdsURL(emulator)
            guard case .failure = try await Self.status(url, tls: HTTPSClientTLS()) else {
                Issue.record("the system roots trusted the emulator's private CA")
                return
            }
            #expect(try await Self.status(url, tls: HTTPSClientTLS(trustRoots: .system(extraPEM: ca)), timeouts: Self.patient).get() == 200)
            #expect(try await Self.status(url, tls: HTTPSClientTLS(trustRoots: .only(pem: ca)), timeouts: Self.patient).get() == 200)
            // `AzureHTTP(extraCABundlePEM:)` is the system-plus-extra case.
            let http = try AzureHTTP(extraCABundlePEM: ca)  // production limits
            #expect(try await http.send(.GET, url, headers: [("Metadata", "true")]).status == 200)
            try await http.shutdown()
        }
    }

    @Test("only a CA that did not sign the server is refused; insecureSkipVerify accepts any server")
    func onlyOtherCAAndInsecure() async throws {
        try await Self.withEmulator { emulator in
            let otherCA = Array(try EmulatorCertificates.generate().caCertificatePEM.utf8)
            let url = Self.imdsURL(emulator)
            guard case .failure = try await Self.status(url, tls: HTTPSClientTLS(trustRoots: .only(pem: otherCA))) else {
                Issue.record("a CA that did not sign the server certificate was accepted")
                return
            }
            #expect(try await Self.status(url, tls: HTTPSClientTLS(trustRoots: .only(pem: otherCA), insecureSkipVerify: true), timeouts: Self.patient).get() == 200)
            #expect(try await Self.status(url, tls: HTTPSClientTLS(insecureSkipVerify: true), timeouts: Self.patient).get() == 200)
        }
    }

    @Test("the client certificate and key are presented when the server asks for them")
    func clientCertificate() async throws {
        try await Self.withEmulator(requireClientCertificate: true) { emulator in
            let certificates = emulator.certificates
            let roots = HTTPSClientTLS.TrustRoots.only(pem: Array(certificates.caCertificatePEM.utf8))
            let url = Self.imdsURL(emulator)
            guard case .failure = try await Self.status(url, tls: HTTPSClientTLS(trustRoots: roots)) else {
                Issue.record("the server accepted a client without a certificate")
                return
            }
            let client = HTTPSClientTLS.ClientCertificate(
                certificatePEM: Array(certificates.clientCertificatePEM.utf8),
                keyPEM: Array(certificates.clientKeyPEM.utf8)
            )
            #expect(try await Self.status(url, tls: HTTPSClientTLS(trustRoots: roots, clientCertificate: client), timeouts: Self.patient).get() == 200)
        }
    }

    @Test("PEM that does not parse fails when the client is built, not on the first request")
    func badPEMFailsEarly() throws {
        #expect(throws: (any Error).self) { try AzureHTTP(tls: HTTPSClientTLS(trustRoots: .only(pem: Array("not a certificate".utf8)))) }
        #expect(throws: (any Error).self) {
            try AzureHTTP(tls: HTTPSClientTLS(clientCertificate: .init(certificatePEM: Array("x".utf8), keyPEM: Array("y".utf8))))
        }
    }

    @Test("the read timeout ends a response that stalls; the default one waits it out")
    func readTimeout() async throws {
        try await Self.withEmulator { emulator in
            var faults = KeyVaultEmulator.Faults()
            faults.latency = .milliseconds(1500)
            emulator.setFaults(faults)
            let tls = HTTPSClientTLS(trustRoots: .only(pem: Array(emulator.certificates.caCertificatePEM.utf8)))
            // A Key Vault route: the emulator delays those answers (here a 401, no token is sent) by `latency`.
            let url = emulator.baseURL + "/kv/secrets/s?api-version=7.4"
            let stalled = try await Self.status(url, tls: tls, timeouts: HTTPSClientTimeouts(connect: .seconds(5), read: .milliseconds(300)))
            guard case .failure(let error) = stalled else {
                Issue.record("a 1.5 s stall outlived a 300 ms read timeout: \(stalled)")
                return
            }
            #expect(String(describing: error).contains("readTimeout"))
            #expect(try await Self.status(url, tls: tls, timeouts: Self.patient).get() == 401)
        }
    }
}
