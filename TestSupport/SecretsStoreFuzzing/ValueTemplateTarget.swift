import SecretsStoreTemplates

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension FuzzTarget {
    /// A template (`secretObjects[].data[].template`, `fileTemplates`) through ``ValueTemplate/init(_:)`` (the
    /// tag scanner, then swift-mustache) and ``ValueTemplate/render(_:)``.
    ///
    /// Properties: ``ValueTemplate/references`` are each non-empty, without whitespace, parentheses or braces,
    /// present in the text, listed once, and are exactly the names a render asks for, in order; they equal the
    /// names an independent scan of the tags finds. A render over values holding `<&>"'` copies the text between
    /// tags as written and each tag as its (transformed) value, never HTML-escaped: the output equals an
    /// independent rendering whenever the template has no comment and no `base64Decode` (which the independent
    /// rendering does not model). A missing value is ``TemplateProblem/unknownFile(_:)`` naming that file; a value
    /// that is not UTF-8 fails only as ``TemplateProblem/notText(file:)`` or ``TemplateProblem/notBase64(file:)``
    /// of a referenced file; no error's text holds a value passed to the render. A refused template is refused
    /// with a non-empty message at a position within the text.
    package static let valueTemplate = FuzzTarget(
        name: "value-template",
        summary: "templates through ValueTemplate (tag scanner and swift-mustache) and its render",
        seeds: ValueTemplateSeeds.templates.map { Array($0.utf8) },
        regressions: ValueTemplateSeeds.regressions.map { Array($0.utf8) },
        dictionary: ValueTemplateSeeds.tokens.map { Array($0.utf8) },
        maxInputLength: 8 * 1024,
        check: checkValueTemplate
    )

    private static func checkValueTemplate(_ bytes: [UInt8]) -> FuzzOutcome {
        let name = "value-template"
        let text = String(decoding: bytes, as: UTF8.self)
        let textBytes = Array(text.utf8)
        let template: ValueTemplate
        do {
            template = try ValueTemplate(text)
        } catch {
            let message = error.description
            require(!message.isEmpty, "a template was refused with an empty message", target: name, input: bytes)
            switch error {
            case .unterminatedTag(let line, let column), .malformedTag(let line, let column), .unsupportedTag(_, let line, let column),
                .unknownTransform(_, let line, let column), .rejectedByMustache(_, let line, let column):
                // The scanner counts lines by `\n`, Mustache by every newline character: the larger count bounds both.
                let lines = text.count(where: \.isNewline) + 1
                require(line >= 1 && line <= lines && column >= 1, "a problem at line \(line), column \(column) of \(lines) lines: \(message)", target: name, input: bytes)
            default:
                require(false, "parsing failed with a render-time problem: \(message)", target: name, input: bytes)
            }
            return .rejected(message)
        }

        let references = template.references
        require(Set(references).count == references.count, "a reference is listed twice: \(references)", target: name, input: bytes)
        for reference in references {
            require(
                !reference.isEmpty && !reference.utf8.contains(where: ValueTemplateSeeds.isExcludedFromNames),
                "the reference \(reference.debugDescription) is empty or has whitespace, a parenthesis or a brace",
                target: name,
                input: bytes
            )
            require(text.contains(reference), "the reference \(reference.debugDescription) is not in the text", target: name, input: bytes)
        }
        let independent = ValueTemplateSeeds.IndependentRendering(textBytes)
        require(independent.names == references, "references \(references), but the tags name \(independent.names)", target: name, input: bytes)

        // Values holding every character HTML escaping would change, and a marker no error may show.
        let values = Dictionary(uniqueKeysWithValues: references.enumerated().map { ($1, ValueTemplateSeeds.value($0)) })
        let showsValues = ValueTemplateSeeds.markers.contains { text.contains($0) }
        var asked: [String] = []
        do {
            let output = try template.render { file in
                asked.append(file)
                return values[file].map { Array($0.utf8) }
            }
            if let expected = independent.output(values) {
                require(
                    output == expected,
                    "rendered \(String(decoding: output, as: UTF8.self).debugDescription) where the tags and text give \(String(decoding: expected, as: UTF8.self).debugDescription)",
                    target: name,
                    input: bytes
                )
            }
        } catch {
            guard case .notBase64(let file) = error, references.contains(file), independent.decodesBase64 else {
                require(false, "a render over text values failed: \(error.description)", target: name, input: bytes)
                return .accepted
            }
            require(showsValues || !ValueTemplateSeeds.showsMarker(error.description), "an error shows a value: \(error.description)", target: name, input: bytes)
        }
        require(asked == references, "the render asked for \(asked), the references are \(references)", target: name, input: bytes)

        // Values that are not UTF-8 text.
        do {
            _ = try template.render { file in
                values[file].map { [0xFF, 0xC3] + Array($0.utf8) + [0xC3] }
            }
        } catch {
            require(showsValues || !ValueTemplateSeeds.showsMarker(error.description), "an error shows a value: \(error.description)", target: name, input: bytes)
            switch error {
            case .notText(let file), .notBase64(let file):
                require(references.contains(file), "a failure names \(file.debugDescription), which is not a reference", target: name, input: bytes)
            default:
                require(false, "a render over binary values failed with \(error.description)", target: name, input: bytes)
            }
        }

        // A value missing for the last reference.
        if let last = references.last {
            do {
                _ = try template.render { $0 == last ? nil : values[$0].map { Array($0.utf8) } }
                require(false, "a render without a value for \(last.debugDescription) succeeded", target: name, input: bytes)
            } catch {
                require(error == .unknownFile(last), "a render without a value for \(last.debugDescription) failed with \(error.description)", target: name, input: bytes)
            }
        }
        return .accepted
    }
}

/// Realistic templates, the values they are rendered over, and an independent reading of their tags.
enum ValueTemplateSeeds {
    /// What each value holds besides the characters HTML escaping changes; no error text may show it.
    static let markers = ["s3cr3t", "S3CR3T", "czNjcjN0", "zNjcjN0", "NjcjN0"]

    /// The value of reference `index`: `<&>"'`, the marker, whitespace around it for `trim`, and the index.
    static func value(_ index: Int) -> String { " <&>\"' s3cr3t-\(index)é\t\n" }

    /// Whether an error text holds a value (its marker, or the marker's base64 in any of its three alignments).
    static func showsMarker(_ message: String) -> Bool {
        let lowered = message.lowercased()
        return markers.contains { lowered.contains($0.lowercased()) } || message.contains("<&>")
    }

    /// A byte a file name cannot hold: whitespace, parentheses and braces.
    static func isExcludedFromNames(_ byte: UInt8) -> Bool {
        [0x20, 0x09, 0x0A, 0x0D, UInt8(ascii: "("), UInt8(ascii: ")"), 0x7B, 0x7D].contains(byte)
    }

    /// The tags of a template the scanner accepted, read again without the production code: each `{{…}}`,
    /// `{{{…}}}` or `{{&…}}` is a name inside transforms, `{{!…}}` a comment.
    struct IndependentRendering {
        /// A piece of the template: text copied as written, or a value with its transforms (outermost first).
        enum Piece {
            case text([UInt8])
            case value(name: String, transforms: [String])
        }

        var pieces: [Piece] = []
        /// The names, each once, in the order they first appear.
        var names: [String] = []
        var hasComment = false
        /// Whether a tag applies `base64Decode`.
        var decodesBase64 = false

        init(_ bytes: [UInt8]) {
            var index = 0
            var text: [UInt8] = []
            while index < bytes.count {
                guard index + 1 < bytes.count, bytes[index] == 0x7B, bytes[index + 1] == 0x7B else {
                    text.append(bytes[index])
                    index += 1
                    continue
                }
                let triple = index + 2 < bytes.count && bytes[index + 2] == 0x7B
                let start = index + (triple ? 3 : 2)
                var close = start
                while close + 1 < bytes.count, !(bytes[close] == 0x7D && bytes[close + 1] == 0x7D) { close += 1 }
                guard close + 1 < bytes.count else { break }  // unterminated: the scanner refuses it
                index = close + (triple ? 3 : 2)
                var raw = bytes[start..<close]
                while let first = raw.first, [0x20, 0x09, 0x0A, 0x0D].contains(first) { raw.removeFirst() }
                while let last = raw.last, [0x20, 0x09, 0x0A, 0x0D].contains(last) { raw.removeLast() }
                var body = String(decoding: raw, as: UTF8.self)
                if !triple, body.hasPrefix("!") {
                    hasComment = true
                    continue
                }
                if !triple, body.hasPrefix("&") { body.removeFirst() }
                var parts = body.split(separator: "(", omittingEmptySubsequences: false).map(String.init)
                var name = parts.removeLast()
                while name.hasSuffix(")") { name.removeLast() }
                if !text.isEmpty { pieces.append(.text(text)) }
                text = []
                pieces.append(.value(name: name, transforms: parts))
                if parts.contains("base64Decode") { decodesBase64 = true }
                if !names.contains(name) { names.append(name) }
            }
            if !text.isEmpty { pieces.append(.text(text)) }
        }

        /// The expected output over `values` (text, each name's value), or `nil` when the template has what
        /// this reading does not model: a comment (Mustache drops a standalone comment's line) or a
        /// `base64Decode`.
        func output(_ values: [String: String]) -> [UInt8]? {
            guard !hasComment, !decodesBase64 else { return nil }
            var out: [UInt8] = []
            for piece in pieces {
                switch piece {
                case .text(let bytes): out += bytes
                case .value(let name, let transforms):
                    guard var value = values[name].map({ Array($0.utf8) }) else { return nil }
                    for transform in transforms.reversed() {
                        switch transform {
                        case "base64Encode": value = Array(Data(value).base64EncodedString().utf8)
                        case "trim":
                            let isSpace: (UInt8) -> Bool = { [0x20, 0x09, 0x0A, 0x0D, 0x0B, 0x0C].contains($0) }
                            while let first = value.first, isSpace(first) { value.removeFirst() }
                            while let last = value.last, isSpace(last) { value.removeLast() }
                        case "uppercased": value = Array(String(decoding: value, as: UTF8.self).uppercased().utf8)
                        case "lowercased": value = Array(String(decoding: value, as: UTF8.self).lowercased().utf8)
                        default: return nil
                        }
                    }
                    out += value
                }
            }
            return out
        }
    }

    static let templates: [String] = [
        "postgres://{{username}}:{{db-pass}}@{{host}}:5432/app?sslmode=require",
        "{\"auths\":{\"registry.example\":{\"auth\":\"{{base64Encode(registry-user)}}\"}}}\n",
        "{{{tls.crt}}}\n{{&ca.pem}}\n{{ name/0 }} then {{name/1}}",
        "user={{ trim(username) }}\nUSER={{uppercased(trim(username))}}\nkey={{lowercased(api-key)}}\n",
        "a {{! a comment }}b\n{{!standalone}}\n{{base64Decode(base64Encode(db-pass))}}",
        "no tags at all\r\n",
    ]

    /// Inputs that once broke a property (found with --seed 1).
    static let regressions: [String] = [
        // A last line of only spaces: swift-mustache's parser dropped it.
        "no tags at a\u{FFFD}l\r\n  - \n  - \n ",
        // A last `{`: swift-mustache's parser refused it ("overflow").
        "\u{2028}{-***s\":{\r\n1_000{bauth**[{\"a\":[[{",
    ]

    static let tokens: [String] = [
        "{{", "}}", "{{{", "}}}", "{{&", "{{!", "{{#", "{{/", "{{^", "{{>", "{{$", "{{=", "{{%", "{{ ", " }}", "(", ")",
        "base64Encode(", "base64Decode(", "trim(", "uppercased(", "lowercased(", "rot13(", "username", "db-pass",
        "tls.crt", "name/0", ".", "/", "-", "\n", "\r\n", "\t", "&lt;", "&amp;", "<", ">", "&", "\"", "'",
        "\\", "{", "}",
    ]
}
