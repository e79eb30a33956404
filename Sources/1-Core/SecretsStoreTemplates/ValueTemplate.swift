import Mustache

/// A Mustache template over the files of a SecretProviderClass: `{{name}}` is the value of file `name`
/// (`{{{name}}}` and `{{&name}}` too), `{{base64Encode(name)}}` a ``ValueTransform`` of it, `{{! text}}` a
/// comment; everything else is copied as it is. Parsed and rendered by hummingbird-project/swift-mustache.
///
/// Promises:
/// - a file name is matched exactly, whatever it holds: dots (`tls.crt`), dashes (`db-pass`), slashes
///   (`name/0` of a version history); only whitespace, parentheses and braces cannot be in a name;
/// - values are never HTML-escaped;
/// - ``references`` lists every file the template names, found without values, so a template naming a file the
///   class does not produce is an error (``TemplateProblem/unknownFile(_:)``) and never renders as empty;
/// - sections, partials, blocks, delimiter changes and pragmas are refused (``TemplateProblem/unsupportedTag(_:line:column:)``):
///   a template composes values, it does not branch;
/// - errors name files, transforms and positions; never a value, the output or the template's text.
package struct ValueTemplate: Sendable {
    /// The files the template names, each once, in the order they first appear.
    package let references: [String]
    /// The template as Mustache parsed it: each file name replaced by its slot (`f0`, `f1`…, the index in
    /// ``references``), behind a pragma that turns HTML escaping off.
    private let mustache: MustacheTemplate
    /// The end of the template that Mustache's parser would drop or refuse, kept out of the text given to it and
    /// appended to every output: a last line of only spaces and tabs (dropped), a `{` as the last character
    /// (refused).
    private let trailingText: [UInt8]

    /// Parses `text`; throws the first problem found, in the order of the text.
    package init(_ text: String) throws(TemplateProblem) {
        let scanned = try Scanner.rewrite(text)
        references = scanned.references
        trailingText = scanned.trailingText
        do {
            mustache = try MustacheTemplate(string: scanned.text)
        } catch let error as MustacheTemplate.ParserError {
            // The pragma's line comes first: the template's own lines start at the second.
            throw .rejectedByMustache("\(error.error)", line: max(1, error.context.lineNumber - 1), column: error.context.columnNumber)
        } catch {
            throw .rejectedByMustache("\(error)", line: 1, column: 1)
        }
    }

    /// The files among ``references`` that `isKnown` does not know, in order.
    package func unknownReferences(_ isKnown: (String) -> Bool) -> [String] {
        references.filter { !isKnown($0) }
    }

    /// The template rendered with `value(name)` as the value of file `name`. Throws
    /// ``TemplateProblem/unknownFile(_:)`` for the first reference `value` has no value for,
    /// ``TemplateProblem/notBase64(file:)`` for a `base64Decode` of a value that is not base64 and
    /// ``TemplateProblem/notText(file:)`` for a value written into the output (or given to a text transform)
    /// that is not UTF-8.
    package func render(_ value: (String) -> [UInt8]?) throws(TemplateProblem) -> [UInt8] {
        var values: [String: [UInt8]] = [:]
        for (index, name) in references.enumerated() {
            guard let bytes = value(name) else { throw .unknownFile(name) }
            values[Self.slot(index)] = bytes
        }
        let recorder = FailureRecorder()
        let root = SlotValues(values: values, names: references, recorder: recorder)
        let output = mustache.render(root)
        if let failure = recorder.first { throw failure }
        return Array(output.utf8) + trailingText
    }

    /// The name a reference has in the text given to Mustache.
    static func slot(_ index: Int) -> String { "f\(index)" }
}

/// The root of the render: slot name → the value of the file it stands for.
private struct SlotValues: MustacheParent {
    let values: [String: [UInt8]]
    let names: [String]
    let recorder: FailureRecorder

    func child(named name: String) -> Any? {
        guard let bytes = values[name], name.first == "f", let index = Int(name.dropFirst()), names.indices.contains(index) else { return nil }
        return SlotValue(bytes: bytes, file: names[index], recorder: recorder)
    }
}

/// One file's value (maybe transformed) as Mustache sees it: rendered as UTF-8 text, transformed by
/// ``ValueTransform``. A failure cannot be thrown through the renderer: it is recorded and renders as nothing,
/// and ``ValueTemplate/render(_:)`` throws it afterwards.
private struct SlotValue: MustacheCustomRenderable, MustacheTransformable {
    let bytes: [UInt8]
    let file: String
    let recorder: FailureRecorder

    var renderText: String {
        guard let text = String(validating: bytes, as: UTF8.self) else {
            recorder.record(.notText(file: file))
            return ""
        }
        return text
    }

    var isNull: Bool { false }

    func transform(_ name: String) -> Any? {
        // The scanner lets only known transforms through.
        guard let transform = ValueTransform(rawValue: name) else { return nil }
        do {
            return SlotValue(bytes: try transform.apply(to: bytes), file: file, recorder: recorder)
        } catch {
            switch error {
            case .notBase64: recorder.record(.notBase64(file: file))
            case .notText: recorder.record(.notText(file: file))
            }
            return nil
        }
    }
}

/// The first failure of one render. A class only because the renderer hands values around as `Any`: it lives
/// for one synchronous ``ValueTemplate/render(_:)`` call on one thread and is never shared across tasks.
private final class FailureRecorder {
    private(set) var first: TemplateProblem?

    func record(_ problem: TemplateProblem) {
        if first == nil { first = problem }
    }
}

/// Finds the tags of a template (default delimiters `{{ }}`, which cannot be changed), checks them and replaces
/// each file name by its slot, so that Mustache never parses a file name itself: its name syntax has no `/`
/// and reads `.` as a nested lookup.
enum Scanner {
    /// Turns HTML escaping off for the whole template; on a line of its own, which Mustache then drops.
    static let textPragma = "{{% CONTENT_TYPE: TEXT}}\n"

    /// `text` with every file name replaced by its slot, behind ``textPragma``, and the names in order; a last `{`
    /// and a last line of only spaces and tabs are cut off the text and returned on their own (Mustache's parser
    /// refuses the first and drops the second).
    static func rewrite(_ text: String) throws(TemplateProblem) -> (text: String, references: [String], trailingText: [UInt8]) {
        let bytes = Array(text.utf8)
        var output: [UInt8] = Array(textPragma.utf8)
        var references: [String] = []
        var slots: [String: Int] = [:]
        var index = 0
        while let open = find([0x7B, 0x7B], in: bytes, from: index) {
            output += bytes[index..<open]
            let (line, column) = position(of: open, in: bytes)
            var bodyStart = open + 2
            let triple = bodyStart < bytes.count && bytes[bodyStart] == 0x7B
            if triple { bodyStart += 1 }
            guard let close = find([0x7D, 0x7D], in: bytes, from: bodyStart) else {
                throw .unterminatedTag(line: line, column: column)
            }
            var end = close + 2
            if triple {
                guard end < bytes.count, bytes[end] == 0x7D else { throw .unterminatedTag(line: line, column: column) }
                end += 1
            }
            var body = bytes[bodyStart..<close]
            while let first = body.first, isSpace(first) { body.removeFirst() }
            if !triple, let sigil = body.first {
                switch sigil {
                case UInt8(ascii: "!"):
                    output += bytes[open..<end]  // a comment: Mustache drops it
                    index = end
                    continue
                case UInt8(ascii: "&"):
                    body.removeFirst()
                case UInt8(ascii: "#"), UInt8(ascii: "^"), UInt8(ascii: "/"):
                    throw .unsupportedTag(.section, line: line, column: column)
                case UInt8(ascii: ">"), UInt8(ascii: "<"):
                    throw .unsupportedTag(.partial, line: line, column: column)
                case UInt8(ascii: "$"):
                    throw .unsupportedTag(.block, line: line, column: column)
                case UInt8(ascii: "="):
                    throw .unsupportedTag(.delimiterChange, line: line, column: column)
                case UInt8(ascii: "%"):
                    throw .unsupportedTag(.pragma, line: line, column: column)
                default:
                    break
                }
            }
            let (transforms, name) = try expression(body, line: line, column: column)
            let slot: Int
            if let known = slots[name] {
                slot = known
            } else {
                slot = references.count
                slots[name] = slot
                references.append(name)
            }
            // Every value tag becomes a plain `{{…}}`: the pragma keeps it unescaped.
            var tag = "{{"
            for transform in transforms { tag += transform.rawValue + "(" }
            tag += ValueTemplate.slot(slot) + String(repeating: ")", count: transforms.count) + "}}"
            output += tag.utf8
            index = end
        }
        output += bytes[index...]
        var trailingText: [UInt8] = []
        if output.last == 0x7B {
            trailingText = [output.removeLast()]
        }
        // The pragma's line ends with a newline, so a run of blanks always has a byte before it.
        let blanks = output.reversed().prefix { $0 == 0x20 || $0 == 0x09 }.count
        if blanks > 0, output[output.count - 1 - blanks] == 0x0A {
            trailingText = output.suffix(blanks) + trailingText
            output.removeLast(blanks)
        }
        return (String(decoding: output, as: UTF8.self), references, trailingText)
    }

    /// `transform(transform(name))`, whitespace around it allowed: the transforms outermost first, and the name.
    private static func expression(_ body: ArraySlice<UInt8>, line: Int, column: Int) throws(TemplateProblem) -> ([ValueTransform], String) {
        var body = body
        while let last = body.last, isSpace(last) { body.removeLast() }
        var transforms: [ValueTransform] = []
        var rest = body
        while let paren = rest.firstIndex(of: UInt8(ascii: "(")) {
            let word = rest[rest.startIndex..<paren]
            guard !word.isEmpty, word.allSatisfy(isNameByte) else { throw .malformedTag(line: line, column: column) }
            let transformName = String(decoding: word, as: UTF8.self)
            guard let transform = ValueTransform(rawValue: transformName) else {
                throw .unknownTransform(transformName, line: line, column: column)
            }
            transforms.append(transform)
            rest = rest[(paren + 1)...]
        }
        // The name, then exactly one `)` per transform.
        let closing = rest.firstIndex(of: UInt8(ascii: ")")) ?? rest.endIndex
        let name = rest[rest.startIndex..<closing]
        let parens = rest[closing...]
        guard !name.isEmpty, name.allSatisfy(isNameByte), parens.count == transforms.count,
            parens.allSatisfy({ $0 == UInt8(ascii: ")") })
        else { throw .malformedTag(line: line, column: column) }
        return (transforms, String(decoding: name, as: UTF8.self))
    }

    /// A byte that may be in a file name here: anything but whitespace, parentheses and braces.
    private static func isNameByte(_ byte: UInt8) -> Bool {
        !isSpace(byte) && byte != UInt8(ascii: "(") && byte != UInt8(ascii: ")") && byte != 0x7B && byte != 0x7D
    }

    private static func isSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D
    }

    private static func find(_ needle: [UInt8], in bytes: [UInt8], from start: Int) -> Int? {
        guard needle.count <= bytes.count, start <= bytes.count - needle.count else { return nil }
        var index = start
        while index <= bytes.count - needle.count {
            if bytes[index] == needle[0], bytes[index + 1] == needle[1] { return index }
            index += 1
        }
        return nil
    }

    /// 1-based line and column (in bytes) of `offset`.
    private static func position(of offset: Int, in bytes: [UInt8]) -> (line: Int, column: Int) {
        var line = 1
        var lineStart = 0
        for index in 0..<offset where bytes[index] == 0x0A {
            line += 1
            lineStart = index + 1
        }
        return (line, offset - lineStart + 1)
    }
}
