/// Percent-encoding of URL path segments, query values and `application/x-www-form-urlencoded` fields: the one
/// encoder the Azure provider and the Kubernetes client share.
///
/// Every byte of the UTF-8 form outside the unreserved set becomes `%XX` (upper-case hex); a space becomes
/// `%20`, never `+`. The unreserved set is RFC 3986's (`A–Z a–z 0–9 - . _ ~`), optionally without `~`.
package enum PercentEncoding {
    /// `text` percent-encoded.
    ///
    /// - Parameter escapingTilde: `true` encodes `~` as `%7E` too. The Kubernetes client has always done so
    ///   (object names are DNS labels, so it never matters there); the Azure provider keeps `~` as RFC 3986 allows.
    ///   Each caller keeps its historical choice so that no URL or form body changes.
    package static func escape(_ text: String, escapingTilde: Bool = false) -> String {
        var result = ""
        result.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            if isUnreserved(byte) || (byte == UInt8(ascii: "~") && !escapingTilde) {
                result.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                result.unicodeScalars.append("%")
                result.unicodeScalars.append(hexDigit(byte >> 4))
                result.unicodeScalars.append(hexDigit(byte & 0x0F))
            }
        }
        return result
    }

    /// ALPHA, DIGIT, `-`, `.`, `_` (RFC 3986 unreserved without `~`, which ``escape(_:escapingTilde:)`` decides).
    private static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"):
            return true
        default:
            return false
        }
    }

    private static func hexDigit(_ nibble: UInt8) -> Unicode.Scalar {
        Unicode.Scalar(nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "A") + nibble - 10)
    }
}
