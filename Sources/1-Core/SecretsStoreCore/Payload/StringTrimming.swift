extension String {
    /// The string without the leading and trailing characters for which `predicate` is true; the middle is
    /// untouched (Go's `strings.TrimFunc`). All of them go: `"[[x]]"` trimmed of brackets is `"x"`.
    package func trimming(where predicate: (Character) -> Bool) -> String {
        guard let first = firstIndex(where: { !predicate($0) }), let last = lastIndex(where: { !predicate($0) }) else {
            return ""
        }
        return String(self[first...last])
    }

    /// The string without leading and trailing characters from `characters` (Go's `strings.Trim`).
    package func trimming(_ characters: Set<Character>) -> String {
        trimming(where: characters.contains)
    }

    /// The string without leading and trailing white space (Go's `strings.TrimSpace`).
    package func trimmingWhitespace() -> String {
        trimming(where: \.isWhitespace)
    }
}
