import _CryptoExtras

/// A fresh RSA-2048 public key as JWK fields (`kty`, `n`, `e`), for seeding the emulator.
enum TestRSAKey {
    static func jwk() throws -> [String: String] {
        let key = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        let primitives = try key.publicKey.getKeyPrimitives()
        return ["kty": "RSA", "n": base64URL(primitives.modulus), "e": base64URL(primitives.publicExponent)]
    }
}
