/// Turns one input into a nearby one: a stack of one to a few byte-level edits drawn from the generator.
///
/// The same input, corpus and generator state always give the same output, and the output is never longer than
/// `maxLength`. Edits: bit flips, bytes set to boundary and syntax values, inserted, deleted and duplicated ranges,
/// whole lines repeated or dropped, splices with another corpus entry, dictionary tokens (the common ones below
/// plus the target's), numbers swapped for boundary numbers, very long runs, and deep nesting.
package struct Mutator: Sendable {
    /// Tokens the edits insert or overwrite with.
    package var dictionary: [[UInt8]]
    /// The longest output, in bytes (positive).
    package var maxLength: Int

    /// A mutator; traps when `dictionary` is empty or `maxLength` is not positive.
    package init(dictionary: [[UInt8]], maxLength: Int) {
        precondition(!dictionary.isEmpty, "a mutator needs at least one token")
        precondition(maxLength > 0, "a mutator needs room for at least one byte")
        self.dictionary = dictionary
        self.maxLength = maxLength
    }

    /// Byte values at type, encoding and syntax boundaries.
    package static let interestingBytes: [UInt8] = [
        0x00, 0x01, 0x7F, 0x80, 0xFF, 0xFE, 0xC0, 0xC3, 0xE2, 0xED, 0xF0, 0xF4,
        UInt8(ascii: "\n"), UInt8(ascii: "\r"), UInt8(ascii: "\t"), UInt8(ascii: " "),
        UInt8(ascii: "\""), UInt8(ascii: "'"), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "."),
        UInt8(ascii: ":"), UInt8(ascii: "-"), UInt8(ascii: "#"), UInt8(ascii: "{"), UInt8(ascii: "}"),
        UInt8(ascii: "["), UInt8(ascii: "]"), UInt8(ascii: ","), UInt8(ascii: "&"), UInt8(ascii: "*"),
        UInt8(ascii: "!"), UInt8(ascii: "|"), UInt8(ascii: ">"), UInt8(ascii: "%"), UInt8(ascii: "@"),
        UInt8(ascii: "`"), UInt8(ascii: "="), UInt8(ascii: "0"), UInt8(ascii: "9"),
    ]

    /// Numbers at integer, float and parser boundaries, as text.
    package static let interestingNumbers: [String] = [
        "-1", "0", "1", "-0", "00", "255", "256", "420", "511", "512", "0644", "0777", "01000", "0o644", "0x1ff",
        "2147483647", "2147483648", "-2147483648", "-2147483649", "4294967295", "4294967296",
        "9223372036854775807", "9223372036854775808", "-9223372036854775809", "18446744073709551616",
        "99999999999999999999999999999999999999", "1e309", "-1e309", "1e-400", "0.5", "1.0e2", "-0.0",
        "NaN", ".nan", ".inf", "-.inf", "1_000", "+1", "0b101",
    ]

    /// Tokens every target gets: YAML and JSON punctuation and scalars, path traps, encoding traps.
    package static let commonTokens: [[UInt8]] = {
        let text: [String] = [
            "\"", "'", ":", ": ", "- ", "\n", "\n  ", "\n- ", "|", "|-", ">", "{", "}", "[", "]", ",", "#", "&a ", "*a",
            "<<: *a", "!!str ", "!!binary ", "!!int ", "!!map ", "!!seq ", "!<tag:yaml.org,2002:str> ", "---\n",
            "\n...\n", "%YAML 1.1\n", "~", "null", "true", "false", "yes", "no", "on", "off", "\"\"", "''", "{}", "[]",
            "{\"\":\"\"}", "\\", "\\\"", "\\n", "\\u0000", "\\ud800", "\\udc00\\ud800", "\\uFFFF", "\\x00",
            "\u{0}", "\u{FEFF}", "\u{2028}", "\r\n", "\t", "é", "😀", "\u{10FFFF}",
            "../", "..", "..data", "..data/", "..2024_01_01_00_00_00.000000000", "/", "//", "./", "/etc/", "a/../b",
            ".", " ", "  ",
        ]
        var tokens = text.map { Array($0.utf8) }
        tokens += [[0xC3, 0x28], [0xFF], [0xF0, 0x9F, 0x98], [0xED, 0xA0, 0x80], [0xC0, 0xAF], [0x00, 0x00]]
        tokens += interestingNumbers.map { Array($0.utf8) }
        return tokens
    }()

    private enum Edit: CaseIterable {
        case flipBit, setInterestingByte, setRandomByte, insertRandomBytes, deleteRange, duplicateRange
        case duplicateLine, deleteLine, splice, insertToken, overwriteWithToken, insertTokenAtLineStart
        case appendToken, replaceNumber, longRun, deepNesting, truncate
    }

    /// A mutant of `input`. `corpus` supplies splice partners (it may be empty).
    package func mutate(_ input: [UInt8], corpus: [[UInt8]], using rng: inout SplitMix64) -> [UInt8] {
        var bytes = input
        let edits = rng.chance(1, in: 4) ? rng.within(2...12) : rng.within(1...3)
        for _ in 0..<edits {
            apply(rng.element(of: Edit.allCases), to: &bytes, corpus: corpus, using: &rng)
            if bytes.count > maxLength { bytes.removeLast(bytes.count - maxLength) }
        }
        return bytes
    }

    private func apply(_ edit: Edit, to bytes: inout [UInt8], corpus: [[UInt8]], using rng: inout SplitMix64) {
        if bytes.isEmpty, edit != .splice, edit != .longRun, edit != .deepNesting {
            bytes = rng.element(of: dictionary)
            return
        }
        switch edit {
        case .flipBit:
            bytes[rng.below(bytes.count)] ^= 1 << UInt8(rng.below(8))
        case .setInterestingByte:
            bytes[rng.below(bytes.count)] = rng.element(of: Self.interestingBytes)
        case .setRandomByte:
            bytes[rng.below(bytes.count)] = UInt8(truncatingIfNeeded: rng.next())
        case .insertRandomBytes:
            let count = rng.within(1...8)
            let inserted = (0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            bytes.insert(contentsOf: inserted, at: rng.below(bytes.count + 1))
        case .deleteRange:
            let range = randomRange(in: bytes.count, maxLength: rng.chance(1, in: 8) ? bytes.count : 16, using: &rng)
            bytes.removeSubrange(range)
        case .duplicateRange:
            let range = randomRange(in: bytes.count, maxLength: 64, using: &rng)
            let copy = Array(bytes[range])
            let times = rng.chance(1, in: 8) ? rng.within(2...64) : 1
            let at = rng.below(bytes.count + 1)
            bytes.insert(contentsOf: Self.repeated(copy, length: copy.count * times), at: at)
        case .duplicateLine:
            if let line = randomLine(in: bytes, using: &rng) {
                bytes.insert(contentsOf: bytes[line], at: line.lowerBound)
            }
        case .deleteLine:
            if let line = randomLine(in: bytes, using: &rng) {
                bytes.removeSubrange(line)
            }
        case .splice:
            guard !corpus.isEmpty else { return }
            let partner = rng.element(of: corpus)
            let head = rng.below(bytes.count + 1)
            let tail = rng.below(partner.count + 1)
            bytes = Array(bytes[..<head]) + Array(partner[tail...])
        case .insertToken:
            bytes.insert(contentsOf: rng.element(of: dictionary), at: rng.below(bytes.count + 1))
        case .overwriteWithToken:
            let token = rng.element(of: dictionary)
            let start = rng.below(bytes.count)
            let end = min(bytes.count, start + token.count)
            bytes.replaceSubrange(start..<end, with: token)
        case .insertTokenAtLineStart:
            let token = rng.element(of: dictionary)
            let starts = [0] + Self.newlineOffsets(in: bytes).map { $0 + 1 }
            bytes.insert(contentsOf: token, at: rng.element(of: starts))
        case .appendToken:
            let token = rng.element(of: dictionary)
            if rng.chance(1, in: 2) { bytes.append(contentsOf: token) } else { bytes.insert(contentsOf: token, at: 0) }
        case .replaceNumber:
            let number = Array(rng.element(of: Self.interestingNumbers).utf8)
            if let run = numberRun(in: bytes, from: rng.below(bytes.count)) {
                bytes.replaceSubrange(run, with: number)
            } else {
                bytes.insert(contentsOf: number, at: rng.below(bytes.count + 1))
            }
        case .longRun:
            let unit: [UInt8] = rng.chance(1, in: 2) ? [rng.element(of: Self.interestingBytes)] : rng.element(of: dictionary)
            let count = rng.chance(1, in: 4) ? rng.within(1000...20_000) : rng.within(16...1000)
            bytes.insert(contentsOf: Self.repeated(unit, length: count), at: rng.below(bytes.count + 1))
        case .deepNesting:
            let (open, close) = rng.element(of: Self.nesting)
            let depth = rng.chance(1, in: 4) ? rng.within(500...5000) : rng.within(8...500)
            let opener = Array(open.utf8)
            var nest = Self.repeated(opener, length: opener.count * depth)
            if rng.chance(1, in: 2) {
                let closer = Array(close.utf8)
                nest += Self.repeated(closer, length: closer.count * depth)
            }
            bytes.insert(contentsOf: nest, at: rng.below(bytes.count + 1))
        case .truncate:
            bytes.removeLast(rng.below(bytes.count + 1))
        }
    }

    /// Openers and closers of nested structures in the formats the targets read.
    private static let nesting: [(String, String)] = [
        ("[", "]"), ("{", "}"), ("{\"a\":", "}"), ("[{\"a\":[", "]}]"), ("- ", ""), ("\n  - ", ""), ("{a: ", "}"),
        ("!!seq [", "]"), ("&x [", "]"), ("? ", ""), ("\"\\\"", "\\\"\""),
    ]

    private func randomRange(in count: Int, maxLength: Int, using rng: inout SplitMix64) -> Range<Int> {
        let start = rng.below(count)
        let length = rng.within(1...max(1, min(maxLength, count - start)))
        return start..<(start + length)
    }

    /// A whole line (with its newline) of `bytes`, or nil when there is none.
    private func randomLine(in bytes: [UInt8], using rng: inout SplitMix64) -> Range<Int>? {
        let newlines = Self.newlineOffsets(in: bytes)
        guard !newlines.isEmpty else { return nil }
        let pick = rng.below(newlines.count)
        let start = pick == 0 ? 0 : newlines[pick - 1] + 1
        return start..<(newlines[pick] + 1)
    }

    /// `unit` repeated up to exactly `length` bytes (empty for an empty unit).
    private static func repeated(_ unit: [UInt8], length: Int) -> [UInt8] {
        guard !unit.isEmpty else { return [] }
        var output: [UInt8] = []
        output.reserveCapacity(length)
        while output.count + unit.count <= length {
            output.append(contentsOf: unit)
        }
        output.append(contentsOf: unit[..<(length - output.count)])
        return output
    }

    /// The offsets of every `\n` in `bytes`.
    private static func newlineOffsets(in bytes: [UInt8]) -> [Int] {
        bytes.withUnsafeBufferPointer { buffer in
            var offsets: [Int] = []
            for offset in 0..<buffer.count where buffer[offset] == UInt8(ascii: "\n") {
                offsets.append(offset)
            }
            return offsets
        }
    }

    /// The first run of number characters (digits with a sign, point or exponent) at or after `start`.
    private func numberRun(in bytes: [UInt8], from start: Int) -> Range<Int>? {
        func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
        func isNumberPart(_ byte: UInt8) -> Bool {
            isDigit(byte) || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E")
                || byte == UInt8(ascii: "+") || byte == UInt8(ascii: "-")
        }
        guard let first = bytes[start...].firstIndex(where: isDigit) else { return nil }
        var lower = first
        while lower > 0, bytes[lower - 1] == UInt8(ascii: "-") { lower -= 1 }
        var upper = first
        while upper < bytes.count, isNumberPart(bytes[upper]) { upper += 1 }
        return lower..<upper
    }
}
