import SecretsStoreAzure

// JSONSerialization, the oracle here, is in Foundation only (not in FoundationEssentials).
import Foundation

extension FuzzTarget {
    /// A secret's value through ``JSONFieldExtraction/extract(_:from:)``, checked against Foundation's
    /// `JSONSerialization` as an independent parser.
    ///
    /// Properties: the extractor takes the value as JSON exactly when `JSONSerialization` does, except that it
    /// refuses nesting 128 deep or more (its bound; `JSONSerialization` goes deeper); it says "not an object"
    /// exactly when the JSON is another value. For every field of the object and of its objects one level down:
    /// a string is written as the decoded string's UTF-8 bytes; any other value as compact JSON (no whitespace
    /// outside strings) that `JSONSerialization` reads back as the same value. A field that is not there, or
    /// under a value that is not an object, is reported missing, naming that field.
    package static let jsonFields = FuzzTarget(
        name: "json-fields",
        summary: "secret values through JSONFieldExtraction.extract, against Foundation's JSONSerialization",
        seeds: JSONFieldsSeeds.values.map { Array($0.utf8) },
        regressions: JSONFieldsSeeds.regressions,
        dictionary: JSONFieldsSeeds.tokens.map { Array($0.utf8) },
        maxInputLength: 16 * 1024,
        check: checkJSONFields
    )

    private static func checkJSONFields(_ bytes: [UInt8]) -> FuzzOutcome {
        let name = "json-fields"
        // Deliberately, the extractor reads numbers beyond Double's range (it keeps numbers as written), where
        // JSONSerialization refuses the whole value: those are read by the oracle as 0 and not compared.
        var oracle = try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])
        var hugeNumbers = false
        // Foundation drops U+FEFF from strings (values and keys; seen at the start and inside); the extractor
        // keeps the characters as written. Where one may be, strings are compared without it, and a key may not
        // be found by its name as Foundation gives it.
        let mayHaveFEFF = JSONFieldsSeeds.mayHaveFEFFInAString(bytes)
        if oracle == nil, let zeroed = JSONFieldsSeeds.zeroingHugeNumbers(bytes) {
            oracle = try? JSONSerialization.jsonObject(with: Data(zeroed), options: [.fragmentsAllowed])
            hugeNumbers = oracle != nil
        }
        let object = oracle as? [String: Any]
        var fields: [JSONField] = []
        var missing: [JSONField] = [JSONField(path: [JSONFieldsSeeds.absentKey], fileName: "absent")]
        if let object {
            for (key, value) in object.sorted(by: { Array($0.key.utf8).lexicographicallyPrecedes(Array($1.key.utf8)) }).prefix(24) {
                fields.append(JSONField(path: [key], fileName: "f\(fields.count)"))
                if let nested = value as? [String: Any] {
                    for nestedKey in nested.keys.sorted().prefix(4) {
                        fields.append(JSONField(path: [key, nestedKey], fileName: "f\(fields.count)"))
                    }
                    if nested[JSONFieldsSeeds.absentKey] == nil {
                        missing.append(JSONField(path: [key, JSONFieldsSeeds.absentKey], fileName: "absent"))
                    }
                } else {
                    missing.append(JSONField(path: [key, "inner"], fileName: "absent"))
                }
            }
            if object[JSONFieldsSeeds.absentKey] != nil { missing.removeFirst() }
        } else {
            fields = JSONFieldsSeeds.fixedFields
        }

        let results: [[UInt8]]
        do {
            results = try JSONFieldExtraction.extract(fields, from: bytes)
        } catch {
            switch error {
            case .notJSON:
                // JSONSerialization is lenient where RFC 8259 and the extractor are not: a comma before `}` or `]`.
                if let oracle, !JSONFieldsSeeds.hasTrailingComma(bytes) {
                    let depth = JSONFieldsSeeds.depth(of: oracle)
                    require(depth >= 128, "refused as not JSON what JSONSerialization reads (depth \(depth))", target: name, input: bytes)
                }
            case .notAnObject:
                require(oracle != nil && object == nil, "said 'not an object' where JSONSerialization reads \(oracle.map { "\(type(of: $0))" } ?? "no JSON")", target: name, input: bytes)
            case .missingField(let field):
                guard !mayHaveFEFF else { break }
                require(object != nil, "a missing field \(field.dottedPath) in a value JSONSerialization does not read as an object", target: name, input: bytes)
                require(false, "the field \(field.dottedPath), which JSONSerialization finds, was reported missing", target: name, input: bytes)
            }
            return .rejected(error.message)
        }
        guard let object else {
            require(false, "accepted a value JSONSerialization \(oracle == nil ? "refuses" : "does not read as an object")", target: name, input: bytes)
            return .accepted
        }
        let depth = JSONFieldsSeeds.depth(of: object)
        require(depth < 128, "accepted a value nested \(depth) deep", target: name, input: bytes)
        require(results.count == fields.count, "\(results.count) results for \(fields.count) fields", target: name, input: bytes)

        for (field, result) in zip(fields, results) {
            var expected: Any = object
            for segment in field.path {
                guard let value = (expected as? [String: Any])?[segment] else {
                    preconditionFailure("the fields are taken from the oracle's object")
                }
                expected = value
            }
            if let text = expected as? String {
                let written = mayHaveFEFF ? JSONFieldsSeeds.withoutFEFF(result) : result
                require(
                    written == (mayHaveFEFF ? JSONFieldsSeeds.withoutFEFF(Array(text.utf8)) : Array(text.utf8)),
                    "the string field \(field.dottedPath) is \(result) where JSONSerialization decodes \(Array(text.utf8))",
                    target: name,
                    input: bytes
                )
                continue
            }
            require(JSONFieldsSeeds.isCompact(result), "the field \(field.dottedPath) is not compact JSON: \(String(decoding: result, as: UTF8.self))", target: name, input: bytes)
            let reread = try? JSONSerialization.jsonObject(with: Data(result), options: [.fragmentsAllowed])
            if reread == nil, hugeNumbers, let zeroed = JSONFieldsSeeds.zeroingHugeNumbers(result) {
                require(
                    (try? JSONSerialization.jsonObject(with: Data(zeroed), options: [.fragmentsAllowed])) != nil,
                    "the field \(field.dottedPath) is written as \(String(decoding: result, as: UTF8.self)), which is not JSON",
                    target: name,
                    input: bytes
                )
                continue
            }
            require(
                reread.map { JSONFieldsSeeds.Canonical($0) == JSONFieldsSeeds.Canonical(expected) } ?? false,
                "the field \(field.dottedPath) is written as \(String(decoding: result, as: UTF8.self)), not the value JSONSerialization reads",
                target: name,
                input: bytes
            )
        }
        for field in missing {
            do {
                _ = try JSONFieldExtraction.extract([field], from: bytes)
                require(false, "the absent field \(field.dottedPath) was found", target: name, input: bytes)
            } catch {
                require(error == .missingField(field), "the absent field \(field.dottedPath) gave \(error.message)", target: name, input: bytes)
            }
        }
        return .accepted
    }
}

/// Realistic JSON secret values and what the properties compare them with.
enum JSONFieldsSeeds {
    /// A key no seed or token has, asked for to see it reported missing.
    static let absentKey = "\u{1}absent"

    /// What is asked of a value that `JSONSerialization` does not read as an object.
    static let fixedFields = [
        JSONField(path: ["username"], fileName: "username"),
        JSONField(path: ["password"], fileName: "password"),
        JSONField(path: ["db", "host"], fileName: "host"),
    ]

    /// A JSON value as `JSONSerialization` gives it, for comparison: strings and keys by their UTF-8 bytes (not
    /// by Unicode equivalence), numbers and booleans by their `Double` value (Foundation gives both as
    /// `NSNumber`).
    enum Canonical: Equatable {
        case null
        case number(Double)
        case string([UInt8])
        case array([Canonical])
        case object([[UInt8]: Canonical])

        init(_ value: Any) {
            switch value {
            case is NSNull: self = .null
            case let text as String: self = .string(Array(text.utf8))
            case let number as NSNumber: self = .number(number.doubleValue)
            case let items as [Any]: self = .array(items.map(Canonical.init))
            case let members as [String: Any]:
                self = .object(Dictionary(uniqueKeysWithValues: members.map { (Array($0.key.utf8), Canonical($0.value)) }))
            default: preconditionFailure("JSONSerialization gave a \(type(of: value))")
            }
        }
    }

    /// How deep the extractor's parser goes to read `value`: 0 for a scalar or an empty container, one more
    /// than its deepest member otherwise.
    static func depth(of value: Any) -> Int {
        if let items = value as? [Any] { return items.isEmpty ? 0 : 1 + items.map(depth(of:)).max()! }
        if let members = value as? [String: Any] { return members.isEmpty ? 0 : 1 + members.values.map(depth(of:)).max()! }
        return 0
    }

    /// `json` with every number token outside strings whose value is beyond Double's range written as `0`, or
    /// `nil` when it has none.
    static func zeroingHugeNumbers(_ json: [UInt8]) -> [UInt8]? {
        var out: [UInt8] = []
        var inString = false
        var escaped = false
        var replaced = false
        var index = 0
        let numberBytes = Set("+-.eE0123456789".utf8)
        while index < json.count {
            let byte = json[index]
            if inString {
                if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { inString = false }
            } else if byte == UInt8(ascii: "\"") {
                inString = true
            } else if byte == UInt8(ascii: "-") || (0x30...0x39).contains(byte) {
                var end = index
                while end < json.count, numberBytes.contains(json[end]) { end += 1 }
                let token = json[index..<end]
                if isJSONNumber(token), let value = Double(String(decoding: token, as: UTF8.self)), value.isInfinite {
                    out.append(UInt8(ascii: "0"))
                    replaced = true
                } else {
                    out += token
                }
                index = end
                continue
            }
            out.append(byte)
            index += 1
        }
        return replaced ? out : nil
    }

    /// Whether `token` is a number as RFC 8259 §6 writes it: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    static func isJSONNumber(_ token: ArraySlice<UInt8>) -> Bool {
        var rest = token[...]
        func digits() -> Int {
            let count = rest.prefix(while: { (0x30...0x39).contains($0) }).count
            rest = rest.dropFirst(count)
            return count
        }
        if rest.first == UInt8(ascii: "-") { rest = rest.dropFirst() }
        if rest.first == UInt8(ascii: "0") { rest = rest.dropFirst() } else if digits() == 0 { return false }
        if rest.first == UInt8(ascii: ".") {
            rest = rest.dropFirst()
            if digits() == 0 { return false }
        }
        if rest.first == UInt8(ascii: "e") || rest.first == UInt8(ascii: "E") {
            rest = rest.dropFirst()
            if rest.first == UInt8(ascii: "+") || rest.first == UInt8(ascii: "-") { rest = rest.dropFirst() }
            if digits() == 0 { return false }
        }
        return rest.isEmpty
    }

    /// Whether `json` has, outside its strings, a `,` followed (after whitespace) by `}` or `]`.
    static func hasTrailingComma(_ json: [UInt8]) -> Bool {
        var inString = false
        var escaped = false
        var afterComma = false
        for byte in json {
            if inString {
                if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case 0x20, 0x09, 0x0A, 0x0D: continue
            case UInt8(ascii: "}"), UInt8(ascii: "]"): if afterComma { return true }
            default: break
            }
            afterComma = byte == UInt8(ascii: ",")
        }
        return false
    }

    /// Whether a string of `json` may hold U+FEFF: its UTF-8 after the first three bytes, or an escape of it.
    static func mayHaveFEFFInAString(_ json: [UInt8]) -> Bool {
        let raw: [UInt8] = [0xEF, 0xBB, 0xBF]
        let body = Array(json.dropFirst(3))
        if body.count >= 3, (0...(body.count - 3)).contains(where: { body[$0..<$0 + 3].elementsEqual(raw) }) { return true }
        return String(decoding: json, as: UTF8.self).lowercased().contains("\\ufeff")
    }

    /// `utf8` without the encodings of U+FEFF.
    static func withoutFEFF(_ utf8: [UInt8]) -> [UInt8] {
        Array(String(decoding: utf8, as: UTF8.self).unicodeScalars.filter { $0 != "\u{FEFF}" }.map(String.init).joined().utf8)
    }

    /// Whether `json` has no whitespace outside its strings.
    static func isCompact(_ json: [UInt8]) -> Bool {
        var inString = false
        var escaped = false
        for byte in json {
            if inString {
                if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { inString = false }
            } else if byte == UInt8(ascii: "\"") {
                inString = true
            } else if [0x20, 0x09, 0x0A, 0x0D].contains(byte) {
                return false
            }
        }
        return true
    }

    static let values: [String] = [
        #"{"username":"app","password":"s3cr3t-p@ss","port":5432}"#,
        """
        {
          "db": {"host": "db.internal", "port": 5432, "options": {"sslmode": "require"}},
          "api_key": "AKIA\\u0030EXAMPLE",
          "enabled": true,
          "ratio": -0.25e+2,
          "tags": ["a", "b", null, 1.0, {"k": [false]}],
          "empty": "",
          "nothing": null
        }
        """,
        #"{"pem":"-----BEGIN PRIVATE KEY-----\nMIGHAgEA\n-----END PRIVATE KEY-----\n","quote":"say \"hi\" \\ \/ \t\b\f\r","unicode":"caf\u00e9 \ud83d\udd11 ü"}"#,
        "\u{FEFF}{\"bom\":\"first\"}",
        #"{"a":{"b":{"c":{"d":[[[{"e":"deep"}]]]}}},"big":123456789012345678901234567890,"exp":1E-7}"#,
    ]

    /// Nesting at the extractor's bound: 127 arrays around a value is read, 128 refused.
    static let regressions: [[UInt8]] = [
        Array(("{\"a\":" + String(repeating: "[", count: 126) + "1" + String(repeating: "]", count: 126) + "}").utf8),
        Array(("{\"a\":" + String(repeating: "[", count: 127) + "1" + String(repeating: "]", count: 127) + "}").utf8),
        Array(String(repeating: "[", count: 5000).utf8),
        Array(String(repeating: "{\"a\":", count: 3000).utf8),
    ]

    static let tokens: [String] = [
        "{", "}", "[", "]", ":", ",", "\"", "\\", "\\\"", "\\\\", "\\/", "\\b", "\\f", "\\n", "\\r", "\\t", "\\u0000",
        "\\u00e9", "\\ud83d\\udd11", "\\ud800", "\\udc00", "\\u", "true", "false", "null", "-", "0", "-0", "1.5", "1e9",
        "1E+2", "1e-2", ".5", "01", "+1", "1.", "\u{FEFF}", "\u{00}", "\u{7F}", "é", "\u{1F511}", "\"username\"",
        "\"password\"", "\"db\"", "\"host\"", "{}", "[]", "\"\":", "\u{C0}", "\u{FFFF}",
    ]
}
