/// Reads the fields `objectJSONFields` names out of a secret's value.
///
/// The value must be a JSON object (RFC 8259, UTF-8). A field whose value is a JSON string is written as the
/// string's characters (UTF-8, escapes resolved); any other JSON value (number, `true`/`false`/`null`, array,
/// object) is written as compact JSON text: the value as the secret holds it, with the whitespace between
/// tokens removed (numbers keep their digits as written, objects their keys' order). When an object repeats a
/// key, the last one counts.
package enum JSONFieldExtraction {
    /// Why a field could not be read. Never holds any part of the value.
    package enum Failure: Error, Sendable, Equatable {
        /// The value is not JSON.
        case notJSON
        /// The value is JSON, but not an object.
        case notAnObject
        /// The object has no field at this path (or a segment before the last is not an object).
        case missingField(JSONField)

        /// What is wrong, naming the field (never the value).
        package var message: String {
            switch self {
            case .notJSON: "objectJSONFields: the secret's value is not JSON"
            case .notAnObject: "objectJSONFields: the secret's value is JSON but not an object"
            case .missingField(let field): "objectJSONFields: the secret's JSON has no field \(field.dottedPath)"
            }
        }
    }

    /// The bytes of each field of `fields` in the JSON object `value`, in the fields' order.
    package static func extract(_ fields: [JSONField], from value: [UInt8]) throws(Failure) -> [[UInt8]] {
        var parser = Parser(bytes: value)
        let root: Value
        do {
            root = try parser.document()
        } catch {
            throw .notJSON
        }
        guard case .object = root else { throw .notAnObject }
        var results: [[UInt8]] = []
        for field in fields {
            var current = root
            for segment in field.path {
                guard case .object(let members) = current, let next = members.last(where: { $0.key == segment })?.value else {
                    throw .missingField(field)
                }
                current = next
            }
            if case .string(let text) = current {
                results.append(Array(text.utf8))
            } else {
                var out: [UInt8] = []
                current.writeCompact(to: &out)
                results.append(out)
            }
        }
        return results
    }

    /// A parsed JSON value; numbers keep their text.
    indirect enum Value {
        case null
        case bool(Bool)
        case number([UInt8])
        case string(String)
        case array([Value])
        case object([(key: String, value: Value)])

        func writeCompact(to out: inout [UInt8]) {
            switch self {
            case .null: out += Array("null".utf8)
            case .bool(let flag): out += Array((flag ? "true" : "false").utf8)
            case .number(let digits): out += digits
            case .string(let text): Self.writeString(text, to: &out)
            case .array(let items):
                out.append(UInt8(ascii: "["))
                for (index, item) in items.enumerated() {
                    if index > 0 { out.append(UInt8(ascii: ",")) }
                    item.writeCompact(to: &out)
                }
                out.append(UInt8(ascii: "]"))
            case .object(let members):
                out.append(UInt8(ascii: "{"))
                for (index, member) in members.enumerated() {
                    if index > 0 { out.append(UInt8(ascii: ",")) }
                    Self.writeString(member.key, to: &out)
                    out.append(UInt8(ascii: ":"))
                    member.value.writeCompact(to: &out)
                }
                out.append(UInt8(ascii: "}"))
            }
        }

        /// A JSON string: `"` and `\` escaped, control characters as `\uXXXX` (or their short escapes).
        static func writeString(_ text: String, to out: inout [UInt8]) {
            out.append(UInt8(ascii: "\""))
            for byte in text.utf8 {
                switch byte {
                case UInt8(ascii: "\""): out += Array("\\\"".utf8)
                case UInt8(ascii: "\\"): out += Array("\\\\".utf8)
                case 0x0A: out += Array("\\n".utf8)
                case 0x0D: out += Array("\\r".utf8)
                case 0x09: out += Array("\\t".utf8)
                case 0x08: out += Array("\\b".utf8)
                case 0x0C: out += Array("\\f".utf8)
                case 0..<0x20:
                    let hex = Array("0123456789abcdef".utf8)
                    out += Array("\\u00".utf8) + [hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
                default: out.append(byte)
                }
            }
            out.append(UInt8(ascii: "\""))
        }
    }

    /// A strict RFC 8259 parser over bytes, nesting at most ``maxDepth`` deep (a secret is at most 25 KB, but
    /// the recursion is bounded anyway).
    struct Parser {
        struct Invalid: Error {}
        static let maxDepth = 128

        let bytes: [UInt8]
        var position = 0

        init(bytes: [UInt8]) { self.bytes = bytes }

        /// One value with only whitespace around it (a UTF-8 byte order mark first is allowed).
        mutating func document() throws(Invalid) -> Value {
            if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { position = 3 }
            let value = try parseValue(depth: 0)
            skipWhitespace()
            guard position == bytes.count else { throw Invalid() }
            return value
        }

        private mutating func skipWhitespace() {
            while position < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[position]) { position += 1 }
        }

        private mutating func expect(_ literal: String) throws(Invalid) {
            let utf8 = Array(literal.utf8)
            guard position + utf8.count <= bytes.count, Array(bytes[position..<position + utf8.count]) == utf8 else { throw Invalid() }
            position += utf8.count
        }

        private mutating func parseValue(depth: Int) throws(Invalid) -> Value {
            guard depth < Self.maxDepth else { throw Invalid() }
            skipWhitespace()
            guard position < bytes.count else { throw Invalid() }
            switch bytes[position] {
            case UInt8(ascii: "{"):
                position += 1
                var members: [(key: String, value: Value)] = []
                skipWhitespace()
                if position < bytes.count, bytes[position] == UInt8(ascii: "}") {
                    position += 1
                    return .object(members)
                }
                while true {
                    skipWhitespace()
                    let key = try parseString()
                    skipWhitespace()
                    try expect(":")
                    members.append((key, try parseValue(depth: depth + 1)))
                    skipWhitespace()
                    guard position < bytes.count else { throw Invalid() }
                    position += 1
                    if bytes[position - 1] == UInt8(ascii: "}") { return .object(members) }
                    guard bytes[position - 1] == UInt8(ascii: ",") else { throw Invalid() }
                }
            case UInt8(ascii: "["):
                position += 1
                var items: [Value] = []
                skipWhitespace()
                if position < bytes.count, bytes[position] == UInt8(ascii: "]") {
                    position += 1
                    return .array(items)
                }
                while true {
                    items.append(try parseValue(depth: depth + 1))
                    skipWhitespace()
                    guard position < bytes.count else { throw Invalid() }
                    position += 1
                    if bytes[position - 1] == UInt8(ascii: "]") { return .array(items) }
                    guard bytes[position - 1] == UInt8(ascii: ",") else { throw Invalid() }
                }
            case UInt8(ascii: "\""):
                return .string(try parseString())
            case UInt8(ascii: "t"):
                try expect("true")
                return .bool(true)
            case UInt8(ascii: "f"):
                try expect("false")
                return .bool(false)
            case UInt8(ascii: "n"):
                try expect("null")
                return .null
            default:
                return .number(try parseNumber())
            }
        }

        /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`, as written.
        private mutating func parseNumber() throws(Invalid) -> [UInt8] {
            let start = position
            func isDigit(_ at: Int) -> Bool { at < bytes.count && bytes[at] >= 0x30 && bytes[at] <= 0x39 }
            if position < bytes.count, bytes[position] == UInt8(ascii: "-") { position += 1 }
            guard isDigit(position) else { throw Invalid() }
            if bytes[position] == 0x30 {
                position += 1
            } else {
                while isDigit(position) { position += 1 }
            }
            if position < bytes.count, bytes[position] == UInt8(ascii: ".") {
                position += 1
                guard isDigit(position) else { throw Invalid() }
                while isDigit(position) { position += 1 }
            }
            if position < bytes.count, bytes[position] == UInt8(ascii: "e") || bytes[position] == UInt8(ascii: "E") {
                position += 1
                if position < bytes.count, bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-") { position += 1 }
                guard isDigit(position) else { throw Invalid() }
                while isDigit(position) { position += 1 }
            }
            return Array(bytes[start..<position])
        }

        /// A string token: escapes resolved (surrogate pairs joined), raw bytes valid UTF-8 and no control
        /// characters.
        private mutating func parseString() throws(Invalid) -> String {
            guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else { throw Invalid() }
            position += 1
            var utf8: [UInt8] = []
            while true {
                guard position < bytes.count else { throw Invalid() }
                let byte = bytes[position]
                position += 1
                switch byte {
                case UInt8(ascii: "\""):
                    guard let text = String(validating: utf8, as: UTF8.self) else { throw Invalid() }
                    return text
                case UInt8(ascii: "\\"):
                    guard position < bytes.count else { throw Invalid() }
                    let escape = bytes[position]
                    position += 1
                    switch escape {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(escape)
                    case UInt8(ascii: "b"): utf8.append(0x08)
                    case UInt8(ascii: "f"): utf8.append(0x0C)
                    case UInt8(ascii: "n"): utf8.append(0x0A)
                    case UInt8(ascii: "r"): utf8.append(0x0D)
                    case UInt8(ascii: "t"): utf8.append(0x09)
                    case UInt8(ascii: "u"):
                        var scalar = try parseHex4()
                        if (0xD800...0xDBFF).contains(scalar) {
                            try expect("\\u")
                            let low = try parseHex4()
                            guard (0xDC00...0xDFFF).contains(low) else { throw Invalid() }
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        }
                        guard let unicode = Unicode.Scalar(scalar) else { throw Invalid() }
                        utf8 += Array(String(Character(unicode)).utf8)
                    default:
                        throw Invalid()
                    }
                case 0..<0x20:
                    throw Invalid()
                default:
                    utf8.append(byte)
                }
            }
        }

        private mutating func parseHex4() throws(Invalid) -> UInt32 {
            guard position + 4 <= bytes.count else { throw Invalid() }
            var value: UInt32 = 0
            for _ in 0..<4 {
                let byte = bytes[position]
                position += 1
                let digit: UInt8
                switch byte {
                case 0x30...0x39: digit = byte - 0x30
                case 0x41...0x46: digit = byte - 0x41 + 10
                case 0x61...0x66: digit = byte - 0x61 + 10
                default: throw Invalid()
                }
                value = value << 4 | UInt32(digit)
            }
            return value
        }
    }
}
