import SecretsStoreHTTPServer
import Crypto
import Foundation
import SwiftASN1
import X509
import _CryptoExtras

/// One RSA key of a trusted issuer, and the `kid` the API server gives tokens it signs.
struct TrustedKey: Sendable {
    var key: _RSA.Signing.PublicKey
    var id: String
}

/// The keys of the issuers the emulator trusts, read from the seed.
enum TrustedIssuers {
    /// Keys by issuer: the seed's ``EmulatorSeed/issuers``, or the built-in test issuer when it names none.
    /// Entries naming the same issuer add up (several keys, as during a key rotation).
    static func load(_ issuers: [EmulatorSeed.Issuer]?) throws -> [String: [TrustedKey]] {
        var keys: [String: [TrustedKey]] = [:]
        for issuer in issuers ?? [.builtInTest] {
            guard issuer.publicKeyFile != nil || issuer.publicKeyPEM != nil else {
                throw EmulatorError("issuer \(issuer.issuer): needs publicKeyFile or publicKeyPEM")
            }
            var found: [TrustedKey] = []
            if let file = issuer.publicKeyFile {
                let text: String
                do {
                    text = try String(contentsOfFile: file, encoding: .utf8)
                } catch {
                    throw EmulatorError("issuer \(issuer.issuer): cannot read \(file): \(error.localizedDescription)")
                }
                found += try parse(text, source: "issuer \(issuer.issuer), \(file)")
            }
            if let pem = issuer.publicKeyPEM {
                found += try parse(pem, source: "issuer \(issuer.issuer), publicKeyPEM")
            }
            keys[issuer.issuer, default: []] += found
        }
        return keys
    }

    /// The RSA public keys in PEM text: `PUBLIC KEY`, `RSA PUBLIC KEY` and `CERTIFICATE` blocks, and the public
    /// half of `PRIVATE KEY` and `RSA PRIVATE KEY` blocks (what the API server's `--service-account-key-file`
    /// accepts, RSA only); anything else, or no block at all, is an error naming `source`.
    static func parse(_ text: String, source: String) throws -> [TrustedKey] {
        var keys: [TrustedKey] = []
        var rest = Substring(text)
        while let begin = rest.range(of: "-----BEGIN ") {
            guard let end = rest.range(of: "-----END ", range: begin.upperBound..<rest.endIndex),
                let close = rest.range(of: "-----", range: end.upperBound..<rest.endIndex)
            else { throw EmulatorError("\(source): unterminated PEM block") }
            let block = String(rest[begin.lowerBound..<close.upperBound])
            rest = rest[close.upperBound...]
            let document: PEMDocument
            do {
                document = try PEMDocument(pemString: block)
            } catch {
                throw EmulatorError("\(source): not PEM: \(error)")
            }
            let key: _RSA.Signing.PublicKey
            switch document.discriminator {
            case "PUBLIC KEY", "RSA PUBLIC KEY":
                do {
                    key = try _RSA.Signing.PublicKey(pemRepresentation: block)
                } catch {
                    throw EmulatorError("\(source): not an RSA public key of 2048 bits or more (RS256 only): \(error)")
                }
            case "PRIVATE KEY", "RSA PRIVATE KEY":
                // `--service-account-key-file` may hold the private key; only its public half is kept.
                do {
                    key = try _RSA.Signing.PrivateKey(pemRepresentation: block).publicKey
                } catch {
                    throw EmulatorError("\(source): not an RSA private key of 2048 bits or more (RS256 only): \(error)")
                }
            case "CERTIFICATE":
                guard let certificate = try? Certificate(derEncoded: document.derBytes),
                    let rsa = _RSA.Signing.PublicKey(certificate.publicKey)
                else { throw EmulatorError("\(source): not a certificate with an RSA key (RS256 only)") }
                key = rsa
            default:
                throw EmulatorError("\(source): a \(document.discriminator) block; expected PUBLIC KEY, RSA PUBLIC KEY, CERTIFICATE or an RSA private key")
            }
            keys.append(TrustedKey(key: key, id: ServiceAccountToken.keyID(of: key)))
        }
        guard !keys.isEmpty else { throw EmulatorError("\(source): no PEM block") }
        return keys
    }
}

/// A client assertion (a compact JWS) taken apart; nothing in it is trusted until
/// ``State/checkAssertion(_:client:)`` has checked it.
struct ClientAssertion {
    struct Header: Decodable {
        var alg: String?
        var kid: String?
    }
    struct Claims: Decodable {
        var iss: String?
        var sub: String?
        var aud: [String]
        var exp: Double?
        var nbf: Double?

        enum CodingKeys: String, CodingKey { case iss, sub, aud, exp, nbf }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            iss = try container.decodeIfPresent(String.self, forKey: .iss)
            sub = try container.decodeIfPresent(String.self, forKey: .sub)
            if let one = try? container.decodeIfPresent(String.self, forKey: .aud) {
                aud = [one]
            } else {
                aud = try container.decodeIfPresent([String].self, forKey: .aud) ?? []
            }
            exp = try container.decodeIfPresent(Double.self, forKey: .exp)
            nbf = try container.decodeIfPresent(Double.self, forKey: .nbf)
        }
    }

    var header: Header
    var claims: Claims
    /// `header.payload`, the bytes the signature covers.
    var signingInput: Data
    var signature: Data

    /// `nil` unless `jwt` is three base64url segments, the first two JSON objects of the expected shape.
    init?(_ jwt: String) {
        let parts = jwt.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let headerJSON = Self.base64URL(parts[0]), let claimsJSON = Self.base64URL(parts[1]),
            let signature = Self.base64URL(parts[2]),
            let header = try? JSONDecoder().decode(Header.self, from: headerJSON),
            let claims = try? JSONDecoder().decode(Claims.self, from: claimsJSON)
        else { return nil }
        self.header = header
        self.claims = claims
        self.signingInput = Data(jwt.utf8.prefix(parts[0].utf8.count + 1 + parts[1].utf8.count))
        self.signature = signature
    }

    static func base64URL(_ segment: Substring) -> Data? {
        guard segment.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else { return nil }
        var text = segment.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while text.count % 4 != 0 { text += "=" }
        return Data(base64Encoded: text)
    }
}

extension State {
    /// Checks a jwt-bearer client assertion as Entra checks one against an application's federated identity
    /// credentials: the issuer (a trusted one, allowed by a credential of the application), then the signature
    /// (RS256 by one of the issuer's keys; the key its `kid` names when there is one, else each), the time range
    /// (`nbf` when present, `exp`), then subject and audience. `nil` when accepted, else Entra's error answer,
    /// which names the issuer, subject and audience, as Entra's do, never the assertion.
    func checkAssertion(_ assertion: String, client: EmulatorSeed.Client) -> HTTPListener.Response? {
        guard let jwt = ClientAssertion(assertion) else {
            return Self.entraError(400, "invalid_request", code: 50027, "JWT token is invalid or malformed.")
        }
        let issuer = jwt.claims.iss ?? ""
        let federations = client.federated ?? []
        guard let keys = trustedIssuers[issuer], federations.contains(where: { $0.issuer == nil || $0.issuer == issuer }) else {
            return Self.entraError(401, "invalid_client", code: 700211, "No matching federated identity record found for presented assertion issuer '\(issuer)'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion. https://docs.microsoft.com/en-us/azure/active-directory/develop/workload-identity-federation")
        }
        guard jwt.header.alg == "RS256" else {
            return Self.entraError(400, "invalid_request", code: 5002730, "Invalid JWT token. Unsupported key for the signing algorithm.")
        }
        let named = keys.filter { $0.id == jwt.header.kid }
        let candidates = named.isEmpty ? keys : named
        let signature = _RSA.Signing.RSASignature(rawRepresentation: jwt.signature)
        guard candidates.contains(where: { $0.key.isValidSignature(signature, for: jwt.signingInput, padding: .insecurePKCS1v1_5) }) else {
            return Self.entraError(401, "invalid_client", code: 50013, "Assertion failed signature validation. [Reason - The provided signature value did not match the expected signature value.]")
        }
        guard let expiry = jwt.claims.exp else {
            return Self.entraError(400, "invalid_request", code: 50027, "JWT token is invalid or malformed.")
        }
        let now = Date()
        let notBefore = jwt.claims.nbf ?? 0
        guard notBefore <= now.timeIntervalSince1970, now.timeIntervalSince1970 < expiry else {
            return Self.entraError(400, "invalid_client", code: 700024, "Client assertion is not within its valid time range. Current time: \(Self.entraTime(now)), assertion valid from \(Self.entraTime(Date(timeIntervalSince1970: notBefore))), expiry time of assertion \(Self.entraTime(Date(timeIntervalSince1970: expiry))). Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .")
        }
        let subject = jwt.claims.sub ?? ""
        let matches = federations.contains { federation in
            federation.subject == subject && jwt.claims.aud.contains(federation.audience) && (federation.issuer == nil || federation.issuer == issuer)
        }
        guard matches else {
            return Self.entraError(400, "invalid_request", code: 70021, "No matching federated identity record found for presented assertion. Assertion Issuer: '\(issuer)'. Assertion Subject: '\(subject)'. Assertion Audience: '\(jwt.claims.aud.joined(separator: ","))'. https://docs.microsoft.com/en-us/azure/active-directory/develop/workload-identity-federation")
        }
        return nil
    }

    /// A time as Entra's error texts print it: `2024-10-02T22:05:03.6755165Z` (seven fractional digits, UTC).
    static func entraTime(_ date: Date) -> String {
        let seconds = date.timeIntervalSince1970.rounded(.down)
        let whole = ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: seconds)).dropLast()
        let ticks = Int(((date.timeIntervalSince1970 - seconds) * 10_000_000).rounded(.down))
        return "\(whole).\(String(format: "%07d", ticks))Z"
    }
}
