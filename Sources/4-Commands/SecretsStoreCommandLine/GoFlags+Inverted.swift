extension GoFlags {
    /// ``normalize(_:booleanFlags:)`` plus booleans whose default is `true` (`--construct-pem-chain`), which
    /// the parser declares with an inversion (`--no-<name>`): Go's `--name=false` (or any false spelling of
    /// ``parseBool(_:)``) becomes `--no-<name>` and `--name=true` becomes `--name`, where dropping the argument,
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
            switch parseBool(argument[argument.index(after: equals)...]) {
            case true?: rewritten.append("--" + name)
            case false?: rewritten.append("--no-" + name)
            case nil: rewritten.append(argument)
            }
        }
        return normalize(rewritten, booleanFlags: booleanFlags)
    }
}
