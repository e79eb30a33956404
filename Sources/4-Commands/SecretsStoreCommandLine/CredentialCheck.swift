#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The rule that keeps credentials out of SecretProviderClasses (`render` refuses a class that breaks it): an
/// SPC belongs in Git next to the workload and holds references only; the credential itself belongs in the
/// Secret that the pod's `nodePublishSecretRef` names, or is replaced by workload identity.
///
/// A parameter is refused when its value is not empty and
/// 1. its **name**, lower-cased with everything but letters and digits removed, **ends with** one of
///    ``credentialNameSuffixes`` (`clientSecret`, `client_secret`, `dbPassword`, `accessToken`,
///    `storageAccountKey`…). Only the end counts, so names that *refer* to a credential (`secretName`,
///    `tokenPath`, `passwordFile`, `keyvaultName`, `secretObjects`, `secrets`, `usePodIdentity`) pass; or
/// 2. its **value** contains a PEM private key block: a `-----BEGIN … PRIVATE KEY-----` line (`PRIVATE KEY`,
///    `RSA PRIVATE KEY`, `EC PRIVATE KEY`, `ENCRYPTED PRIVATE KEY`, `OPENSSH PRIVATE KEY`…; certificates and
///    public keys pass); or
/// 3. its **value** contains a JWT: a run of base64url characters made of three `.`-separated segments, the
///    first two non-empty, whose first segment decodes to a JSON object with an `"alg"` member.
///
/// Findings name the parameter and the rule, never the value.
package enum CredentialCheck {
    /// Name endings that mark a parameter as holding a credential (compared after lower-casing and removing
    /// every character that is not a letter or digit).
    package static let credentialNameSuffixes = [
        "secret", "password", "passwd", "passphrase", "pwd", "token", "tokens", "apikey", "accesskey", "secretkey",
        "privatekey", "accountkey", "sharedkey", "masterkey", "connectionstring", "credential", "credentials",
    ]

    /// Why a parameter holds a credential.
    package enum Finding: Sendable, Equatable, CustomStringConvertible {
        /// Rule 1: the name ends with `suffix`.
        case name(suffix: String)
        /// Rule 2: a PEM private key block.
        case privateKey
        /// Rule 3: a JWT.
        case jwt

        /// The rule, in words (no value).
        package var description: String {
            switch self {
            case .name(let suffix): "its name ends in \"\(suffix)\""
            case .privateKey: "its value contains a PEM private key"
            case .jwt: "its value contains a JWT"
            }
        }
    }

    /// The first rule `name: value` breaks, or `nil` when the parameter holds no credential.
    package static func finding(name: String, value: String) -> Finding? {
        guard !value.allSatisfy(\.isWhitespace) else { return nil }
        let normalized = String(name.lowercased().unicodeScalars.filter { ($0 >= "a" && $0 <= "z") || ($0 >= "0" && $0 <= "9") })
        if let suffix = credentialNameSuffixes.first(where: { normalized.hasSuffix($0) }) {
            return .name(suffix: suffix)
        }
        if containsPrivateKey(value) { return .privateKey }
        if containsJWT(value) { return .jwt }
        return nil
    }

    /// Whether a line of `text` opens a PEM private key block.
    package static func containsPrivateKey(_ text: String) -> Bool {
        for line in text.split(whereSeparator: \.isNewline) {
            guard let begin = line.firstRange(of: "-----BEGIN ") else { continue }
            let rest = line[begin.upperBound...]
            if let end = rest.firstRange(of: "-----"), rest[..<end.lowerBound].hasSuffix("PRIVATE KEY") { return true }
        }
        return false
    }

    /// Whether `text` contains a JWT (rule 3).
    package static func containsJWT(_ text: String) -> Bool {
        var run: [UInt8] = []
        for byte in text.utf8 + [0] {
            if isJWTByte(byte) {
                run.append(byte)
                continue
            }
            if isJWT(run) { return true }
            run.removeAll(keepingCapacity: true)
        }
        return false
    }

    private static func isJWTByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."):
            true
        default:
            false
        }
    }

    private static func isJWT(_ run: [UInt8]) -> Bool {
        let segments = run.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard segments.count == 3, !segments[0].isEmpty, !segments[1].isEmpty,
            let header = base64URLDecode(segments[0])
        else { return false }
        struct Header: Decodable { var alg: String }
        return (try? JSONDecoder().decode(Header.self, from: Data(header))) != nil
    }

    /// Unpadded base64url (`-`, `_`) to bytes; `nil` when it is not that.
    private static func base64URLDecode(_ segment: ArraySlice<UInt8>) -> [UInt8]? {
        var text = String(decoding: segment, as: UTF8.self)
            .replacing("-", with: "+")
            .replacing("_", with: "/")
        while text.utf8.count % 4 != 0 { text += "=" }
        return Data(base64Encoded: text).map(Array.init)
    }
}
