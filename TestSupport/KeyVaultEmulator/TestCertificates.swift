import Crypto
import Foundation
import NIOSSL
import SwiftASN1
import X509
import _CryptoExtras

/// Certificate chains and PKCS#12 files made on the spot, for seeds, tests and the demo: a root, an
/// intermediate and a leaf linked by key identifiers, bundled with the leaf's key in any order.
package struct TestCertificateChain: Sendable {
    /// The self-signed root, DER.
    package var root: [UInt8]
    /// The intermediate the root signed, DER.
    package var intermediate: [UInt8]
    /// The leaf the intermediate signed, DER.
    package var leaf: [UInt8]
    /// PKCS#8 DER of the leaf's private key.
    package var leafKeyPKCS8: [UInt8]
    private var leafKeyPEM: String

    /// Makes a fresh chain with P-256 keys; `leafSubjectKeyIdentifier: false` leaves the leaf without SKI.
    package static func make(commonName: String = "test.domain.com", leafSubjectKeyIdentifier: Bool = true) throws -> TestCertificateChain {
        let now = Date()
        let rootKey = P256.Signing.PrivateKey()
        let intermediateKey = P256.Signing.PrivateKey()
        let leafKey = P256.Signing.PrivateKey()
        let rootName = try DistinguishedName { CommonName("Test Root CA") }
        let intermediateName = try DistinguishedName { CommonName("Test Intermediate CA") }
        func ski(_ key: P256.Signing.PublicKey) -> SubjectKeyIdentifier { SubjectKeyIdentifier(hash: Certificate.PublicKey(key)) }
        func serialize(_ certificate: Certificate) throws -> [UInt8] {
            var serializer = DER.Serializer()
            try serializer.serialize(certificate)
            return serializer.serializedBytes
        }
        let root = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: .init(rootKey.publicKey),
            notValidBefore: now - 3600, notValidAfter: now + 86_400 * 3650, issuer: rootName, subject: rootName,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
                ski(rootKey.publicKey)
            },
            issuerPrivateKey: .init(rootKey)
        )
        let intermediate = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: .init(intermediateKey.publicKey),
            notValidBefore: now - 3600, notValidAfter: now + 86_400 * 3650, issuer: rootName, subject: intermediateName,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                ski(intermediateKey.publicKey)
                AuthorityKeyIdentifier(keyIdentifier: ski(rootKey.publicKey).keyIdentifier)
            },
            issuerPrivateKey: .init(rootKey)
        )
        let leaf = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: .init(leafKey.publicKey),
            notValidBefore: now - 3600, notValidAfter: now + 86_400 * 365, issuer: intermediateName,
            subject: try DistinguishedName { CommonName(commonName) },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                SubjectAlternativeNames([.dnsName(commonName)])
                AuthorityKeyIdentifier(keyIdentifier: ski(intermediateKey.publicKey).keyIdentifier)
                if leafSubjectKeyIdentifier { ski(leafKey.publicKey) }
            },
            issuerPrivateKey: .init(intermediateKey)
        )
        return TestCertificateChain(
            root: try serialize(root),
            intermediate: try serialize(intermediate),
            leaf: try serialize(leaf),
            leafKeyPKCS8: Array(leafKey.derRepresentation),
            leafKeyPEM: leafKey.pemRepresentation
        )
    }

    /// A password-less PKCS#12 (base64) of the leaf key with `certificates` in this order (the first must be
    /// the leaf, which is what carries the key).
    package func pkcs12Base64(certificates: [[UInt8]]) throws -> String {
        let chain = try certificates.map { try NIOSSLCertificate(bytes: $0, format: .der) }
        let bundle = NIOSSLPKCS12Bundle(
            certificateChain: chain,
            privateKey: try NIOSSLPrivateKey(bytes: Array(leafKeyPEM.utf8), format: .pem)
        )
        return Data(try bundle.serialize(passphrase: [UInt8]())).base64EncodedString()
    }
}

extension TestCertificateChain {
    /// A password-less PKCS#12 (base64) that stores its bags unencrypted, so the order of `certificates` is
    /// visible to any reader: the leaf's key, then every key of `extraKeys` (PKCS#8 DER), in one container,
    /// the certificates in the order given in another. Key Vault's own files encrypt the certificates; this
    /// layout is what `--construct-pem-chain=false` and the several-keys refusal are tested with.
    package func unencryptedPKCS12Base64(certificates: [[UInt8]], extraKeys: [[UInt8]] = []) -> String {
        Data(UnencryptedPKCS12.make(keys: [leafKeyPKCS8] + extraKeys, certificates: certificates)).base64EncodedString()
    }
}

/// PKCS#12 files (RFC 7292) with unencrypted key and certificate bags and a SHA-1 MAC over the empty password,
/// as `openssl pkcs12 -export -keypbe NONE -certpbe NONE -passout pass:` writes them.
package enum UnencryptedPKCS12 {
    /// The DER of a PFX holding `keys` (PKCS#8 DER) and `certificates` (DER), each in the order given.
    package static func make(keys: [[UInt8]], certificates: [[UInt8]]) -> [UInt8] {
        let keyBags = keys.map { bag(oid: keyBag, value: $0) }
        let certificateBags = certificates.map { der in
            bag(oid: certBag, value: tlv(0x30, oid(x509Certificate) + tlv(0xA0, tlv(0x04, der))))
        }
        var containers: [UInt8] = []
        if !keyBags.isEmpty { containers += dataContentInfo(tlv(0x30, keyBags.flatMap { $0 })) }
        if !certificateBags.isEmpty { containers += dataContentInfo(tlv(0x30, certificateBags.flatMap { $0 })) }
        let authenticatedSafe = tlv(0x30, containers)
        let salt = (0..<8).map { _ in UInt8.random(in: 0...255) }
        let iterations = 2048
        let macKey = derive(password: [0, 0], salt: salt, id: 3, iterations: iterations, count: 20)
        let mac = Array(HMAC<Insecure.SHA1>.authenticationCode(for: authenticatedSafe, using: SymmetricKey(data: macKey)))
        let sha1 = tlv(0x30, oid([0x2B, 0x0E, 0x03, 0x02, 0x1A]) + [0x05, 0x00])
        let macData = tlv(0x30, tlv(0x30, sha1 + tlv(0x04, mac)) + tlv(0x04, salt) + integer(iterations))
        return tlv(0x30, integer(3) + dataContentInfo(authenticatedSafe) + macData)
    }

    private static let data: [UInt8] = [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x01]
    private static let keyBag: [UInt8] = [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x0C, 0x0A, 0x01, 0x01]
    private static let certBag: [UInt8] = [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x0C, 0x0A, 0x01, 0x03]
    private static let x509Certificate: [UInt8] = [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x16, 0x01]

    private static func bag(oid bagOID: [UInt8], value: [UInt8]) -> [UInt8] {
        tlv(0x30, oid(bagOID) + tlv(0xA0, value))
    }

    private static func dataContentInfo(_ content: [UInt8]) -> [UInt8] {
        tlv(0x30, oid(data) + tlv(0xA0, tlv(0x04, content)))
    }

    private static func oid(_ content: [UInt8]) -> [UInt8] { tlv(0x06, content) }

    private static func integer(_ value: Int) -> [UInt8] {
        var bytes: [UInt8] = []
        var rest = value
        repeat {
            bytes.insert(UInt8(rest & 0xFF), at: 0)
            rest >>= 8
        } while rest > 0
        if bytes[0] & 0x80 != 0 { bytes.insert(0, at: 0) }
        return tlv(0x02, bytes)
    }

    private static func tlv(_ tag: UInt8, _ content: [UInt8]) -> [UInt8] {
        guard content.count >= 0x80 else { return [tag, UInt8(content.count)] + content }
        var length: [UInt8] = []
        var count = content.count
        while count > 0 {
            length.insert(UInt8(count & 0xFF), at: 0)
            count >>= 8
        }
        return [tag, 0x80 | UInt8(length.count)] + length + content
    }

    /// The PKCS#12 key derivation (RFC 7292 appendix B.2) with SHA-1: `id` 3 makes MAC keys.
    static func derive(password: [UInt8], salt: [UInt8], id: UInt8, iterations: Int, count: Int) -> [UInt8] {
        let v = 64
        func fill(_ bytes: [UInt8]) -> [UInt8] {
            guard !bytes.isEmpty else { return [] }
            let length = v * ((bytes.count + v - 1) / v)
            return (0..<length).map { bytes[$0 % bytes.count] }
        }
        let diversifier = [UInt8](repeating: id, count: v)
        var input = fill(salt) + fill(password)
        var output: [UInt8] = []
        while output.count < count {
            var block = Array(Insecure.SHA1.hash(data: diversifier + input))
            for _ in 1..<iterations { block = Array(Insecure.SHA1.hash(data: block)) }
            output += block
            // I_j = (I_j + B + 1) mod 2^(v·8) for each v-byte chunk of I, B being the block repeated to v bytes.
            let b = (0..<v).map { block[$0 % block.count] }
            var chunk = 0
            while chunk < input.count {
                var carry = 1
                for index in stride(from: v - 1, through: 0, by: -1) {
                    let sum = Int(input[chunk + index]) + Int(b[index]) + carry
                    input[chunk + index] = UInt8(sum & 0xFF)
                    carry = sum >> 8
                }
                chunk += v
            }
        }
        return Array(output.prefix(count))
    }
}

/// A self-signed RSA-2048 certificate and its key, for tests of what RSA keys become (PKCS#1 in `tls.key`).
package struct TestRSACertificate: Sendable {
    /// The certificate, DER.
    package var certificate: [UInt8]
    /// Its private key as PKCS#8 DER (`PRIVATE KEY`).
    package var keyPKCS8: [UInt8]
    /// Its private key as PKCS#1 DER (`RSA PRIVATE KEY`).
    package var keyPKCS1: [UInt8]

    /// Makes a fresh key and a certificate for `commonName` valid for a day.
    package static func make(commonName: String = "rsa.example") throws -> TestRSACertificate {
        let key = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        let name = try DistinguishedName { CommonName(commonName) }
        let now = Date()
        let certificate = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: .init(key.publicKey),
            notValidBefore: now - 3600, notValidAfter: now + 86_400, issuer: name, subject: name,
            signatureAlgorithm: .sha256WithRSAEncryption,
            extensions: try Certificate.Extensions { SubjectKeyIdentifier(hash: Certificate.PublicKey(key.publicKey)) },
            issuerPrivateKey: .init(key)
        )
        var serializer = DER.Serializer()
        try serializer.serialize(certificate)
        return TestRSACertificate(
            certificate: serializer.serializedBytes,
            keyPKCS8: Array(key.pkcs8DERRepresentation),
            keyPKCS1: Array(key.derRepresentation)
        )
    }
}
