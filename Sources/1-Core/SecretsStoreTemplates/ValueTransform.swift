/// The transforms a template may apply to a file's value, written `{{base64Encode(name)}}` and nested
/// `{{uppercased(trim(name))}}` (innermost first). They work on bytes: a value need not be text until it is
/// written into the output.
package enum ValueTransform: String, Sendable, CaseIterable {
    /// The bytes as standard base64 (RFC 4648 §4, with padding).
    case base64Encode
    /// Standard base64 (padding optional; whitespace around it ignored) decoded to bytes; anything else is
    /// ``TemplateProblem/notBase64(file:)``.
    case base64Decode
    /// Without leading and trailing ASCII whitespace (space, tab, CR, LF, vertical tab, form feed).
    case trim
    /// Upper-cased (Unicode); the value must be UTF-8 text.
    case uppercased
    /// Lower-cased (Unicode); the value must be UTF-8 text.
    case lowercased

    /// Why a transform could not be applied.
    enum Failure: Error {
        /// `base64Decode` of bytes that are not base64.
        case notBase64
        /// A text transform of bytes that are not UTF-8.
        case notText
    }

    /// `bytes` transformed.
    func apply(to bytes: [UInt8]) throws(Failure) -> [UInt8] {
        switch self {
        case .base64Encode:
            return Base64.encode(bytes)
        case .base64Decode:
            guard let decoded = Base64.decode(bytes) else { throw .notBase64 }
            return decoded
        case .trim:
            let isSpace: (UInt8) -> Bool = { [0x20, 0x09, 0x0A, 0x0D, 0x0B, 0x0C].contains($0) }
            guard let first = bytes.firstIndex(where: { !isSpace($0) }), let last = bytes.lastIndex(where: { !isSpace($0) }) else {
                return []
            }
            return Array(bytes[first...last])
        case .uppercased:
            guard let text = String(validating: bytes, as: UTF8.self) else { throw .notText }
            return Array(text.uppercased().utf8)
        case .lowercased:
            guard let text = String(validating: bytes, as: UTF8.self) else { throw .notText }
            return Array(text.lowercased().utf8)
        }
    }
}

/// Standard base64 (RFC 4648 §4) without Foundation.
enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// `bytes` encoded, padded with `=`.
    static func encode(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var index = 0
        while index < bytes.count {
            let remaining = bytes.count - index
            let b0 = UInt32(bytes[index])
            let b1 = remaining > 1 ? UInt32(bytes[index + 1]) : 0
            let b2 = remaining > 2 ? UInt32(bytes[index + 2]) : 0
            let group = b0 << 16 | b1 << 8 | b2
            out.append(alphabet[Int(group >> 18 & 0x3F)])
            out.append(alphabet[Int(group >> 12 & 0x3F)])
            out.append(remaining > 1 ? alphabet[Int(group >> 6 & 0x3F)] : UInt8(ascii: "="))
            out.append(remaining > 2 ? alphabet[Int(group & 0x3F)] : UInt8(ascii: "="))
            index += 3
        }
        return out
    }

    /// `text` decoded, or `nil` when it is not base64: only the alphabet, then at most two `=` that complete
    /// the last group (or none), with ASCII whitespace allowed only before and after. Bits left over in the
    /// last character must be zero, so one value has one encoding.
    static func decode(_ text: [UInt8]) -> [UInt8]? {
        let isSpace: (UInt8) -> Bool = { [0x20, 0x09, 0x0A, 0x0D, 0x0B, 0x0C].contains($0) }
        var body = text[...]
        while let last = body.last, isSpace(last) { body.removeLast() }
        while let first = body.first, isSpace(first) { body.removeFirst() }
        var padding = 0
        while body.last == UInt8(ascii: "=") {
            body.removeLast()
            padding += 1
        }
        guard padding <= 2 else { return nil }
        if padding > 0, (body.count + padding) % 4 != 0 { return nil }
        guard body.count % 4 != 1 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(body.count * 3 / 4)
        var accumulator: UInt32 = 0
        var bits = 0
        for byte in body {
            let value: UInt8
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): value = byte - UInt8(ascii: "A")
            case UInt8(ascii: "a")...UInt8(ascii: "z"): value = byte - UInt8(ascii: "a") + 26
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = byte - UInt8(ascii: "0") + 52
            case UInt8(ascii: "+"): value = 62
            case UInt8(ascii: "/"): value = 63
            default: return nil
            }
            accumulator = accumulator << 6 | UInt32(value)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(accumulator >> UInt32(bits) & 0xFF))
            }
        }
        // The leftover bits (2 or 4) of the last character must be zero.
        guard accumulator & ((1 << UInt32(bits)) - 1) == 0 else { return nil }
        return out
    }
}
