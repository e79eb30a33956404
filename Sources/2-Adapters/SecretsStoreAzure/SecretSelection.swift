import SecretsStoreCore

/// `objectNameRegex` and `objectTags` of an `objects` entry: which secrets of the vault the entry writes. A
/// secret matches when it is enabled, its name contains a match of the regex (the user anchors it with `^`/`$`),
/// and it carries every listed tag with exactly the listed value. Not an upstream field.
package struct SecretSelector: Sendable, Equatable {
    /// One `key=value` of `objectTags`.
    package struct Tag: Sendable, Equatable {
        /// The tag's name, compared exactly.
        package var key: String
        /// The tag's value, compared exactly (may be empty).
        package var value: String

        /// The tag `key` with `value`.
        package init(key: String, value: String) {
            self.key = key
            self.value = value
        }
    }

    /// `objectNameRegex` in Swift `Regex` syntax; `nil` when the names are not filtered.
    package var namePattern: String?
    /// `objectTags`, in the order written; empty when the tags are not filtered.
    package var tags: [Tag]

    /// A selector; at least one of `namePattern` and `tags` should be given (the parser refuses neither).
    package init(namePattern: String?, tags: [Tag]) {
        self.namePattern = namePattern
        self.tags = tags
    }

    /// The selector compiled for matching many names (the regex is compiled once). `nil` only when the pattern
    /// does not compile, which the parser has already refused.
    package func matcher() -> Matcher? {
        guard let namePattern else { return Matcher(regex: nil, tags: tags) }
        guard let regex = try? Regex(namePattern) else { return nil }
        return Matcher(regex: regex, tags: tags)
    }

    /// Matches names and tags against one selector. Used where it is made: it holds a compiled `Regex`.
    package struct Matcher {
        let regex: Regex<AnyRegexOutput>?
        let tags: [Tag]

        /// Whether a secret named `name` carrying `tags` is selected (its `enabled` is the caller's to check).
        package func matches(name: String, tags secretTags: [String: String]) -> Bool {
            for tag in tags where secretTags[tag.key] != tag.value { return false }
            guard let regex else { return true }
            return (try? regex.firstMatch(in: name)) != nil
        }
    }

    /// A text that tells this selector apart from every other (for cache bookkeeping), with no separator
    /// ambiguity: each part is length-prefixed.
    var identity: String {
        var parts = [namePattern.map { "r\($0)" } ?? "-"]
        for tag in tags { parts += ["k\(tag.key)", "v\(tag.value)"] }
        return parts.map { "\($0.utf8.count):\($0)" }.joined()
    }
}

/// One field of `objectJSONFields` (`field[:fileName]`, a nested field as `a.b`). Not an upstream field.
package struct JSONField: Sendable, Equatable {
    /// The path from the secret's JSON object: `["a", "b"]` is field `b` of the object in field `a`.
    package var path: [String]
    /// The file it is written to: the text after `:`, else the path's last segment.
    package var fileName: String

    /// The field at `path`, written to `fileName`.
    package init(path: [String], fileName: String) {
        self.path = path
        self.fileName = fileName
    }

    /// The path as written (`a.b`).
    package var dottedPath: String { path.joined(separator: ".") }
}

extension AzureMountParameters {
    /// What is wrong with a selector (an `objects` entry with `objectNameRegex` or `objectTags`). Each case names
    /// its field; no message repeats a value the user wrote.
    package enum SelectorProblem: Error, Sendable, Equatable {
        /// `objectNameRegex` does not compile as a Swift `Regex`.
        case regexDoesNotCompile
        /// Tag number `tag` (from 1) of `objectTags` is not `key=value` (no `=`, or an empty key).
        case tagNotKeyValue(tag: Int)
        /// The entry also sets `field` (`objectName`, `objectAlias`, `objectVersion`, `objectVersionHistory` or
        /// `objectJSONFields`), which a selector cannot have: each match is its own latest secret, under its name.
        case conflictingField(String)
        /// `objectType` is not `secret`: selectors list secrets only.
        case notSecret
        /// `objectNameRegex` and `objectTags` are both empty.
        case empty

        /// The field the problem is in.
        package var field: String {
            switch self {
            case .regexDoesNotCompile: "objectNameRegex"
            case .tagNotKeyValue: "objectTags"
            case .conflictingField(let field): field
            case .notSecret: "objectType"
            case .empty: "objectNameRegex"
            }
        }

        /// What is wrong, naming the field.
        package var message: String {
            switch self {
            case .regexDoesNotCompile:
                "objectNameRegex does not compile as a regular expression (Swift Regex syntax)"
            case .tagNotKeyValue(let tag):
                "objectTags: tag \(tag) is not key=value (write objectTags: \"key=value,key2=value2\")"
            case .conflictingField(let field):
                "\(field) cannot be used with objectNameRegex or objectTags: each selected secret is written under its own name, at its latest version"
            case .notSecret:
                "objectType must be secret with objectNameRegex or objectTags: selectors list secrets only"
            case .empty:
                "objectNameRegex and objectTags are both empty: set at least one"
            }
        }
    }

    /// What is wrong with an entry's `objectJSONFields`. Each case names its field; no message repeats a value.
    package enum JSONFieldsProblem: Error, Sendable, Equatable {
        /// Field number `field` (from 1) has an empty path segment (`a..b`, `.a`, an empty item).
        case emptySegment(field: Int)
        /// Field number `field` is written to an empty, absolute or climbing (`..`) file name.
        case invalidFileName(field: Int)
        /// Field number `field` is written to `fileName`, which another file of the class is written to:
        /// another field of this entry, the entry's `objectAlias`, or (`alsoWrittenBy`) another entry.
        case duplicateFileName(field: Int, fileName: String, alsoWrittenBy: Int?)
        /// `objectType` is not `secret`: only a secret's value can be JSON.
        case notSecret
        /// `objectVersionHistory` above 1 is set too.
        case withVersionHistory

        /// The field the problem is in.
        package var field: String {
            switch self {
            case .emptySegment, .invalidFileName, .duplicateFileName: "objectJSONFields"
            case .notSecret: "objectType"
            case .withVersionHistory: "objectVersionHistory"
            }
        }

        /// What is wrong, naming the field.
        package var message: String {
            switch self {
            case .emptySegment(let field):
                "objectJSONFields: field \(field) has an empty path segment (write field[:fileName], a nested field as a.b)"
            case .invalidFileName(let field):
                "objectJSONFields: field \(field) is written to a file name that is empty, absolute or contains '..'"
            case .duplicateFileName(let field, let fileName, let other?):
                "objectJSONFields: field \(field) is written to \(fileName), which objects[\(other)] also writes: give it another name with field:fileName"
            case .duplicateFileName(let field, let fileName, nil):
                "objectJSONFields: field \(field) is written to \(fileName), which this entry also writes: give it another name with field:fileName"
            case .notSecret:
                "objectJSONFields needs objectType: secret"
            case .withVersionHistory:
                "objectJSONFields cannot be used with objectVersionHistory above 1"
            }
        }
    }

    /// The selector of an entry whose YAML has `objectNameRegex` or `objectTags` (even empty); `nil` when it has
    /// neither. Checks only the two fields; the caller checks the fields a selector cannot have.
    static func parseSelector(regex: String?, tags: String?) throws(SelectorProblem) -> SecretSelector? {
        guard regex != nil || tags != nil else { return nil }
        let pattern = (regex ?? "").trimmingWhitespace()
        if !pattern.isEmpty {
            do { _ = try Regex(pattern) } catch { throw .regexDoesNotCompile }
        }
        var parsed: [SecretSelector.Tag] = []
        let items = (tags ?? "").split(separator: ",", omittingEmptySubsequences: false).map { String($0).trimmingWhitespace() }
        for (position, item) in items.enumerated() where !item.isEmpty {
            guard let equals = item.firstIndex(of: "=") else { throw .tagNotKeyValue(tag: position + 1) }
            let key = String(item[..<equals]).trimmingWhitespace()
            guard !key.isEmpty else { throw .tagNotKeyValue(tag: position + 1) }
            parsed.append(.init(key: key, value: String(item[item.index(after: equals)...]).trimmingWhitespace()))
        }
        if pattern.isEmpty && parsed.isEmpty { throw .empty }
        return SecretSelector(namePattern: pattern.isEmpty ? nil : pattern, tags: parsed)
    }

    /// The fields of `objectJSONFields` (`field[:fileName],a.b`), in order; their file names are unique, and
    /// none is `alias` (the file the whole secret goes to, when set).
    static func parseJSONFields(_ text: String, alias: String) throws(JSONFieldsProblem) -> [JSONField] {
        var fields: [JSONField] = []
        var taken: Set<String> = alias.isEmpty ? [] : [alias]
        for (position, item) in text.split(separator: ",", omittingEmptySubsequences: false).enumerated() {
            let number = position + 1
            let parts = item.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            let path = parts[0].split(separator: ".", omittingEmptySubsequences: false).map { String($0).trimmingWhitespace() }
            if path.contains(where: \.isEmpty) { throw .emptySegment(field: number) }
            let fileName = parts.count > 1 ? String(parts[1]).trimmingWhitespace() : path[path.count - 1]
            if fileName.isEmpty || fileName.hasPrefix("/") || fileName.contains("..") { throw .invalidFileName(field: number) }
            guard taken.insert(fileName).inserted else {
                throw .duplicateFileName(field: number, fileName: fileName, alsoWrittenBy: nil)
            }
            fields.append(JSONField(path: path, fileName: fileName))
        }
        return fields
    }

    /// Refuses a file name an entry's `objectJSONFields` writes that another entry also writes (its alias or
    /// name, or its own JSON fields). Names two other entries share are left to the driver's own path checks,
    /// as before this field existed.
    static func checkJSONFieldFileNames(_ objects: [KeyVaultObject]) throws(Invalid) {
        var writers: [String: [Int]] = [:]
        for (index, object) in objects.enumerated() where object.selector == nil {
            for name in fixedFileNames(of: object) { writers[name, default: []].append(index) }
        }
        for (index, object) in objects.enumerated() {
            for (position, field) in object.jsonFields.enumerated() {
                guard let other = writers[field.fileName]?.first(where: { $0 != index }) else { continue }
                throw .invalidJSONFields(
                    ObjectReference(index: index, type: object.type.rawValue, name: object.name, version: object.version),
                    .duplicateFileName(field: position + 1, fileName: field.fileName, alsoWrittenBy: other)
                )
            }
        }
    }

    /// The file names an entry naming one object writes (the top level of its files): its JSON fields' files and
    /// its alias when it has JSON fields; else its alias or name.
    static func fixedFileNames(of object: KeyVaultObject) -> [String] {
        guard !object.jsonFields.isEmpty else { return [object.fileName] }
        return object.jsonFields.map(\.fileName) + (object.alias.isEmpty ? [] : [object.alias])
    }

    /// `maxSelectedObjects`: how many secrets the class's selectors may match in all.
    package static let maxSelectedObjectsRange = 1...1000
    /// `maxSelectedObjects` when the class does not set it.
    package static let defaultMaxSelectedObjects = 100

    /// Parses `maxSelectedObjects` (trimmed; empty for the default).
    static func parseMaxSelectedObjects(_ text: String) throws(Invalid) -> Int {
        guard !text.isEmpty else { return defaultMaxSelectedObjects }
        guard let value = Int(text), maxSelectedObjectsRange.contains(value) else { throw .maxSelectedObjectsOutOfRange }
        return value
    }
}
