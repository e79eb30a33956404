import _CryptoExtras

/// A fresh RSA-2048 public key's JWK fields, and the PEM the provider must produce for it.
enum _CryptoExtrasRSA {
    struct Key {
        var n: String
        var e: String
        var publicKeyDER: [UInt8]
    }

    nonisolated(unsafe) private static var cached: Key?

    static func make() throws -> Key {
        let key = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        let primitives = try key.publicKey.getKeyPrimitives()
        return Key(n: base64URL(primitives.modulus), e: base64URL(primitives.publicExponent), publicKeyDER: Array(key.publicKey.derRepresentation))
    }
}
