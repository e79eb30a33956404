extension GoFlags {
    /// ``normalize(_:booleanFlags:)`` plus booleans whose default is `true` (`--construct-pem-chain`), which
    /// the parser declares with an inversion (`--no-<name>`): Go's `--name=false` (or `-name=0`, `f`, `F`,
    /// `FALSE`, `False`) becomes `--no-<name>` and `--name=true` becomes `--name`, where dropping the argument,
    /// as for a default-`false` flag, would leave the default in force. A bare `--name` stays `--name`, and
    /// anything after `--` is left alone.
    package static func normalize(
        _ arguments: [String],
        booleanFlags: Set<String>,
        invertedBooleanFlags: Set<String>
    ) -> [String] {
        var rewritten: [String] = []
        var passthrough = false
        for argument in arguments {
            passthrough = passthrough || argument == "--"
            guard !passthrough, argument.hasPrefix("-"), let equals = argument.firstIndex(of: "=") else {
                rewritten.append(argument)
                continue
            }
            let name = String(argument[..<equals].drop(while: { $0 == "-" }))
            guard invertedBooleanFlags.contains(name) else {
                rewritten.append(argument)
                continue
            }
            switch argument[argument.index(after: equals)...] {
            case "true", "TRUE", "True", "t", "T", "1": rewritten.append("--" + name)
            case "false", "FALSE", "False", "f", "F", "0": rewritten.append("--no-" + name)
            default: rewritten.append(argument)
            }
        }
        return normalize(rewritten, booleanFlags: booleanFlags)
    }
}
