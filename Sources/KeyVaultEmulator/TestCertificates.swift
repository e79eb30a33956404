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
