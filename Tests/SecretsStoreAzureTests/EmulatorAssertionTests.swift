import Crypto
import Foundation
import KeyVaultEmulator
import NIOHTTP1
import SecretsStoreAzure
import SecretsStoreCore
import Testing
import _CryptoExtras

/// The emulator's Entra token endpoint checks a workload identity's client assertion as Entra does: RS256 by a
/// key of a trusted issuer, the issuer allowed by a federated credential, within `nbf`/`exp`, then subject and
/// audience; each refusal is Entra's `AADSTS…` body, which never carries the assertion.
@Suite("Key Vault emulator: client assertions verified as Entra verifies them", .timeLimit(.minutes(3)))
struct EmulatorAssertionTests {
    static let tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
    static let client = "wi-app"
    static let subject = "system:serviceaccount:ns:app"

    /// One token request's answer: the status and the JSON body.
    struct Answer {
        var status: Int
        var body: [String: Any]
        var codes: [Int] { (body["error_codes"] as? [Int]) ?? [] }
        var description: String { body["error_description"] as? String ?? "" }
        var accepted: Bool { status == 200 && body["access_token"] is String }
    }

    /// Runs `body` against an emulator with one workload-identity application (`federation` its credential)
    /// and `issuers` trusted (`nil`: the built-in test issuer).
    static func withEmulator(
        issuers: [EmulatorSeed.Issuer]? = nil,
        federation: EmulatorSeed.Client.Federation = .init(subject: subject, audience: "api://AzureADTokenExchange"),
        _ body: (_ ask: (String) async throws -> Answer) async throws -> Void
    ) async throws {
        let seed = EmulatorSeed(tenantID: tenant, clients: [.init(clientID: client, federated: [federation])], issuers: issuers)
        try await withEmulator(seed: seed, body)
    }

    static func withEmulator(seed: EmulatorSeed, _ body: (_ ask: (String) async throws -> Answer) async throws -> Void) async throws {
        let emulator = try await KeyVaultEmulator(seed: seed)
        let http = try AzureHTTP(extraCABundlePEM: Array(emulator.certificates.caCertificatePEM.utf8))
        let ask: (String) async throws -> Answer = { assertion in
            let response = try await http.send(
                .POST,
                emulator.baseURL + "/\(tenant)/oauth2/v2.0/token",
                headers: [("Content-Type", "application/x-www-form-urlencoded")],
                body: FormEncoding.encode([
                    ("grant_type", "client_credentials"), ("client_id", client), ("scope", "https://vault.azure.net/.default"),
                    ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"), ("client_assertion", assertion),
                ])
            )
            let json = (try? JSONSerialization.jsonObject(with: Data(response.body))) as? [String: Any] ?? [:]
            return Answer(status: response.status, body: json)
        }
        do {
            try await body(ask)
        } catch {
            try? await http.shutdown()
            try? await emulator.shutdown()
            throw error
        }
        try await http.shutdown()
        try await emulator.shutdown()
    }

    static func expectAccepted(_ answer: Answer, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(answer.accepted, "\(answer.body)", sourceLocation: sourceLocation)
    }

    /// Expects a refusal with `code` whose description starts with `text`, and never carries the assertion.
    static func expectRefused(_ answer: Answer, status: Int, code: Int, _ text: String, assertion: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(answer.status == status, sourceLocation: sourceLocation)
        #expect(answer.codes == [code], "\(answer.body)", sourceLocation: sourceLocation)
        #expect(answer.description.hasPrefix("AADSTS\(code): \(text)"), "\(answer.description)", sourceLocation: sourceLocation)
        let parts = assertion.split(separator: ".", omittingEmptySubsequences: false)
        let serialized = String(decoding: (try? JSONSerialization.data(withJSONObject: answer.body)) ?? Data(), as: UTF8.self)
        #expect(!serialized.contains(assertion) && !parts.contains { $0.count > 8 && serialized.contains($0) }, sourceLocation: sourceLocation)
    }

    static func segment(_ json: String) -> String { base64URL(Data(json.utf8)) }

    static func decode(_ segment: Substring) -> Data {
        var text = segment.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while text.count % 4 != 0 { text += "=" }
        return Data(base64Encoded: text) ?? Data()
    }

    /// `token` with its payload replaced by `claims` (JSON), its header and signature kept.
    static func replacingPayload(of token: String, with claims: String) -> String {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        return "\(parts[0]).\(segment(claims)).\(parts[2])"
    }

    static func claims(subject: String = subject, issuer: String = ServiceAccountToken.testIssuer) -> String {
        let now = Int(Date().timeIntervalSince1970)
        return #"{"aud":["api://AzureADTokenExchange"],"exp":\#(now + 3600),"iat":\#(now),"iss":"\#(issuer)","nbf":\#(now),"sub":"\#(subject)"}"#
    }

    @Test("a token signed by the trusted issuer's key for the federated subject and audience gets an access token")
    func accepted() async throws {
        // The kid is the API server's: base64url SHA-256 of the DER SubjectPublicKeyInfo (this value from
        // `openssl rsa -pubout -outform DER | openssl dgst -sha256 -binary`, base64url).
        let kid = "85w1WF99lt1vcbq2jh1Jos6vOeawobahQnsK7pY4Ef8"
        #expect(ServiceAccountToken.keyID(of: ServiceAccountToken.testSigningKey.publicKey) == kid)
        let header = ServiceAccountToken.make(subject: Self.subject).split(separator: ".")[0]
        #expect(String(decoding: Self.decode(header), as: UTF8.self) == #"{"alg":"RS256","kid":"\#(kid)"}"#)
        try await Self.withEmulator { ask in
            Self.expectAccepted(try await ask(ServiceAccountToken.make(subject: Self.subject)))
        }
    }

    @Test("signed by another key: AADSTS50013, though every claim matches")
    func wrongKey() async throws {
        let other = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        try await Self.withEmulator { ask in
            let token = ServiceAccountToken.make(subject: Self.subject, key: other)
            Self.expectRefused(try await ask(token), status: 401, code: 50013, "Assertion failed signature validation.", assertion: token)
        }
    }

    @Test("a payload changed after signing (another subject's token made into ours): AADSTS50013")
    func tamperedPayload() async throws {
        try await Self.withEmulator { ask in
            let signedForOther = ServiceAccountToken.make(subject: "system:serviceaccount:ns:other")
            let tampered = Self.replacingPayload(of: signedForOther, with: Self.claims())
            Self.expectRefused(try await ask(tampered), status: 401, code: 50013, "Assertion failed signature validation.", assertion: tampered)
            // The signature stripped entirely fails the same way.
            let stripped = String(tampered[..<tampered.lastIndex(of: ".")!]) + "."
            Self.expectRefused(try await ask(stripped), status: 401, code: 50013, "Assertion failed signature validation.", assertion: stripped)
        }
    }

    @Test("an issuer not trusted, or trusted but not the federated credential's: AADSTS700211 naming the issuer")
    func unknownIssuer() async throws {
        try await Self.withEmulator { ask in
            let token = ServiceAccountToken.make(subject: Self.subject, issuer: "https://untrusted.example")
            let answer = try await ask(token)
            Self.expectRefused(answer, status: 401, code: 700211, "No matching federated identity record found for presented assertion issuer 'https://untrusted.example'.", assertion: token)
        }
        let other = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        let issuers: [EmulatorSeed.Issuer] = [.builtInTest, .init(issuer: "https://cluster.example", publicKeyPEM: other.publicKey.pemRepresentation)]
        try await Self.withEmulator(issuers: issuers, federation: .init(subject: Self.subject, audience: "api://AzureADTokenExchange", issuer: "https://cluster.example")) { ask in
            Self.expectAccepted(try await ask(ServiceAccountToken.make(subject: Self.subject, issuer: "https://cluster.example", key: other)))
            let token = ServiceAccountToken.make(subject: Self.subject)
            Self.expectRefused(try await ask(token), status: 401, code: 700211, "No matching federated identity record found for presented assertion issuer '\(ServiceAccountToken.testIssuer)'.", assertion: token)
        }
    }

    @Test("a seed naming issuers replaces the built-in test issuer; one issuer's key does not vouch for another; [] trusts none")
    func seededIssuers() async throws {
        let cluster = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        try await Self.withEmulator(issuers: [.init(issuer: "https://kubernetes.default.svc", publicKeyPEM: cluster.publicKey.pemRepresentation)]) { ask in
            Self.expectAccepted(try await ask(ServiceAccountToken.make(subject: Self.subject, issuer: "https://kubernetes.default.svc", key: cluster)))
            let test = ServiceAccountToken.make(subject: Self.subject)
            Self.expectRefused(try await ask(test), status: 401, code: 700211, "No matching federated identity record found", assertion: test)
            let crossed = ServiceAccountToken.make(subject: Self.subject, issuer: "https://kubernetes.default.svc")
            Self.expectRefused(try await ask(crossed), status: 401, code: 50013, "Assertion failed signature validation.", assertion: crossed)
        }
        // A private key (what `--service-account-key-file` may hold) stands for its public half.
        try await Self.withEmulator(issuers: [.init(issuer: "https://kubernetes.default.svc", publicKeyPEM: cluster.pemRepresentation)]) { ask in
            Self.expectAccepted(try await ask(ServiceAccountToken.make(subject: Self.subject, issuer: "https://kubernetes.default.svc", key: cluster)))
        }
        try await Self.withEmulator(issuers: []) { ask in
            let token = ServiceAccountToken.make(subject: Self.subject)
            Self.expectRefused(try await ask(token), status: 401, code: 700211, "No matching federated identity record found", assertion: token)
        }
    }

    @Test("two keys for one issuer (a rotation): either signs; a kid naming one key is checked against that key only")
    func keyIDs() async throws {
        let old = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        let new = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        let issuer = "https://kubernetes.default.svc"
        let issuers: [EmulatorSeed.Issuer] = [.init(issuer: issuer, publicKeyPEM: old.publicKey.pemRepresentation + "\n" + new.publicKey.pemRepresentation)]
        try await Self.withEmulator(issuers: issuers) { ask in
            Self.expectAccepted(try await ask(ServiceAccountToken.make(subject: Self.subject, issuer: issuer, key: old)))
            Self.expectAccepted(try await ask(ServiceAccountToken.make(subject: Self.subject, issuer: issuer, key: new)))
            // Signed by the new key, but its header names the old one.
            let signed = ServiceAccountToken.make(subject: Self.subject, issuer: issuer, key: new)
            let parts = signed.split(separator: ".")
            let header = Self.segment(#"{"alg":"RS256","kid":"\#(ServiceAccountToken.keyID(of: old.publicKey))"}"#)
            let input = "\(header).\(parts[1])"
            let signature = try new.signature(for: Data(input.utf8), padding: .insecurePKCS1v1_5)
            let misnamed = input + "." + base64URL(signature.rawRepresentation)
            Self.expectRefused(try await ask(misnamed), status: 401, code: 50013, "Assertion failed signature validation.", assertion: misnamed)
            // Without a kid every key of the issuer is tried.
            let bare = "\(Self.segment(#"{"alg":"RS256"}"#)).\(parts[1])"
            let unnamed = bare + "." + base64URL(try new.signature(for: Data(bare.utf8), padding: .insecurePKCS1v1_5).rawRepresentation)
            Self.expectAccepted(try await ask(unnamed))
        }
    }

    @Test("the issuer's key as an X.509 certificate PEM, read from a file a YAML seed names relative to itself")
    func certificateFileInYAMLSeed() async throws {
        let rsa = try TestRSACertificate.make()
        let key = try _RSA.Signing.PrivateKey(derRepresentation: rsa.keyPKCS8)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("emulator-issuers-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try PEM.encode(type: "CERTIFICATE", der: rsa.certificate).write(to: directory.appendingPathComponent("sa.crt"), atomically: true, encoding: .utf8)
        let yaml = """
            tenantID: \(Self.tenant)
            issuers:
              - issuer: https://kubernetes.default.svc
                publicKeyFile: sa.crt
              - issuer: \(ServiceAccountToken.testIssuer)
                publicKeyPEM: |
            \(ServiceAccountToken.testPublicKeyPEM.split(separator: "\n").map { "          " + $0 }.joined(separator: "\n"))
            clients:
              - clientID: \(Self.client)
                federated:
                  - subject: \(Self.subject)
                    audience: api://AzureADTokenExchange
            """
        let path = directory.appendingPathComponent("seed.yaml").path
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        let seed = try EmulatorSeed.load(path: path)
        #expect(seed.issuers?.first?.publicKeyFile == directory.appendingPathComponent("sa.crt").path)
        try await Self.withEmulator(seed: seed) { ask in
            Self.expectAccepted(try await ask(ServiceAccountToken.make(subject: Self.subject, issuer: "https://kubernetes.default.svc", key: key)))
            Self.expectAccepted(try await ask(ServiceAccountToken.make(subject: Self.subject)))
        }
    }

    @Test("an issuer's key that is not an RSA public key, or no key at all, stops the emulator at start, naming the issuer")
    func badIssuerKeys() async throws {
        let p256 = P256.Signing.PrivateKey().publicKey.pemRepresentation
        for issuer in [
            EmulatorSeed.Issuer(issuer: "https://bad.example", publicKeyPEM: p256),
            EmulatorSeed.Issuer(issuer: "https://bad.example", publicKeyPEM: "not PEM"),
            EmulatorSeed.Issuer(issuer: "https://bad.example"),
            EmulatorSeed.Issuer(issuer: "https://bad.example", publicKeyFile: "/nonexistent/sa.pub"),
        ] {
            do {
                let emulator = try await KeyVaultEmulator(seed: EmulatorSeed(issuers: [issuer]))
                try await emulator.shutdown()
                Issue.record("started with \(issuer)")
            } catch {
                #expect("\(error)".contains("https://bad.example"), "\(error)")
            }
        }
    }

    @Test("the audience or the subject not the federated credential's: AADSTS70021 naming issuer, subject and audience")
    func subjectAndAudience() async throws {
        try await Self.withEmulator { ask in
            let subject = ServiceAccountToken.make(subject: "system:serviceaccount:ns:other")
            Self.expectRefused(
                try await ask(subject), status: 400, code: 70021,
                "No matching federated identity record found for presented assertion. Assertion Issuer: '\(ServiceAccountToken.testIssuer)'. Assertion Subject: 'system:serviceaccount:ns:other'. Assertion Audience: 'api://AzureADTokenExchange'.",
                assertion: subject
            )
            let audience = ServiceAccountToken.make(subject: Self.subject, audience: "https://kubernetes.default.svc")
            Self.expectRefused(
                try await ask(audience), status: 400, code: 70021,
                "No matching federated identity record found for presented assertion. Assertion Issuer: '\(ServiceAccountToken.testIssuer)'. Assertion Subject: '\(Self.subject)'. Assertion Audience: 'https://kubernetes.default.svc'.",
                assertion: audience
            )
        }
    }

    @Test("expired, or not yet valid: AADSTS700024 with the times")
    func timeRange() async throws {
        try await Self.withEmulator { ask in
            let expired = ServiceAccountToken.make(subject: Self.subject, expiresIn: -60)
            let answer = try await ask(expired)
            Self.expectRefused(answer, status: 400, code: 700024, "Client assertion is not within its valid time range. Current time: ", assertion: expired)
            #expect(answer.description.contains(", expiry time of assertion "))
            let early = ServiceAccountToken.make(subject: Self.subject, validFrom: 600)
            Self.expectRefused(try await ask(early), status: 400, code: 700024, "Client assertion is not within its valid time range.", assertion: early)
        }
    }

    @Test("alg none, or HS256 keyed with the issuer's public key: refused with AADSTS5002730")
    func algorithms() async throws {
        try await Self.withEmulator { ask in
            let payload = Self.segment(Self.claims())
            let none = Self.segment(#"{"alg":"none"}"#) + "." + payload + "."
            Self.expectRefused(try await ask(none), status: 400, code: 5002730, "Invalid JWT token. Unsupported key for the signing algorithm.", assertion: none)
            let input = Self.segment(#"{"alg":"HS256","kid":"\#(ServiceAccountToken.keyID(of: ServiceAccountToken.testSigningKey.publicKey))"}"#) + "." + payload
            let mac = HMAC<SHA256>.authenticationCode(for: Data(input.utf8), using: SymmetricKey(data: Data(ServiceAccountToken.testPublicKeyPEM.utf8)))
            let hs256 = input + "." + base64URL(Data(mac))
            Self.expectRefused(try await ask(hs256), status: 400, code: 5002730, "Invalid JWT token. Unsupported key for the signing algorithm.", assertion: hs256)
            let malformed = "not-a-jwt"
            Self.expectRefused(try await ask(malformed), status: 400, code: 50027, "JWT token is invalid or malformed.", assertion: malformed)
        }
    }
}
