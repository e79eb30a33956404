import Crypto
import Foundation
import NIOSSL
import SwiftASN1
import X509

/// A certificate authority the emulator makes at start, a server certificate it signs for `localhost` and
/// `127.0.0.1`, and a client certificate it signs for tests of client authentication. Clients trust the CA's
/// PEM (written where the operator asks).
package struct EmulatorCertificates: Sendable {
    /// The CA certificate, PEM: what clients add to their trust roots.
    package var caCertificatePEM: String
    /// The server's certificate (P-256, `serverAuth`), PEM.
    package var serverCertificatePEM: String
    /// The server certificate's private key, PEM.
    package var serverKeyPEM: String
    /// A client certificate signed by the CA (P-256, `clientAuth`, CN `emulator-client`), PEM.
    package var clientCertificatePEM: String
    /// The client certificate's private key, PEM.
    package var clientKeyPEM: String

    /// Makes a fresh CA valid for a year and the server and client certificates it signs; the server
    /// certificate names `hostNames` and `ipAddresses`.
    package static func generate(hostNames: [String] = ["localhost"], ipAddresses: [[UInt8]] = [[127, 0, 0, 1]]) throws -> EmulatorCertificates {
        let now = Date()
        let caKey = P256.Signing.PrivateKey()
        let caName = try DistinguishedName {
            OrganizationName("secrets-store-csi-driver-swift")
            CommonName("Key Vault emulator CA")
        }
        let caCertificate = try Certificate(
            version: .v3,
            serialNumber: .init(),
            publicKey: .init(caKey.publicKey),
            notValidBefore: now - 3600,
            notValidAfter: now + 86_400 * 365,
            issuer: caName,
            subject: caName,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: Certificate.PublicKey(caKey.publicKey))
            },
            issuerPrivateKey: .init(caKey)
        )
        let serverKey = P256.Signing.PrivateKey()
        var names: [GeneralName] = hostNames.map { .dnsName($0) }
        names += ipAddresses.map { .ipAddress(ASN1OctetString(contentBytes: ArraySlice($0))) }
        let serverCertificate = try Certificate(
            version: .v3,
            serialNumber: .init(),
            publicKey: .init(serverKey.publicKey),
            notValidBefore: now - 3600,
            notValidAfter: now + 86_400 * 365,
            issuer: caName,
            subject: try DistinguishedName { CommonName(hostNames.first ?? "localhost") },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth])
                SubjectAlternativeNames(names)
                AuthorityKeyIdentifier(keyIdentifier: try caCertificate.extensions.subjectKeyIdentifier?.keyIdentifier)
            },
            issuerPrivateKey: .init(caKey)
        )
        let clientKey = P256.Signing.PrivateKey()
        let clientCertificate = try Certificate(
            version: .v3,
            serialNumber: .init(),
            publicKey: .init(clientKey.publicKey),
            notValidBefore: now - 3600,
            notValidAfter: now + 86_400 * 365,
            issuer: caName,
            subject: try DistinguishedName { CommonName("emulator-client") },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.clientAuth])
                AuthorityKeyIdentifier(keyIdentifier: try caCertificate.extensions.subjectKeyIdentifier?.keyIdentifier)
            },
            issuerPrivateKey: .init(caKey)
        )
        return EmulatorCertificates(
            caCertificatePEM: try caCertificate.serializeAsPEM().pemString + "\n",
            serverCertificatePEM: try serverCertificate.serializeAsPEM().pemString + "\n",
            serverKeyPEM: serverKey.pemRepresentation + "\n",
            clientCertificatePEM: try clientCertificate.serializeAsPEM().pemString + "\n",
            clientKeyPEM: clientKey.pemRepresentation + "\n"
        )
    }

    /// A TLS server context (TLS 1.2 or later) presenting the server certificate. With
    /// `requireClientCertificate`, the handshake fails unless the client presents a certificate the CA signed.
    package func serverContext(requireClientCertificate: Bool = false) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMBytes(Array(serverCertificatePEM.utf8)).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(serverKeyPEM.utf8), format: .pem))
        )
        configuration.minimumTLSVersion = .tlsv12
        if requireClientCertificate {
            configuration.certificateVerification = .noHostnameVerification
            configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(caCertificatePEM.utf8)))
        }
        return try NIOSSLContext(configuration: configuration)
    }
}
