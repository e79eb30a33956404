import SecretsStoreCore
import SecretsStoreKubernetes
import SecretsStoreTemplates

/// One thing wrong with a SecretProviderClass, as `render` reports it: the field (a JSON path such as
/// `spec.parameters.objects[2]`, or a flag) and what is wrong, never a parameter's value.
package struct RenderProblem: Sendable, Equatable, Codable, CustomStringConvertible {
    /// Where: `spec.provider`, `spec.secretObjects[0].data[1].objectName`, `--secrets-file`…; empty for the
    /// whole document.
    package var field: String
    /// What is wrong and, where it helps, what to write instead.
    package var message: String

    /// A problem at `field`.
    package init(_ field: String, _ message: String) {
        self.field = field
        self.message = message
    }

    /// `field: message`.
    package var description: String { field.isEmpty ? message : "\(field): \(message)" }

    /// A template's problem, at the field it names (`spec.secretObjects[db].data[DATABASE_URL]`,
    /// `spec.parameters.fileTemplates[dsn]`).
    package init(_ error: TemplateError) {
        self.init(error.field.path, error.problem.description)
    }
}

/// The checks a SecretProviderClass manifest passes before `render` uses it, in the order of the file: what the
/// CRD's schema enforces when the object is applied (`kubectl apply` with strict field validation), what the
/// driver checks at NodePublishVolume, and the credential rule (``CredentialCheck``). Every problem is
/// collected; nothing stops at the first.
///
/// Provider-specific parameters are the provider's business (for `azure`, ``AzureClassCheck`` in the provider's
/// target, adapted by ``AzureRenderCheck``); `spec.sync`
/// (the sync controller's: `serviceAccountName`, `nodePublishSecretRef.name`) and `spec.refreshInterval`
/// are checked as the controller checks them.
package enum SecretProviderClassCheck {
    /// `apiVersion`s of the CRD: `v1` (stored) and `v1alpha1` (served, deprecated).
    package static let apiVersion = "secrets-store.csi.x-k8s.io/v1"
    /// The deprecated, still served version.
    package static let deprecatedAPIVersion = "secrets-store.csi.x-k8s.io/v1alpha1"
    /// The least `refreshInterval` accepted.
    package static let minimumRefreshInterval: Duration = .seconds(5)

    /// What the checks found.
    package struct Result: Sendable {
        /// The class as the driver would read it from the API server (fields that failed their check are left
        /// out or empty).
        package var secretProviderClass: SecretProviderClass
        /// Every problem, in the file's order.
        package var problems: [RenderProblem]
        /// Remarks that are not problems (a deprecated apiVersion, a field only shape-checked).
        package var notes: [String]
    }

    /// Checks one document.
    ///
    /// - Parameter namespace: `--namespace` when given: a `metadata.namespace` that differs is a problem (a pod
    ///   only mounts classes of its own namespace). The class's namespace is `metadata.namespace`, else this,
    ///   else `default`.
    package static func check(_ document: ManifestValue, namespace: String?) -> Result {
        var checker = Checker()
        let spc = checker.check(document, namespace: namespace)
        return Result(secretProviderClass: spc, problems: checker.problems, notes: checker.notes)
    }

    /// Whether `name` is an RFC 1123 subdomain (object names: at most 253 characters of `a-z`, `0-9`, `-`, `.`,
    /// starting and ending with a letter or digit).
    package static func isSubdomain(_ name: String) -> Bool {
        guard !name.isEmpty, name.utf8.count <= 253 else { return false }
        return name.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { isLabel($0, maxLength: 63) }
    }

    /// Whether `name` is an RFC 1123 label (namespaces: at most 63 characters of `a-z`, `0-9`, `-`, starting
    /// and ending with a letter or digit).
    package static func isLabel<S: StringProtocol>(_ name: S, maxLength: Int = 63) -> Bool {
        let bytes = Array(name.utf8)
        guard let first = bytes.first, let last = bytes.last, bytes.count <= maxLength else { return false }
        func alphanumeric(_ byte: UInt8) -> Bool {
            (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
        }
        return alphanumeric(first) && alphanumeric(last) && bytes.allSatisfy { alphanumeric($0) || $0 == UInt8(ascii: "-") }
    }

    /// Whether `key` may name an entry of a Secret's `data` (`[-._a-zA-Z0-9]+`, at most 253 characters).
    package static func isSecretDataKey(_ key: String) -> Bool {
        !key.isEmpty && key.utf8.count <= 253 && key != "." && key != ".."
            && key.utf8.allSatisfy { byte in
                (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                    || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "-")
                    || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".")
            }
    }

    /// Collects problems while walking one document.
    private struct Checker {
        var problems: [RenderProblem] = []
        var notes: [String] = []

        mutating func problem(_ field: String, _ message: String) {
            problems.append(RenderProblem(field, message))
        }

        /// A string field: `nil` (and a problem) when it is there but not a string, or required and missing or
        /// empty.
        mutating func string(_ value: ManifestValue?, at field: String, required: Bool) -> String? {
            switch value {
            case nil, .null?:
                if required { problem(field, "is required") }
                return nil
            case .string(let text)?:
                if required && text.isEmpty { problem(field, "must not be empty") }
                return text
            case let other?:
                problem(field, "must be a string, not \(article(other.typeName)): quote it")
                return nil
            }
        }

        /// The entries of a map field; a problem when it is not a map.
        mutating func map(_ value: ManifestValue?, at field: String, required: Bool) -> [ManifestValue.Entry]? {
            switch value {
            case nil, .null?:
                if required { problem(field, "is required") }
                return nil
            case .map(let entries)?:
                return entries
            case let other?:
                problem(field, "must be an object, not \(article(other.typeName))")
                return nil
            }
        }

        /// A map of strings (`labels`, `annotations`).
        mutating func stringMap(_ value: ManifestValue?, at field: String) -> [String: String]? {
            guard let entries = map(value, at: field, required: false) else { return nil }
            var result: [String: String] = [:]
            for entry in entries {
                if let text = string(entry.value, at: field + "." + entry.key, required: false) { result[entry.key] = text }
            }
            return result
        }

        mutating func unknownFields(_ entries: [ManifestValue.Entry], at field: String, known: Set<String>) {
            for entry in entries where !known.contains(entry.key) {
                problem(
                    field.isEmpty ? entry.key : field + "." + entry.key,
                    "unknown field (the API server drops it; kubectl apply refuses it with strict validation)"
                )
            }
        }

        mutating func check(_ document: ManifestValue, namespace requested: String?) -> SecretProviderClass {
            var spc = SecretProviderClass(namespace: requested ?? "default", name: "", generation: 0, provider: "", parameters: [:])
            guard case .map(let top) = document else {
                problem("", "the document is \(article(document.typeName)), not a SecretProviderClass object")
                return spc
            }
            unknownFields(top, at: "", known: ["apiVersion", "kind", "metadata", "spec", "status"])
            switch string(document["apiVersion"], at: "apiVersion", required: true) {
            case SecretProviderClassCheck.apiVersion?, nil:
                break
            case SecretProviderClassCheck.deprecatedAPIVersion?:
                notes.append("apiVersion \(SecretProviderClassCheck.deprecatedAPIVersion) is deprecated: use \(SecretProviderClassCheck.apiVersion)")
            case let other?:
                problem("apiVersion", "\"\(other)\" is not a SecretProviderClass version: use \(SecretProviderClassCheck.apiVersion)")
            }
            if let kind = string(document["kind"], at: "kind", required: true), kind != "SecretProviderClass" {
                problem("kind", "\"\(kind)\" is not SecretProviderClass")
            }
            checkMetadata(document["metadata"], namespace: requested, into: &spc)
            guard let spec = map(document["spec"], at: "spec", required: true) else { return spc }
            unknownFields(spec, at: "spec", known: ["provider", "parameters", "secretObjects", "sync", "refreshInterval"])
            checkProvider(document["spec"]?["provider"], into: &spc)
            checkParameters(document["spec"]?["parameters"], into: &spc)
            spc.secretObjects = checkSecretObjects(document["spec"]?["secretObjects"])
            checkSync(document["spec"]?["sync"])
            checkRefreshInterval(document["spec"]?["refreshInterval"], at: "spec.refreshInterval")
            return spc
        }

        mutating func checkMetadata(_ value: ManifestValue?, namespace requested: String?, into spc: inout SecretProviderClass) {
            guard map(value, at: "metadata", required: true) != nil else { return }
            if let name = string(value?["name"], at: "metadata.name", required: true), !name.isEmpty {
                if !isSubdomain(name) {
                    problem("metadata.name", "\"\(name)\" is not a valid object name (lower-case letters, digits, '-' and '.', at most 253)")
                }
                spc.name = name
            }
            if let namespace = string(value?["namespace"], at: "metadata.namespace", required: false), !namespace.isEmpty {
                if !isLabel(namespace) {
                    problem("metadata.namespace", "\"\(namespace)\" is not a valid namespace name")
                }
                if let requested, requested != namespace {
                    problem(
                        "metadata.namespace",
                        "\(namespace) differs from --namespace \(requested): a pod mounts only SecretProviderClasses of its own namespace"
                    )
                }
                spc.namespace = namespace
            }
        }

        mutating func checkProvider(_ value: ManifestValue?, into spc: inout SecretProviderClass) {
            guard let provider = string(value, at: "spec.provider", required: true), !provider.isEmpty else { return }
            guard ProviderRequestBuilder.isValidProviderName(provider) else {
                problem("spec.provider", "\"\(provider)\" must match ^[a-zA-Z0-9_-]{1,30}$ (it names the provider's socket <provider>.sock)")
                return
            }
            spc.provider = provider
        }

        mutating func checkParameters(_ value: ManifestValue?, into spc: inout SecretProviderClass) {
            guard let entries = map(value, at: "spec.parameters", required: true) else { return }
            guard !entries.isEmpty else {
                problem("spec.parameters", "must hold at least one parameter (the driver refuses a class without parameters)")
                return
            }
            for entry in entries {
                let field = "spec.parameters." + entry.key
                switch entry.value {
                case .string(let text):
                    spc.parameters[entry.key] = text
                case .null:
                    problem(field, "has no value: write \"\" for an empty parameter")
                default:
                    problem(field, "must be a string, not \(article(entry.value.typeName)): quote the value")
                }
            }
        }

        mutating func checkSecretObjects(_ value: ManifestValue?) -> [SecretProviderClass.SecretObject] {
            switch value {
            case nil, .null?:
                return []
            case .list(let items)?:
                var result: [SecretProviderClass.SecretObject] = []
                var names: [String: Int] = [:]
                for (index, item) in items.enumerated() {
                    let field = "spec.secretObjects[\(index)]"
                    guard let entries = map(item, at: field, required: true) else { continue }
                    unknownFields(entries, at: field, known: ["secretName", "type", "labels", "annotations", "data"])
                    let secretName = string(item["secretName"], at: field + ".secretName", required: true) ?? ""
                    if !secretName.isEmpty {
                        if !isSubdomain(secretName) {
                            problem(field + ".secretName", "\"\(secretName)\" is not a valid Secret name")
                        }
                        if let first = names[secretName] {
                            problem(field + ".secretName", "\(secretName) is also spec.secretObjects[\(first)]: each Secret is synced from one entry")
                        } else {
                            names[secretName] = index
                        }
                    }
                    let type = string(item["type"], at: field + ".type", required: true) ?? ""
                    let labels = stringMap(item["labels"], at: field + ".labels")
                    let annotations = stringMap(item["annotations"], at: field + ".annotations")
                    let data = checkData(item["data"], at: field + ".data", secretType: type)
                    result.append(.init(secretName: secretName, type: type, labels: labels, annotations: annotations, data: data))
                }
                return result
            case let other?:
                problem("spec.secretObjects", "must be an array, not \(article(other.typeName))")
                return []
            }
        }

        mutating func checkData(_ value: ManifestValue?, at field: String, secretType: String) -> [SecretProviderClass.SecretObject.DataEntry] {
            guard let value, value != .null else {
                problem(field, "is required: list the files to copy into the Secret")
                return []
            }
            guard case .list(let items) = value else {
                problem(field, "must be an array, not \(article(value.typeName))")
                return []
            }
            guard !items.isEmpty else {
                problem(field, "must list at least one file")
                return []
            }
            var result: [SecretProviderClass.SecretObject.DataEntry] = []
            var keys: Set<String> = []
            for (index, item) in items.enumerated() {
                let entryField = "\(field)[\(index)]"
                guard let entries = map(item, at: entryField, required: true) else { continue }
                unknownFields(entries, at: entryField, known: ["objectName", "key", "template"])
                // One of objectName and template (the template itself is checked with the class's other templates).
                let objectName = string(item["objectName"], at: entryField + ".objectName", required: false) ?? ""
                let template = string(item["template"], at: entryField + ".template", required: false)
                let absent: (ManifestValue?) -> Bool = { $0 == nil || $0 == .null }
                if !objectName.isEmpty, template != nil {
                    problem(entryField, TemplateProblem.objectNameAndTemplate.description)
                } else if absent(item["template"]) {
                    if absent(item["objectName"]) {
                        problem(entryField + ".objectName", "is required unless template is given: the file whose contents become the key")
                    } else if item["objectName"] == .string("") {
                        problem(entryField + ".objectName", "must not be empty")
                    }
                }
                let key = string(item["key"], at: entryField + ".key", required: true) ?? ""
                if !key.isEmpty {
                    if !isSecretDataKey(key) {
                        problem(entryField + ".key", "\"\(key)\" is not a valid Secret data key ([-._a-zA-Z0-9]+)")
                    } else if secretType == "kubernetes.io/tls" && key != "tls.crt" && key != "tls.key" {
                        problem(entryField + ".key", "a kubernetes.io/tls Secret takes only tls.crt and tls.key, not \(key)")
                    }
                    if !keys.insert(key).inserted {
                        problem(entryField + ".key", "\(key) appears twice in this Secret")
                    }
                }
                guard !key.isEmpty else { continue }
                var entry = SecretProviderClass.SecretObject.DataEntry(objectName: objectName, key: key)
                entry.template = template
                result.append(entry)
            }
            return result
        }

        mutating func checkSync(_ value: ManifestValue?) {
            guard let entries = map(value, at: "spec.sync", required: false) else { return }
            notes.append("spec.sync: the sync controller (secrets-store-csi-driver controller) keeps secretObjects in sync without pods")
            for entry in entries where !["serviceAccountName", "nodePublishSecretRef"].contains(entry.key) {
                problem("spec.sync.\(entry.key)", "unknown field; spec.sync takes serviceAccountName and nodePublishSecretRef")
            }
            if let name = string(value?["serviceAccountName"], at: "spec.sync.serviceAccountName", required: true),
                !name.isEmpty, !isSubdomain(name)
            {
                problem(
                    "spec.sync.serviceAccountName",
                    "\"\(name)\" must name a ServiceAccount in the SecretProviderClass's namespace (no cross-namespace form exists)"
                )
            }
            if let reference = map(value?["nodePublishSecretRef"], at: "spec.sync.nodePublishSecretRef", required: false),
                let name = string(value?["nodePublishSecretRef"]?["name"], at: "spec.sync.nodePublishSecretRef.name", required: true)
            {
                _ = reference
                if !isSubdomain(name) {
                    problem("spec.sync.nodePublishSecretRef.name", "\"\(name)\" is not a valid Secret name")
                }
            }
        }

        mutating func checkRefreshInterval(_ value: ManifestValue?, at field: String) {
            guard let text = string(value, at: field, required: false) else { return }
            guard let interval = GoDuration.parse(text) else {
                problem(field, "\"\(text)\" is not a Go duration such as 30s, 5m or 1h")
                return
            }
            if interval < SecretProviderClassCheck.minimumRefreshInterval {
                problem(field, "\(text) is shorter than the least interval, 5s")
            }
        }

        func article(_ typeName: String) -> String {
            (["array", "object"].contains(typeName) ? "an " : "a ") + typeName
        }
    }
}
