import SecretsStoreCore
import Crypto
import NIOSSL
import SwiftASN1
import X509
import _CryptoExtras

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Turns Key Vault bundles into file bytes, exactly as the upstream Azure provider does (reference §4).
package enum ObjectContents {
    /// A failure to turn a bundle into bytes; the message follows the upstream text where one exists.
    package struct Failure: Error, Equatable, CustomStringConvertible {
        /// What could not be converted, in the upstream text where one exists; never the object's bytes.
        package var message: String
        /// The message.
        package var description: String { message }
        init(_ message: String) { self.message = message }
    }

    // MARK: Secrets

    /// The bytes of a secret bundle: certificate-backed secrets (those with a `kid`) become PEM (keys first,
    /// then the chain leaf → root) or stay PFX base64 text; then `objectEncoding` applies.
    package static func secret(
        value: String,
        contentType: String?,
        isCertificateBacked: Bool,
        format: KeyVaultObject.Format,
        encoding: KeyVaultObject.Encoding
    ) throws(Failure) -> [UInt8] {
        var text = value
        if isCertificateBacked {
            switch contentType {
            case "application/x-pkcs12":
                if format == .pem { text = try pkcs12ToPEM(base64: value) }
            case "application/x-pem-file":
                break
            default:
                throw Failure("failed to get certificate. unknown content type '\(contentType ?? "")'")
            }
        }
        return try decode(text, encoding: encoding)
    }

    /// `objectEncoding`: utf-8 keeps the bytes; base64 and hex decode strictly, as Go's decoders do.
    package static func decode(_ text: String, encoding: KeyVaultObject.Encoding) throws(Failure) -> [UInt8] {
        switch encoding {
        case .utf8:
            return Array(text.utf8)
        case .base64:
            guard text.utf8.count % 4 == 0, !text.contains(where: { $0.isWhitespace }),
                let data = Data(base64Encoded: text)
            else { throw Failure("illegal base64 data in secret value") }
            return Array(data)
        case .hex:
            let digits = Array(text.utf8)
            guard digits.count % 2 == 0 else { throw Failure("encoding/hex: odd length hex string") }
            var bytes: [UInt8] = []
            bytes.reserveCapacity(digits.count / 2)
            var index = 0
            while index < digits.count {
                guard let high = hexValue(digits[index]), let low = hexValue(digits[index + 1]) else {
                    throw Failure("encoding/hex: invalid byte in hex string")
                }
                bytes.append(high << 4 | low)
                index += 2
            }
            return bytes
        }
    }

    private static func hexValue(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return digit - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return digit - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    // MARK: PKCS#12

    /// A password-less PKCS#12 (base64, as Key Vault returns it) as PEM: the private key as PKCS#8
    /// `PRIVATE KEY`, then the certificates ordered leaf → intermediates → root when the key identifiers link
    /// them all, else in the bundle's order.
    package static func pkcs12ToPEM(base64: String) throws(Failure) -> String {
        guard let der = Data(base64Encoded: base64) else { throw Failure("illegal base64 data in PKCS#12 secret value") }
        let bundle: NIOSSLPKCS12Bundle
        do {
            bundle = try NIOSSLPKCS12Bundle(buffer: Array(der), passphrase: [UInt8]())
        } catch {
            throw Failure("failed to decode PKCS#12 secret: \(error)")
        }
        var certificates: [[UInt8]] = []
        for certificate in bundle.certificateChain {
            do {
                certificates.append(try certificate.toDERBytes())
            } catch {
                throw Failure("failed to read a certificate of the PKCS#12 secret: \(error)")
            }
        }
        let key: [UInt8]
        do {
            key = try pkcs8(fromTraditionalDER: try bundle.privateKey.derBytes)
        } catch let failure as Failure {
            throw failure
        } catch {
            throw Failure("failed to parse key for type pkcs1, pkcs8 or ec")
        }
        var pem = PEM.encode(type: "PRIVATE KEY", der: key)
        for certificate in try orderChain(certificates) {
            pem += PEM.encode(type: "CERTIFICATE", der: certificate)
        }
        return pem
    }

    /// Re-encodes a PKCS#1 RSA or SEC1 EC private key (or an already PKCS#8 one) as PKCS#8 DER.
    package static func pkcs8(fromTraditionalDER der: [UInt8]) throws(Failure) -> [UInt8] {
        if let rsa = try? _RSA.Signing.PrivateKey(unsafeDERRepresentation: der) {
            return Array(rsa.pkcs8DERRepresentation)
        }
        if let key = try? P256.Signing.PrivateKey(derRepresentation: der) { return Array(key.derRepresentation) }
        if let key = try? P384.Signing.PrivateKey(derRepresentation: der) { return Array(key.derRepresentation) }
        if let key = try? P521.Signing.PrivateKey(derRepresentation: der) { return Array(key.derRepresentation) }
        throw Failure("failed to parse key for type pkcs1, pkcs8 or ec")
    }

    /// Orders certificates leaf → root by authority/subject key identifiers (upstream `fetchCertChains`).
    /// Falls back to the given order when the identifiers do not link every certificate.
    package static func orderChain(_ certificates: [[UInt8]]) throws(Failure) -> [[UInt8]] {
        guard certificates.count > 1 else { return certificates }
        var authorityKeys: [ArraySlice<UInt8>?] = []
        var subjectKeys: [ArraySlice<UInt8>?] = []
        for der in certificates {
            do {
                let certificate = try Certificate(derEncoded: der)
                authorityKeys.append(try certificate.extensions.authorityKeyIdentifier?.keyIdentifier)
                subjectKeys.append(try certificate.extensions.subjectKeyIdentifier?.keyIdentifier)
            } catch {
                throw Failure("failed to parse certificate: \(error)")
            }
        }
        var parent: [Int?] = Array(repeating: nil, count: certificates.count)
        var isParent = Array(repeating: false, count: certificates.count)
        for child in certificates.indices {
            guard let authority = authorityKeys[child] else { continue }
            for candidate in certificates.indices where candidate != child {
                if let subject = subjectKeys[candidate], subject == authority {
                    parent[child] = candidate
                    isParent[candidate] = true
                    break
                }
            }
        }
        guard let leaf = certificates.indices.first(where: { !isParent[$0] }) else { throw Failure("no leaf found") }
        var ordered: [Int] = [leaf]
        var current = leaf
        while let next = parent[current] {
            if ordered.count > certificates.count { throw Failure("constructing chain resulted in cycle") }
            if ordered.contains(next) { break }
            ordered.append(next)
            current = next
        }
        guard ordered.count == certificates.count else { return certificates }
        return ordered.map { certificates[$0] }
    }

    // MARK: Keys and certificates

    /// A JSON Web Key's public part as PEM `PUBLIC KEY` (PKIX SubjectPublicKeyInfo).
    package static func publicKeyPEM(
        keyType: String,
        n: String?,
        e: String?,
        curve: String?,
        x: String?,
        y: String?
    ) throws(Failure) -> String {
        switch keyType {
        case "RSA", "RSA-HSM":
            guard let n = base64URL(n), let e = base64URL(e) else { throw Failure("failed to get key. RSA key is missing n or e") }
            do {
                return PEM.encode(type: "PUBLIC KEY", der: Array(try _RSA.Signing.PublicKey(n: n, e: e).derRepresentation))
            } catch {
                throw Failure("failed to get key. invalid RSA key: \(error)")
            }
        case "EC", "EC-HSM":
            guard let x = base64URL(x), let y = base64URL(y) else { throw Failure("failed to get key. EC key is missing x or y") }
            let point = [0x04] + x + y
            do {
                switch curve {
                case "P-256": return PEM.encode(type: "PUBLIC KEY", der: Array(try P256.Signing.PublicKey(x963Representation: point).derRepresentation))
                case "P-384": return PEM.encode(type: "PUBLIC KEY", der: Array(try P384.Signing.PublicKey(x963Representation: point).derRepresentation))
                case "P-521": return PEM.encode(type: "PUBLIC KEY", der: Array(try P521.Signing.PublicKey(x963Representation: point).derRepresentation))
                default: throw Failure("curve \(curve ?? "") is not supported")
                }
            } catch let failure as Failure {
                throw failure
            } catch {
                throw Failure("failed to get key. invalid EC key: \(error)")
            }
        default:
            throw Failure("failed to get key. key type '\(keyType)' currently not supported")
        }
    }

    /// A certificate bundle's `cer` (base64 DER of the leaf) as one PEM `CERTIFICATE` block.
    package static func certificatePEM(cer: String) throws(Failure) -> String {
        guard let der = Data(base64Encoded: cer) else { throw Failure("certificate value is not valid base64") }
        return PEM.encode(type: "CERTIFICATE", der: der)
    }

    /// Decodes base64url without padding (JWK fields).
    package static func base64URL(_ text: String?) -> [UInt8]? {
        guard let text, !text.isEmpty else { return nil }
        var base64 = text.replacing("-", with: "+").replacing("_", with: "/")
        while base64.utf8.count % 4 != 0 { base64 += "=" }
        return Data(base64Encoded: base64).map(Array.init)
    }
}
