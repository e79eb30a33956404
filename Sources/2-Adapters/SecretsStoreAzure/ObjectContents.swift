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
        try secretFiles(
            value: value,
            contentType: contentType,
            isCertificateBacked: isCertificateBacked,
            format: format,
            encoding: encoding
        ).last?.contents ?? []
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

    /// Every file a secret bundle produces, in the order they are returned: with `separateFiles` and a
    /// certificate-backed secret, `.crt` (its `CERTIFICATE` blocks) and `.key` (every other block) before the
    /// file itself (suffix `""`), as upstream's `--write-cert-and-key-in-separate-files` does; `objectEncoding`
    /// applies to each. With `objectFormat: pfx` the content is base64 text, so `.crt` and `.key` are empty (as
    /// upstream). `constructChain` is `--construct-pem-chain`.
    package static func secretFiles(
        value: String,
        contentType: String?,
        isCertificateBacked: Bool,
        format: KeyVaultObject.Format,
        encoding: KeyVaultObject.Encoding,
        constructChain: Bool = true,
        separateFiles: Bool = false
    ) throws(Failure) -> [(suffix: String, contents: [UInt8])] {
        var text = value
        if isCertificateBacked {
            switch contentType {
            case "application/x-pkcs12":
                if format == .pem { text = try pkcs12ToPEM(base64: value, constructChain: constructChain) }
            case "application/x-pem-file":
                break
            default:
                throw Failure("failed to get certificate. unknown content type '\(contentType ?? "")'")
            }
        }
        var files: [(suffix: String, contents: [UInt8])] = []
        if isCertificateBacked && separateFiles {
            let (certificates, keys) = splitCertificatesAndKeys(text)
            files.append((".crt", try decode(certificates, encoding: encoding)))
            files.append((".key", try decode(keys, encoding: encoding)))
        }
        files.append(("", try decode(text, encoding: encoding)))
        return files
    }

    /// Upstream's `splitCertAndKey`: the `CERTIFICATE` blocks of a PEM text, and every other block, each
    /// re-encoded in Go's layout (PEM headers are not kept). Text that is not PEM (PFX base64) gives two empty
    /// strings.
    package static func splitCertificatesAndKeys(_ text: String) -> (certificates: String, keys: String) {
        var certificates = ""
        var keys = ""
        for block in PEM.decode(text) {
            if block.type == "CERTIFICATE" {
                certificates += PEM.encode(type: block.type, der: block.der)
            } else {
                keys += PEM.encode(type: block.type, der: block.der)
            }
        }
        return (certificates, keys)
    }

    // MARK: PKCS#12

    /// A password-less PKCS#12 (base64, as Key Vault returns it) as PEM: the private key as PKCS#8
    /// `PRIVATE KEY`, then the certificates ordered leaf → intermediates → root when the key identifiers link
    /// them all (and `constructChain`, upstream's `--construct-pem-chain`), else in the order the PKCS#12
    /// stores them (see ``readPKCS12(der:)``).
    package static func pkcs12ToPEM(base64: String, constructChain: Bool = true) throws(Failure) -> String {
        guard let der = Data(base64Encoded: base64) else { throw Failure("illegal base64 data in PKCS#12 secret value") }
        let contents = try readPKCS12(der: Array(der))
        var pem = PEM.encode(type: "PRIVATE KEY", der: contents.privateKeyPKCS8)
        let certificates = constructChain ? try orderChain(contents.certificates) : contents.certificates
        for certificate in certificates {
            pem += PEM.encode(type: "CERTIFICATE", der: certificate)
        }
        return pem
    }

    /// The private key (PKCS#8 DER) and the certificates (DER) of a password-less PKCS#12.
    ///
    /// Certificates come in the order the file stores them when it stores them unencrypted; when they are in
    /// an encrypted container (which only NIOSSL opens), in NIOSSL's order: the key's certificate first, then
    /// the others as stored. A file with more than one private key is refused (upstream writes every key, the
    /// driver reads one per file and never silently drops the others), and so is one whose unencrypted layout
    /// shows no private key, no certificate, or no certificate of its key.
    package static func readPKCS12(der: [UInt8]) throws(Failure) -> (privateKeyPKCS8: [UInt8], certificates: [[UInt8]]) {
        let layout = PKCS12Layout.scan(der)
        if let layout {
            let keys = layout.plainKeys.count + layout.shroudedKeys
            if keys > 1 { throw multipleKeys("\(keys) private keys") }
            if layout.encryptedContainers == 0 {
                if keys == 0 { throw Failure("the PKCS#12 secret holds no private key") }
                if layout.certificates.isEmpty { throw Failure("the PKCS#12 secret holds no certificate") }
                // NIOSSL stops the process when no certificate matches the key; say so instead.
                if let key = layout.plainKeys.first, !keyMatchesACertificate(key, layout.certificates) {
                    throw Failure("the PKCS#12 secret holds no certificate of its private key")
                }
            }
        }
        let bundle: NIOSSLPKCS12Bundle
        do {
            bundle = try NIOSSLPKCS12Bundle(buffer: der, passphrase: [UInt8]())
        } catch {
            // The one place an error is told apart by its text, at the edge with NIOSSL: BoringSSL's reason reaches
            // us only inside `BoringSSLInternalError`'s description (its code is private). The reason's name is
            // BoringSSL's stable identifier; any other failure keeps NIOSSL's text in the message below.
            if "\(error)".contains("MULTIPLE_PRIVATE_KEYS") { throw multipleKeys("more than one private key") }
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
        if let layout, layout.encryptedContainers == 0, Set(layout.certificates) == Set(certificates) {
            certificates = layout.certificates
        }
        let key: [UInt8]
        do {
            key = try pkcs8(fromTraditionalDER: try bundle.privateKey.derBytes)
        } catch let failure as Failure {
            throw failure
        } catch {
            throw Failure("failed to parse key for type pkcs1, pkcs8 or ec")
        }
        return (key, certificates)
    }

    /// What a `kubernetes.io/tls` Secret takes from a PKCS#12 file written as `objectFormat: pfx`: its
    /// certificates as stored and its key; `nil` when the value does not read as one (the file is still
    /// written; only such a sync fails, naming the file).
    package static func certificateParts(pkcs12Base64 value: String) -> CertificateBundleParts? {
        guard let der = Data(base64Encoded: value), let contents = try? readPKCS12(der: Array(der)) else { return nil }
        return CertificateBundleParts(certificates: contents.certificates, privateKeyPKCS8: contents.privateKeyPKCS8)
    }

    private static func multipleKeys(_ count: String) -> Failure {
        Failure(
            "the PKCS#12 secret holds \(count); the driver writes one private key per certificate object (store each key with its own certificate in Key Vault)"
        )
    }

    /// Whether one of `certificates` carries the public key of the PKCS#8 `key` (RSA, P-256/384/521, Ed25519).
    private static func keyMatchesACertificate(_ key: [UInt8], _ certificates: [[UInt8]]) -> Bool {
        guard let privateKey = try? Certificate.PrivateKey(pemEncoded: PEM.encode(type: "PRIVATE KEY", der: key)) else {
            return true  // a key type X509 cannot read: leave the verdict to NIOSSL
        }
        return certificates.contains { (try? Certificate(derEncoded: $0))?.publicKey == privateKey.publicKey }
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

/// What the unencrypted parts of a PKCS#12 file show (RFC 7292), read without a password and without
/// decrypting anything: the certificates and plain keys in the order stored, the shrouded (encrypted) keys,
/// and how many containers are encrypted (their bags are not seen). Lets ``ObjectContents/readPKCS12(der:)``
/// keep the stored certificate order and refuse files NIOSSL would misread or stop the process on.
struct PKCS12Layout: Equatable {
    /// Certificates (`x509Certificate` cert bags), DER, in the order stored.
    var certificates: [[UInt8]] = []
    /// Unencrypted key bags, PKCS#8 DER.
    var plainKeys: [[UInt8]] = []
    /// Shrouded key bags seen.
    var shroudedKeys = 0
    /// Encrypted (or enveloped) containers, whose bags are not seen.
    var encryptedContainers = 0

    static let data: ASN1ObjectIdentifier = [1, 2, 840, 113_549, 1, 7, 1]
    static let keyBag: ASN1ObjectIdentifier = [1, 2, 840, 113_549, 1, 12, 10, 1, 1]
    static let shroudedKeyBag: ASN1ObjectIdentifier = [1, 2, 840, 113_549, 1, 12, 10, 1, 2]
    static let certBag: ASN1ObjectIdentifier = [1, 2, 840, 113_549, 1, 12, 10, 1, 3]
    static let safeContentsBag: ASN1ObjectIdentifier = [1, 2, 840, 113_549, 1, 12, 10, 1, 6]
    static let x509Certificate: ASN1ObjectIdentifier = [1, 2, 840, 113_549, 1, 9, 22, 1]

    /// The layout of `der` (BER or DER), or `nil` when it is not shaped as a PFX.
    static func scan(_ der: [UInt8]) -> PKCS12Layout? {
        guard let pfx = try? BER.parse(der), let items = children(pfx), items.count >= 2,
            let authenticatedSafe = dataContent(items[1]),
            let safe = try? BER.parse(authenticatedSafe), let containers = children(safe)
        else { return nil }
        var layout = PKCS12Layout()
        for container in containers {
            guard let fields = children(container), let type = fields.first.flatMap(oid) else { return nil }
            guard type == data else {
                layout.encryptedContainers += 1
                continue
            }
            guard let contents = dataContent(container), let bags = try? BER.parse(contents),
                layout.add(bags: bags, depth: 0)
            else { return nil }
        }
        return layout
    }

    /// Adds the bags of a `SafeContents`; `false` when it is malformed.
    private mutating func add(bags: ASN1Node, depth: Int) -> Bool {
        guard depth < 4, let list = Self.children(bags) else { return false }
        for bag in list {
            guard let fields = Self.children(bag), fields.count >= 2, let type = Self.oid(fields[0]),
                fields[1].identifier == ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific),
                let wrapped = Self.children(fields[1]), let value = wrapped.first
            else { return false }
            switch type {
            case Self.keyBag:
                plainKeys.append(Array(value.encodedBytes))
            case Self.shroudedKeyBag:
                shroudedKeys += 1
            case Self.certBag:
                guard let certificate = Self.children(value), certificate.count >= 2,
                    let certificateType = Self.oid(certificate[0]),
                    let explicit = Self.children(certificate[1]), let octets = explicit.first.flatMap(Self.octets)
                else { return false }
                if certificateType == Self.x509Certificate { certificates.append(octets) }
            case Self.safeContentsBag:
                guard add(bags: value, depth: depth + 1) else { return false }
            default:
                continue  // CRL and secret bags carry nothing written
            }
        }
        return true
    }

    /// The OCTET STRING inside a `data` ContentInfo (`SEQUENCE { OID data, [0] { OCTET STRING } }`).
    private static func dataContent(_ contentInfo: ASN1Node) -> [UInt8]? {
        guard let fields = children(contentInfo), fields.count >= 2, oid(fields[0]) == data,
            let explicit = children(fields[1]), let content = explicit.first
        else { return nil }
        return octets(content)
    }

    private static func children(_ node: ASN1Node) -> [ASN1Node]? {
        guard case .constructed(let collection) = node.content else { return nil }
        return Array(collection)
    }

    private static func oid(_ node: ASN1Node) -> ASN1ObjectIdentifier? {
        try? ASN1ObjectIdentifier(berEncoded: node)
    }

    /// An OCTET STRING's bytes, BER's constructed (chunked) form included.
    private static func octets(_ node: ASN1Node) -> [UInt8]? {
        guard node.identifier == .octetString else { return nil }
        switch node.content {
        case .primitive(let bytes):
            return Array(bytes)
        case .constructed(let chunks):
            var bytes: [UInt8] = []
            for chunk in chunks {
                guard let part = octets(chunk) else { return nil }
                bytes += part
            }
            return bytes
        }
    }
}
