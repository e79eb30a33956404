import Crypto
import Foundation
import _CryptoExtras

/// Service account tokens of the shape kubelet gets from the API server for `tokenRequests`: a JWT signed RS256
/// with a `kid` header (the SHA-256 of the signing key's SubjectPublicKeyInfo, as the API server names its
/// keys) and `aud`, `sub`, `iss`, `iat`, `nbf`, `exp` claims. For tests, the demo and the benchmarks, which stand
/// in for kubelet: signed by the built-in test issuer's key, which the emulator trusts unless its seed names the
/// issuers it trusts (``EmulatorSeed/issuers``), as Entra trusts the keys an issuer publishes.
package enum ServiceAccountToken {
    /// The built-in test issuer: the `iss` of ``make(subject:audience:issuer:expiresIn:validFrom:key:)``'s tokens
    /// and the issuer the emulator trusts by default, with ``testPublicKeyPEM``.
    package static let testIssuer = "https://oidc.example/issuer"

    /// The test issuer's private key, RSA-2048, made with `openssl genpkey` for this repository. TEST ONLY: it is
    /// published here, so anyone can sign with it; nothing outside these tests may trust ``testPublicKeyPEM``.
    private static let testPrivateKeyPEM = """
        -----BEGIN PRIVATE KEY-----
        MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCUyfXuLGm7RDaf
        wLSgUsM68A0/ZoCk8Bgdrg9M+8d4wqaL1UQvrOlJDI01GZMleMoOkIBG/MZ7PNnw
        VbT4r2AHjXMvmgtS+xEpgbsWgaS21ERoqrVBFhuklvc1uuMlo4C+bRaVYvCRlXWa
        v5g2Iw7PXTCGhJs0wt6HtApZWnCxBQLMAmAhDeKmakWSsw2nP44Bu7YjHtr+18VW
        5YCq+c/z9AfRxae3uOeGnAwowEHu8FJLbf8cLaSnvYTev7ghNI2PeapvhLSqKJaO
        iDhgEXIb3JCPH5umh9rskuhVUIuPf8+FKj9iVdycqX9338xEOck4bHfFwMmbeUIC
        xbY7fmE/AgMBAAECggEACeLTauRbkBxLrtish7yICUn671v9rzfeulYe4SQXkGAK
        ld7xPWO1SmvBlCYjX0mDz2ztgQn5nCWia3QeZqmsbUQKQ77uArD45nOevTOXAKjg
        9L1m9rCj3I9FVLYasp0HCGASMJHW3y15l3Mkh3BT4xZTi5STBXHvPEALsf0u4KwV
        IHSX50xlRB/qsKA74g0nWTeWR5ft8DwbjSjqciTxMwcCjQV36/jCffD5zmZXX9uV
        lDFuZdjfn9iRgULpNCK4eO/6oNh6+F5bRFDpwCVcK/NQiJ9QNx3cjogXBk6cL+OE
        9sduWHJxNOio7YZD1zam0+VlUO+/aWPCiyQVRgANMQKBgQDEBsTFMAdjh4b1LFxB
        0b7IQ+PZMx96QsjMUtliPqH+oXz08fkeuYnNITnhtr8SzcK8KofGt+CxhmMNcLef
        EqG4mzOJn7L1GHDdos6FEVpCyGTdV6IXOO57dXaZHC2CrlIDukZOnmpFUm17SGFB
        KA8Hy95zS7m1BIwLhSsP32j/TwKBgQDCT3FCpUlduhUIHYDFhtcU6NoJ153ulaqD
        erdlhqDukmL+D5CDnf5HxRhXOJZ27fmAn+Jzz9cqhteyjYxCYiXMxevLOWY7kNEN
        glWMU48o5lNAWGRk68Hl9AA0ZEfWYRfgSulIdRh/UADxNwmWz3np3lvMbjUIlp9h
        D2y17yCDEQKBgQCFoSeaVLd0vfreP7NUmys3UjCM7DDVI5nGz+Oo+ZFtB6ErSZjN
        vSWXVMMkf3OZ2fKaW1Pbv5XI7xevHdvO8OCV/BcSBm/0bQjjzgyC4eVqCTnZOdgh
        hInuV5DVp0PPBg6aw+0RwyQmxZ4koJ7L0AcPBYdLiZ+7KrJdWBaW53GoOQKBgA5L
        M8S4TfZUGvn22aMuMSI7otZ4gwiq/9keLOGODsaeBCQ2VuYnuC3lZM39vqvPA7yf
        hlQIpQZe1v0uhnPXrnoq0RapCUk2dPpubQaemvhiQRuJpRD7es8ErQMtoU824z+/
        ovuOiZfL9dXIu67ZYll+3vfh34rbMaw9Kz0S8yxRAoGAaCjUbKusgLeznt0E70Tm
        Ya1wywS3PxkouEhKWz8Qh5WuszXVlGnZiifitVHNfEMYWHe+EAZrGz+hd92AuGs/
        NEwW6tSfqpX+LHxBIyJFO4gkcVJErnkEZcL6+3TYPmkBPAbcbcGO8SJRObGhEpwu
        prmU5HCwlEiDysrtr9/akRY=
        -----END PRIVATE KEY-----
        """

    /// The test issuer's signing key (see ``testPrivateKeyPEM``; test only).
    package static let testSigningKey: _RSA.Signing.PrivateKey = {
        do {
            return try _RSA.Signing.PrivateKey(pemRepresentation: testPrivateKeyPEM)
        } catch {
            fatalError("the embedded test issuer key does not parse: \(error)")
        }
    }()

    /// The test issuer's public key as `PUBLIC KEY` PEM (what `openssl rsa -pubout` prints): what the emulator
    /// trusts for ``testIssuer`` by default, and what a seed lists to trust it alongside other issuers.
    package static var testPublicKeyPEM: String { testSigningKey.publicKey.pemRepresentation + "\n" }

    /// The `kid` the API server gives a token signed by `key`: base64url (unpadded) of the SHA-256 of its DER
    /// SubjectPublicKeyInfo.
    package static func keyID(of key: _RSA.Signing.PublicKey) -> String {
        base64URL(Data(SHA256.hash(data: key.derRepresentation)))
    }

    /// A JWT for `subject` and `audience` from `issuer`, signed RS256 by `key` (the test issuer's unless a test
    /// wants another), valid from `validFrom` seconds from now (positive: not yet valid) and expiring
    /// `expiresIn` seconds from now (negative: already expired).
    package static func make(
        subject: String,
        audience: String = "api://AzureADTokenExchange",
        issuer: String = testIssuer,
        expiresIn: TimeInterval = 3600,
        validFrom: TimeInterval = 0,
        key: _RSA.Signing.PrivateKey = testSigningKey
    ) -> String {
        let now = Date().timeIntervalSince1970
        let header: [String: Any] = ["alg": "RS256", "kid": keyID(of: key.publicKey)]
        let claims: [String: Any] = [
            "aud": [audience], "sub": subject, "iss": issuer, "iat": Int(now), "nbf": Int(now + validFrom), "exp": Int(now + expiresIn),
        ]
        let signingInput = segment(header) + "." + segment(claims)
        let signature: _RSA.Signing.RSASignature
        do {
            signature = try key.signature(for: Data(signingInput.utf8), padding: .insecurePKCS1v1_5)
        } catch {
            fatalError("RS256 signing failed: \(error)")
        }
        return signingInput + "." + base64URL(signature.rawRepresentation)
    }

    /// Kubelet's `csi.storage.k8s.io/serviceAccount.tokens` value carrying `token` for `audience`.
    package static func volumeContextValue(_ token: String, audience: String = "api://AzureADTokenExchange") -> String {
        #"{"\#(audience)":{"token":"\#(token)","expirationTimestamp":"2030-01-01T00:00:00Z"}}"#
    }

    private static func segment(_ object: [String: Any]) -> String {
        base64URL((try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data())
    }

    private static func base64URL(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}
