/// What is wrong with a template, or with the fields of a SecretProviderClass that hold templates.
///
/// Every message names files, transforms, tags' positions and field names; none holds a file's value, a
/// template's output or the template's text.
package enum TemplateProblem: Error, Sendable, Equatable, CustomStringConvertible {
    /// A `{{` with no `}}` after it (or a `{{{` with no `}}}`).
    case unterminatedTag(line: Int, column: Int)
    /// A tag that is neither a file name nor a transform of one (`{{}}`, `{{a b}}`, `{{trim(a}}`).
    case malformedTag(line: Int, column: Int)
    /// A Mustache tag templates here do not support: sections, partials, blocks, delimiter changes, pragmas.
    case unsupportedTag(TagKind, line: Int, column: Int)
    /// A transform that is not one of ``ValueTransform``.
    case unknownTransform(String, line: Int, column: Int)
    /// The template names a file the class does not produce.
    case unknownFile(String)
    /// `base64Decode` was given a value (of the named file) that is not base64.
    case notBase64(file: String)
    /// A value (of the named file, maybe transformed) that is not UTF-8 text was to be written into the output.
    case notText(file: String)
    /// The Mustache parser refused what the checks here let through (its error's name; a line of the template).
    case rejectedByMustache(String, line: Int, column: Int)
    /// A `secretObjects[].data[]` entry with both `objectName` and `template`.
    case objectNameAndTemplate
    /// A `secretObjects[].data[]` entry with neither `objectName` nor `template`.
    case neitherObjectNameNorTemplate
    /// The `fileTemplates` parameter is not a YAML map of file name to template (a string each).
    case notAMapOfStrings
    /// A `fileTemplates` file name that is not a valid path in the volume; the reason says which rule.
    case invalidFileName(reason: String)
    /// A `fileTemplates` file name another file of the volume uses: the same path, or one inside the other
    /// (`name` and `name/0`).
    case fileNameTaken
    /// The provider returned no files (it writes them into the volume itself), so none can be composed beside
    /// them.
    case providerWritesItsOwnFiles

    /// The Mustache tags templates here refuse, by what the tag's first character makes it.
    package enum TagKind: String, Sendable, Equatable {
        /// `{{#name}}`, `{{^name}}`, `{{/name}}`.
        case section = "a section"
        /// `{{>name}}`, `{{<name}}`.
        case partial = "a partial"
        /// `{{$name}}`.
        case block = "a block"
        /// `{{=<% %>=}}`.
        case delimiterChange = "a delimiter change"
        /// `{{%PRAGMA}}`.
        case pragma = "a pragma"
    }

    /// One sentence, without a value, an output or the template's text.
    package var description: String {
        switch self {
        case .unterminatedTag(let line, let column):
            "the tag opened at line \(line), column \(column) is not closed (no matching }})"
        case .malformedTag(let line, let column):
            "the tag at line \(line), column \(column) is not a file name or a transform of one, such as {{name}} or {{base64Encode(name)}}"
        case .unsupportedTag(let kind, let line, let column):
            "the tag at line \(line), column \(column) is \(kind.rawValue), which these templates do not support (only {{name}}, {{{name}}}, {{&name}}, transforms and {{! comments}})"
        case .unknownTransform(let name, let line, let column):
            "unknown transform \"\(name)\" at line \(line), column \(column) (known: \(ValueTransform.allCases.map(\.rawValue).joined(separator: ", ")))"
        case .unknownFile(let name):
            "the template names \"\(name)\", which is not a file of this class"
        case .notBase64(let file):
            "base64Decode: the value of \"\(file)\" is not base64"
        case .notText(let file):
            "the value of \"\(file)\" is not UTF-8 text, and a template writes text (use base64Encode(\(file)))"
        case .rejectedByMustache(let error, let line, let column):
            "the Mustache parser refused the template at line \(line), column \(column) (\(error))"
        case .objectNameAndTemplate:
            "has both objectName and template; give one"
        case .neitherObjectNameNorTemplate:
            "has neither objectName nor template; give one"
        case .notAMapOfStrings:
            "must be a YAML map of file name to template, each template a string"
        case .invalidFileName(let reason):
            "is not a valid file name in the volume: \(reason)"
        case .fileNameTaken:
            "names a path another file of the volume already uses (the same path, or one inside the other); give the composed file another name"
        case .providerWritesItsOwnFiles:
            "cannot be written: the provider returned no files (it writes its files into the volume itself)"
        }
    }

    /// Whether the problem is in the class as written (found without asking the provider), rather than in what
    /// the provider returned (a file the class no longer produces, a value that is not base64 or not text).
    package var isInTheClassAsWritten: Bool {
        switch self {
        case .unknownFile, .notBase64, .notText, .fileNameTaken, .providerWritesItsOwnFiles: false
        default: true
        }
    }
}

/// Which template of a SecretProviderClass a ``TemplateProblem`` is in.
package enum TemplateField: Sendable, Equatable, Hashable {
    /// The `template` (or the `objectName`/`template` pair) of the `secretObjects` entry `secretName`'s data
    /// item `key`.
    case secretObjectKey(secretName: String, key: String)
    /// The `fileTemplates` parameter as a whole.
    case fileTemplates
    /// The `fileTemplates` entry writing file `name`.
    case fileTemplate(name: String)

    /// The field's path, e.g. `spec.secretObjects[db].data[DATABASE_URL]` (by Secret name and key, not by
    /// index) or `spec.parameters.fileTemplates[dsn]`.
    package var path: String {
        switch self {
        case .secretObjectKey(let secretName, let key): "spec.secretObjects[\(secretName)].data[\(key)]"
        case .fileTemplates: "spec.parameters.fileTemplates"
        case .fileTemplate(let name): "spec.parameters.fileTemplates[\(name)]"
        }
    }
}

/// A ``TemplateProblem`` in a named template of a class: what `render`, the node plugin and the sync controller
/// report. Its description names the field and the problem, never a value or an output.
package struct TemplateError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Which template.
    package var field: TemplateField
    /// What is wrong.
    package var problem: TemplateProblem

    /// A problem in `field`.
    package init(_ field: TemplateField, _ problem: TemplateProblem) {
        self.field = field
        self.problem = problem
    }

    /// `<field path>: <problem>`.
    package var description: String { "\(field.path): \(problem)" }
}
