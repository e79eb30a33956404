import Yams

/// The `fileTemplates` parameter of a SecretProviderClass: a YAML map of file name → template, each writing a
/// composed file into the volume beside the provider's files.
///
/// ```yaml
/// fileTemplates: |
///   db.url: "postgres://{{username}}:{{db-pass}}@{{host}}/app"
///   app.ini: |
///     [db]
///     password = {{trim(db-pass)}}
/// ```
package enum FileTemplatesParameter {
    /// The parameter's key in `spec.parameters`.
    package static let key = "fileTemplates"

    /// The entries of `parameters[key]`, sorted by file name, each template as written (``ValueTemplate``
    /// parses it); none when the parameter is absent or blank. Throws ``TemplateProblem/notAMapOfStrings``
    /// (field ``TemplateField/fileTemplates``) when it is not a YAML map of strings. File names are not checked
    /// here (the volume's path rules belong to the writer's side).
    package static func entries(_ parameters: [String: String]) throws(TemplateError) -> [(name: String, template: String)] {
        guard let text = parameters[key], !text.allSatisfy({ $0.isWhitespace }) else { return [] }
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch {
            // Yams's message quotes the offending line: it is left out.
            throw TemplateError(.fileTemplates, .notAMapOfStrings)
        }
        guard let root else { return [] }
        guard let mapping = root.mapping else { throw TemplateError(.fileTemplates, .notAMapOfStrings) }
        var entries: [(name: String, template: String)] = []
        var seen: Set<String> = []
        for (keyNode, valueNode) in mapping {
            guard let name = keyNode.scalar?.string, let scalar = valueNode.scalar, !isNull(scalar), seen.insert(name).inserted else {
                throw TemplateError(.fileTemplates, .notAMapOfStrings)
            }
            entries.append((name, scalar.string))
        }
        return entries.sorted { $0.name < $1.name }
    }

    /// A plain `~`, `null` or empty value: YAML's null, not a template.
    private static func isNull(_ scalar: Node.Scalar) -> Bool {
        scalar.style == .plain && ["", "~", "null", "Null", "NULL"].contains(scalar.string)
    }
}
