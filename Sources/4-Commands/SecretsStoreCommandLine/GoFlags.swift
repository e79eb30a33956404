/// Go's `flag` package accepts forms that swift-argument-parser does not: `-endpoint=x` (one dash),
/// `--enable-secret-rotation=true|false`, and `-v=5`. The upstream chart and manifests use them, so the
/// command line is rewritten into the parser's forms before parsing. As in Go, the last occurrence of a flag wins
/// (a chart's flag followed by a user's override).
package enum GoFlags {
    /// Rewrites `arguments` (without the program name). `booleanFlags` are the names of flags without a value.
    package static func normalize(_ arguments: [String], booleanFlags: Set<String>) -> [String] {
        var result: [String] = []
        var passthrough = false
        for argument in arguments {
            if passthrough || argument == "--" || !argument.hasPrefix("-") || argument == "-" {
                passthrough = passthrough || argument == "--"
                result.append(argument)
                continue
            }
            var body = argument.drop(while: { $0 == "-" })
            let value: Substring?
            if let equals = body.firstIndex(of: "=") {
                value = body[body.index(after: equals)...]
                body = body[..<equals]
            } else {
                value = nil
            }
            let name = String(body)
            // Single-letter flags keep one dash unless they carry a value: `-v=5` becomes `--v=5`.
            let dashed = name.count == 1 && value == nil ? "-" + name : "--" + name
            if booleanFlags.contains(name), let value {
                switch parseBool(value) {
                case true?: result.append(dashed)
                // Go's flag package lets the last occurrence win: `--x=true … --x=false` is off.
                case false?: result.removeAll { $0 == dashed }
                case nil: result.append(argument)
                }
            } else if let value {
                result.append(dashed + "=" + value)
            } else {
                result.append(dashed)
            }
        }
        return result
    }

    /// A boolean flag's value as Go's `strconv.ParseBool` (which the `flag` package uses) reads it: `1`, `t`,
    /// `T`, `TRUE`, `true`, `True` are true; `0`, `f`, `F`, `FALSE`, `false`, `False` are false; anything else
    /// (`tRuE`, `yes`) is `nil`. The one reading of a Go boolean on the command line.
    package static func parseBool<Text: StringProtocol>(_ text: Text) -> Bool? {
        switch text {
        case "1", "t", "T", "TRUE", "true", "True": true
        case "0", "f", "F", "FALSE", "false", "False": false
        default: nil
        }
    }
}
