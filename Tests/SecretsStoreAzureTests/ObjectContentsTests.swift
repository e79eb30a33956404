import Crypto
import KeyVaultEmulator
import SecretsStoreAzure
import SecretsStoreCore
import Testing
import _CryptoExtras

import Foundation

@Suite("Key Vault object contents")
struct ObjectContentsTests {
    @Test func encodings() throws {
        #expect(try ObjectContents.decode("héllo", encoding: .utf8) == Array("héllo".utf8))
        #expect(try ObjectContents.decode("aGVsbG8=", encoding: .base64) == Array("hello".utf8))
        #expect(try ObjectContents.decode("68656C6c6f", encoding: .hex) == Array("hello".utf8))
        #expect(throws: ObjectContents.Failure.self) { try ObjectContents.decode("aGVsbG8", encoding: .base64) }
        #expect(throws: ObjectContents.Failure.self) { try ObjectContents.decode("aGVs\nbG8=", encoding: .base64) }
        #expect(throws: ObjectContents.Failure.self) { try ObjectContents.decode("abc", encoding: .hex) }
        #expect(throws: ObjectContents.Failure.self) { try ObjectContents.decode("zz", encoding: .hex) }
    }

    @Test func pemLayoutIsGos() {
        let der = [UInt8](repeating: 0xAB, count: 100)
        let pem = PEM.encode(type: "CERTIFICATE", der: der)
        let lines = pem.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.first == "-----BEGIN CERTIFICATE-----")
        #expect(lines[1].count == 64)
        #expect(pem.hasSuffix("\n-----END CERTIFICATE-----\n"))
        #expect(PEM.decode(pem).first?.der == der)
    }

    /// Every ordering of root, intermediate and leaf comes out leaf → intermediate → root.
    @Test func chainOrderingFromEveryPermutation() throws {
        let chain = try TestCertificateChain.make()
        let expected = [chain.leaf, chain.intermediate, chain.root]
        for permutation in permutations(expected) {
            #expect(try ObjectContents.orderChain(permutation) == expected)
        }
        let withoutLeafSKI = try TestCertificateChain.make(leafSubjectKeyIdentifier: false)
        let expectedNoSKI = [withoutLeafSKI.leaf, withoutLeafSKI.intermediate, withoutLeafSKI.root]
        for permutation in permutations(expectedNoSKI) {
            #expect(try ObjectContents.orderChain(permutation) == expectedNoSKI)
        }
    }

    @Test("an incomplete chain keeps the original order")
    func incompleteChain() throws {
        let chain = try TestCertificateChain.make()
        let other = try TestCertificateChain.make(commonName: "other.example")
        #expect(try ObjectContents.orderChain([chain.root, chain.leaf]) == [chain.root, chain.leaf])
        #expect(try ObjectContents.orderChain([chain.leaf, other.root, chain.intermediate]) == [chain.leaf, other.root, chain.intermediate])
    }

    @Test("PKCS#12 becomes the PKCS#8 key, then leaf, intermediate, root")
    func pkcs12ToPEM() throws {
        let chain = try TestCertificateChain.make()
        for order in [[chain.leaf, chain.intermediate, chain.root], [chain.leaf, chain.root, chain.intermediate]] {
            let pem = try ObjectContents.pkcs12ToPEM(base64: try chain.pkcs12Base64(certificates: order))
            let blocks = PEM.decode(pem)
            #expect(blocks.map(\.type) == ["PRIVATE KEY", "CERTIFICATE", "CERTIFICATE", "CERTIFICATE"])
            #expect(blocks[0].der == chain.leafKeyPKCS8)
            #expect(blocks[1].der == chain.leaf)
            #expect(blocks[2].der == chain.intermediate)
            #expect(blocks[3].der == chain.root)
            #expect(pem == blocks.map { PEM.encode(type: $0.type, der: $0.der) }.joined())
        }
        #expect(throws: ObjectContents.Failure.self) { try ObjectContents.pkcs12ToPEM(base64: "bm90IGEgcGZ4") }
    }

    @Test func secretsByContentType() throws {
        let chain = try TestCertificateChain.make()
        let pfx = try chain.pkcs12Base64(certificates: [chain.leaf, chain.intermediate, chain.root])
        #expect(try ObjectContents.secret(value: pfx, contentType: "application/x-pkcs12", isCertificateBacked: true, format: .pfx, encoding: .utf8) == Array(pfx.utf8))
        #expect(try ObjectContents.secret(value: pfx, contentType: "application/x-pkcs12", isCertificateBacked: true, format: .pfx, encoding: .base64) == Array(Data(base64Encoded: pfx)!))
        #expect(try ObjectContents.secret(value: "PEMTEXT", contentType: "application/x-pem-file", isCertificateBacked: true, format: .pem, encoding: .utf8) == Array("PEMTEXT".utf8))
        #expect(try ObjectContents.secret(value: "plain", contentType: "text/plain", isCertificateBacked: false, format: .pem, encoding: .utf8) == Array("plain".utf8))
        let error = #expect(throws: ObjectContents.Failure.self) {
            try ObjectContents.secret(value: "x", contentType: nil, isCertificateBacked: true, format: .pem, encoding: .utf8)
        }
        #expect(error?.message == "failed to get certificate. unknown content type ''")
    }

    @Test func jsonWebKeysBecomePublicKeyPEM() throws {
        let rsa = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        let primitives = try rsa.publicKey.getKeyPrimitives()
        let rsaPEM = try ObjectContents.publicKeyPEM(
            keyType: "RSA-HSM", n: base64URL(primitives.modulus), e: base64URL(primitives.publicExponent), curve: nil, x: nil, y: nil
        )
        #expect(rsaPEM == PEM.encode(type: "PUBLIC KEY", der: rsa.publicKey.derRepresentation))

        let p384 = P384.Signing.PrivateKey()
        let point = Array(p384.publicKey.x963Representation.dropFirst())
        let ecPEM = try ObjectContents.publicKeyPEM(
            keyType: "EC", n: nil, e: nil, curve: "P-384", x: base64URL(Data(point[0..<48])), y: base64URL(Data(point[48...]))
        )
        #expect(ecPEM == PEM.encode(type: "PUBLIC KEY", der: p384.publicKey.derRepresentation))

        let oct = #expect(throws: ObjectContents.Failure.self) {
            try ObjectContents.publicKeyPEM(keyType: "oct", n: nil, e: nil, curve: nil, x: nil, y: nil)
        }
        #expect(oct?.message == "failed to get key. key type 'oct' currently not supported")
        let curve = #expect(throws: ObjectContents.Failure.self) {
            try ObjectContents.publicKeyPEM(keyType: "EC", n: nil, e: nil, curve: "P-256K", x: "AA", y: "AA")
        }
        #expect(curve?.message == "curve P-256K is not supported")
    }

    private func permutations<T>(_ items: [T]) -> [[T]] {
        guard items.count > 1 else { return [items] }
        return items.indices.flatMap { index -> [[T]] in
            var rest = items
            let head = rest.remove(at: index)
            return permutations(rest).map { [head] + $0 }
        }
    }
}

func base64URL(_ data: Data) -> String {
    data.base64EncodedString().replacing("+", with: "-").replacing("/", with: "_").replacing("=", with: "")
}
