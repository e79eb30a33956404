import SecretsStoreTemplates

/// The templates of one SecretProviderClass: its `fileTemplates` parameter (files composed into the volume) and
/// the `template` of its `secretObjects[].data[]` entries (Secret keys composed from the volume's files).
///
/// Promises:
/// - a `fileTemplates` template sees the files the provider returned; a Secret key's template sees those and
///   the composed files (so does an `objectName`);
/// - composed files are written with the provider's files in the same atomic swap, with mode
///   ``fileMode``, and refreshed whenever the provider's files are;
/// - a template one of whose files is a missing optional object is left out, as that file is: no composed
///   file, no Secret key;
/// - every error is a ``TemplateError`` naming the field (the `fileTemplates` entry, or the Secret and key);
///   none holds a value or an output. Those found without the provider's answer are ``problems(in:providerFiles:)``.
package struct ClassTemplates: Sendable {
    /// One `fileTemplates` entry.
    package struct ComposedFile: Sendable {
        /// The file's path in the volume (validated as a provider's paths are).
        package var name: String
        /// What it holds.
        package var template: ValueTemplate
    }

    /// One `secretObjects[].data[]` entry that has a `template`.
    package struct SecretKey: Sendable {
        /// `secretObjects[].secretName`.
        package var secretName: String
        /// `data[].key`.
        package var key: String
        /// `data[].template`, parsed.
        package var template: ValueTemplate
    }

    /// The mode composed files are written with: the default permission of the provider request (0644), which
    /// is the mode of the provider's files that set none.
    package static let fileMode: UInt32 = ProviderRequest.defaultPermission

    /// The `fileTemplates` entries, by file name.
    package let files: [ComposedFile]
    /// The Secret keys with a template, in `secretObjects` order (empty unless asked for).
    package let secretKeys: [SecretKey]

    /// Whether the class composes nothing.
    package var isEmpty: Bool { files.isEmpty && secretKeys.isEmpty }

    /// `spc`'s templates, parsed; `secretObjects` entries only when `includingSecretObjects` (the node plugin
    /// leaves them out unless it syncs Secrets). Throws the first of ``problems(in:providerFiles:)``.
    package init(_ spc: SecretProviderClass, includingSecretObjects: Bool = true) throws(TemplateError) {
        let parsed = Self.parse(spc, includingSecretObjects: includingSecretObjects)
        if let first = parsed.problems.first { throw first }
        files = parsed.files
        secretKeys = parsed.secretKeys
    }

    /// Every problem of `spc`'s templates that can be found without values: `fileTemplates` that is not a map
    /// of strings, a file name the volume cannot hold, a `secretObjects[].data[]` entry with both or neither of
    /// `objectName` and `template`, a template's syntax (unbalanced tags, an unknown transform…); and, when
    /// `providerFiles` (the names of the files the provider writes) is given, every template naming a file
    /// that is not among them (for a Secret key's template: nor a composed file) and every composed file whose
    /// name a provider's file already uses. What `render` checks; no value is needed or read.
    package static func problems(in spc: SecretProviderClass, providerFiles: Set<String>? = nil) -> [TemplateError] {
        let parsed = parse(spc, includingSecretObjects: true)
        var problems = parsed.problems
        guard let providerFiles else { return problems }
        let templates = ClassTemplates(files: parsed.files, secretKeys: parsed.secretKeys)
        problems += templates.fileNameProblems(providerFiles: Array(providerFiles))
        for file in parsed.files {
            problems += file.template.unknownReferences(providerFiles.contains).map { TemplateError(.fileTemplate(name: file.name), .unknownFile($0)) }
        }
        let all = providerFiles.union(parsed.files.map(\.name))
        for key in parsed.secretKeys {
            problems += key.template.unknownReferences(all.contains).map {
                TemplateError(.secretObjectKey(secretName: key.secretName, key: key.key), .unknownFile($0))
            }
        }
        return problems
    }

    private init(files: [ComposedFile], secretKeys: [SecretKey]) {
        self.files = files
        self.secretKeys = secretKeys
    }

    /// `response` with the composed files added: each `fileTemplates` entry rendered over the provider's
    /// files, except those naming a missing optional object. `response` is returned as it is when there are no
    /// `fileTemplates`.
    package func compose(_ response: ProviderResponse) throws(TemplateError) -> ProviderResponse {
        guard !files.isEmpty else { return response }
        if let problem = fileNameProblems(providerFiles: response.files.map(\.path)).first { throw problem }
        let contents = Self.contents(response.files)
        var composed = response
        for file in files {
            let field = TemplateField.fileTemplate(name: file.name)
            guard let bytes = try Self.render(file.template, files: contents, missing: response.missingOptionalObjects, field: field) else {
                continue
            }
            composed.files.append(SecretFile(path: file.name, mode: Self.fileMode, contents: bytes))
        }
        // A provider that writes its files itself returns none: the writer would replace them with ours.
        if response.files.isEmpty, !composed.files.isEmpty {
            throw TemplateError(.fileTemplate(name: composed.files[0].path), .providerWritesItsOwnFiles)
        }
        return composed
    }

    /// Renders every Secret key's template over `response`'s files (composed ones included) and discards the
    /// output: the check that lets a publish fail before anything is written, rather than the Secret sync after.
    package func checkSecretKeys(against response: ProviderResponse) throws(TemplateError) {
        guard !secretKeys.isEmpty else { return }
        let contents = Self.contents(response.files)
        for key in secretKeys {
            _ = try Self.render(
                key.template, files: contents, missing: response.missingOptionalObjects,
                field: .secretObjectKey(secretName: key.secretName, key: key.key)
            )
        }
    }

    /// `template` rendered over `files`; `nil` when it names a file that is absent because it is one of
    /// `missing`. Problems are reported under `field`.
    package static func render(
        _ template: ValueTemplate,
        files: [String: [UInt8]],
        missing: [MissingObject],
        field: TemplateField
    ) throws(TemplateError) -> [UInt8]? {
        for name in template.references where files[name] == nil {
            if missing.contains(where: { $0.wouldHaveProduced(name) }) { return nil }
            throw TemplateError(field, .unknownFile(name))
        }
        do {
            return try template.render { files[$0] }
        } catch {
            throw TemplateError(field, error)
        }
    }

    /// The files of an answer by path (the first of a duplicated path, as the syncer reads them).
    static func contents(_ files: [SecretFile]) -> [String: [UInt8]] {
        Dictionary(files.map { ($0.path, $0.contents) }, uniquingKeysWith: { first, _ in first })
    }

    /// Composed file names that another file of the volume uses: the same path, or one inside the other
    /// (`name` and `name/0`), among the provider's files and the composed ones.
    private func fileNameProblems(providerFiles: [String]) -> [TemplateError] {
        func clash(_ a: String, _ b: String) -> Bool { a == b || a.hasPrefix(b + "/") || b.hasPrefix(a + "/") }
        var problems: [TemplateError] = []
        for (index, file) in files.enumerated() {
            let others = providerFiles + files[..<index].map(\.name)
            if others.contains(where: { clash($0, file.name) }) {
                problems.append(TemplateError(.fileTemplate(name: file.name), .fileNameTaken))
            }
        }
        return problems
    }

    /// The templates of `spc` and every problem found while reading them.
    private static func parse(
        _ spc: SecretProviderClass,
        includingSecretObjects: Bool
    ) -> (files: [ComposedFile], secretKeys: [SecretKey], problems: [TemplateError]) {
        var problems: [TemplateError] = []
        var files: [ComposedFile] = []
        do {
            for entry in try FileTemplatesParameter.entries(spc.parameters) {
                let field = TemplateField.fileTemplate(name: entry.name)
                do throws(PublishError) {
                    try PayloadPath.validate(entry.name)
                } catch {
                    let reason = if case .invalidPayload(_, let reason) = error { reason } else { "\(error)" }
                    problems.append(TemplateError(field, .invalidFileName(reason: reason)))
                    continue
                }
                do {
                    files.append(ComposedFile(name: entry.name, template: try ValueTemplate(entry.template)))
                } catch {
                    problems.append(TemplateError(field, error))
                }
            }
        } catch {
            problems.append(error)
        }
        var secretKeys: [SecretKey] = []
        if includingSecretObjects {
            for object in spc.secretObjects {
                for entry in object.data ?? [] {
                    let field = TemplateField.secretObjectKey(secretName: object.secretName, key: entry.key)
                    switch (Self.objectName(of: entry), entry.template) {
                    case (nil, let text?):
                        do {
                            secretKeys.append(SecretKey(secretName: object.secretName, key: entry.key, template: try ValueTemplate(text)))
                        } catch {
                            problems.append(TemplateError(field, error))
                        }
                    case (_?, _?): problems.append(TemplateError(field, .objectNameAndTemplate))
                    case (nil, nil): problems.append(TemplateError(field, .neitherObjectNameNorTemplate))
                    case (_?, nil): break
                    }
                }
            }
        }
        return (files, secretKeys, problems)
    }

    /// A data entry's `objectName`, `nil` when absent or empty (the upstream CRD lets it be empty).
    package static func objectName(of entry: SecretProviderClass.SecretObject.DataEntry) -> String? {
        guard let name = entry.objectName, !name.isEmpty else { return nil }
        return name
    }
}
