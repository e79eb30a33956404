import SecretsStoreApplication
import Logging
import SecretsStoreAzure
import SecretsStoreCSI
import SecretsStoreCore
import SecretsStoreKubernetes
import SecretsStoreLinux
import SecretsStoreTemplates

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// What `secrets-store-csi-driver render` is asked to do (its flags).
package struct RenderOptions: Sendable, Equatable {
    /// `--output`.
    package enum Format: String, Sendable, Equatable, CaseIterable {
        /// Lines for a person.
        case text
        /// One JSON object (``RenderReport`` list), for scripts.
        case json
    }

    /// `--namespace`: the pod's namespace; `nil`: the class's `metadata.namespace`, else `default`.
    package var namespace: String?
    /// `--service-account`: the pod's service account name (sent as `csi.storage.k8s.io/serviceAccount.name`).
    package var serviceAccount = "default"
    /// `--pod`: the pod's name (sent as `csi.storage.k8s.io/pod.name`).
    package var podName = "render"
    /// `--secrets-file`: the nodePublishSecretRef data; `nil` when not given. Credentials: never printed.
    package var secrets: [String: String]?
    /// `--token-file`: the pod's service account token; `nil` when not given. Never printed.
    package var serviceAccountToken: String?
    /// `--token-audience`: the audience the token is sent for.
    package var tokenAudience = AzureClassCheck.workloadIdentityAudience
    /// `--dry-run`: check and plan only; nothing is fetched.
    package var dryRun = false
    /// `--out`: write the files here with the volume's atomic layout; `nil`: write nothing.
    package var outputDirectory: String?
    /// `--output`.
    package var format: Format = .text
    /// `--show-values`: print file contents (off: sizes, modes and versions only).
    package var showValues = false
    /// `--timeout`: how long the provider may take.
    package var timeout: Duration = .seconds(60)

    /// Options with every default: a text report of a real fetch, nothing written, no values.
    package init() {}
}

/// Where `render` finds providers and how it writes, as `serve` would: the built-in Azure provider (with the
/// `--azure-*` options) and the provider socket directories.
package struct RenderEnvironment: Sendable {
    /// The built-in Azure provider; `nil` (`--builtin-azure-provider=false`): `azure` is a socket provider too.
    package var builtInAzure: DriverConfiguration.BuiltInAzure?
    /// Directories searched for `<provider>.sock`, in order.
    package var providerDirectories: [String]
    /// `--max-call-recv-msg-size`.
    package var maxReceiveMessageBytes: Int
    /// Where `--out` is written.
    package var fileSystem: any FileSystem
    /// Seconds since the Unix epoch, for the timestamped directory's name.
    package var wallClockSeconds: @Sendable () -> Int64

    /// An environment; the file system is POSIX and the clock the wall clock unless replaced.
    package init(
        builtInAzure: DriverConfiguration.BuiltInAzure? = .init(),
        providerDirectories: [String] = ["/etc/kubernetes/secrets-store-csi-providers", "/var/run/secrets-store-csi-providers"],
        maxReceiveMessageBytes: Int = 4_194_304,
        fileSystem: any FileSystem = PosixFileSystem(),
        wallClockSeconds: @escaping @Sendable () -> Int64 = { Int64(time(nil)) }
    ) {
        self.builtInAzure = builtInAzure
        self.providerDirectories = providerDirectories
        self.maxReceiveMessageBytes = maxReceiveMessageBytes
        self.fileSystem = fileSystem
        self.wallClockSeconds = wallClockSeconds
    }
}

/// What `render` found for one SecretProviderClass: its problems, or its objects and files. File values are
/// present only with `--show-values`.
package struct RenderReport: Sendable, Equatable, Codable {
    /// The class.
    package struct Class: Sendable, Equatable, Codable {
        /// `metadata.namespace` (or the namespace rendered for).
        package var namespace: String
        /// `metadata.name`.
        package var name: String
        /// `spec.provider`.
        package var provider: String

        /// The class `namespace/name` of `provider`.
        package init(namespace: String, name: String, provider: String) {
            self.namespace = namespace
            self.name = name
            self.provider = provider
        }
    }
    /// One object the provider fetches (dry run: would fetch).
    package struct Object: Sendable, Equatable, Codable {
        /// The provider's object id (`secret/db-pass`).
        package var id: String
        /// The version: asked for (dry run; `latest` when none) or fetched.
        package var version: String
        /// The file it is written as, when that is known before fetching.
        package var file: String?
        /// `objectVersionHistory`, when above 1.
        package var versions: Int?
    }
    /// One file of the volume.
    package struct File: Sendable, Equatable, Codable {
        /// The path in the volume.
        package var path: String
        /// The permission bits, in octal (`0644`).
        package var mode: String
        /// The object it comes from, when known.
        package var source: String?
        /// When it exists only under a condition (dry run).
        package var condition: String?
        /// Its size in bytes (after a fetch).
        package var size: Int?
        /// The version of its object (after a fetch, when the provider returns one version per file).
        package var version: String?
        /// Its contents, only with `--show-values`: the text when it is UTF-8, else base64.
        package var value: String?
        /// `utf-8` or `base64`, with ``value``.
        package var valueEncoding: String?
    }
    /// One Secret `--enable-secret-sync` would create from the volume.
    package struct SyncedSecret: Sendable, Equatable, Codable {
        /// `secretName`.
        package var name: String
        /// `type`.
        package var type: String
        /// Data key → file.
        package var data: [String: String]

        /// Secret `name` of `type`, its `data` keys taken from the files named.
        package init(name: String, type: String, data: [String: String]) {
            self.name = name
            self.type = type
            self.data = data
        }
    }

    /// The file rendered.
    package var source: String
    /// `dry-run` or `fetch`.
    package var mode: String
    /// The class, when the document is one.
    package var secretProviderClass: Class?
    /// Whether every check passed (and, without `--dry-run`, the fetch succeeded).
    package var valid: Bool
    /// Every problem found.
    package var problems: [RenderProblem] = []
    /// Remarks that are not problems.
    package var notes: [String] = []
    /// The identity the provider uses, in words, when known.
    package var identity: String?
    /// The vault, cloud and tenant (`azure`), when known.
    package var vault: String?
    /// The objects fetched (or to be fetched).
    package var objects: [Object] = []
    /// The volume's files.
    package var files: [File] = []
    /// The Secrets `secretObjects` describes.
    package var secretObjects: [SyncedSecret] = []
    /// With `--show-values` after a fetch: every key a `template` composes, by Secret name and key (the text; base64
    /// when it is not UTF-8). Keys taken from a file show that file's value in ``files``.
    package var secretObjectValues: [String: [String: String]]?
    /// `--out`: the directory written, when written.
    package var outputDirectory: String?
    /// `--out`: where `..data` points after the write.
    package var dataDirectory: String?
}

/// Everything `render` found, one report per SecretProviderClass of the file.
package struct RenderOutcome: Sendable, Equatable {
    /// The reports, in the file's order.
    package var reports: [RenderReport]

    /// 0 when every class is valid (and was fetched, without `--dry-run`), 1 otherwise.
    package var exitCode: Int32 { !reports.isEmpty && reports.allSatisfy(\.valid) ? 0 : 1 }

    /// The reports as a JSON object `{"valid": …, "secretProviderClasses": [...]}`, keys sorted.
    package func json() -> String {
        struct Document: Encodable {
            var valid: Bool
            var secretProviderClasses: [RenderReport]
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(Document(valid: exitCode == 0, secretProviderClasses: reports))) ?? Data()
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    /// The reports as lines for a person.
    package func text() -> String {
        reports.map(RenderText.format).joined(separator: "\n")
    }
}

/// `secrets-store-csi-driver render`: what a pod would see, without a cluster or a mount.
///
/// Each SecretProviderClass of the manifest is checked (``SecretProviderClassCheck``, ``CredentialCheck``,
/// and for `azure` the provider's own ``AzureClassCheck`` through ``AzureRenderCheck``); every problem is
/// reported. With `--dry-run` that is all: the report lists the objects and the files a mount would hold.
/// Otherwise the provider is asked exactly as a
/// NodePublishVolume would ask it (``ProviderRequestBuilder`` over the class, the pod's volume context, the
/// token and the nodePublishSecretRef data), its answer is checked as the driver checks it, and the files are
/// listed with sizes, modes and versions; `--out` writes them with ``AtomicWriter`` (the volume's `..data`
/// layout) into a plain directory. A class that holds a credential is refused before anything is fetched.
package enum Render {
    /// Renders every SecretProviderClass of `manifest` (the text of the file `source`).
    package static func run(
        manifest: String,
        source: String,
        options: RenderOptions,
        environment: RenderEnvironment,
        logger: Logger
    ) async -> RenderOutcome {
        let documents: [ManifestValue]
        do {
            documents = try KubernetesManifest.documents(manifest)
        } catch {
            return RenderOutcome(reports: [failed(source: source, options: options, RenderProblem("", "\(source): \(error.description)"))])
        }
        let candidates = documents.count == 1 ? documents : documents.filter(isSecretProviderClass)
        guard !candidates.isEmpty else {
            return RenderOutcome(reports: [failed(source: source, options: options, RenderProblem("", "\(source) holds no SecretProviderClass"))])
        }
        var reports: [RenderReport] = []
        for document in candidates {
            reports.append(await render(document, source: source, options: options, environment: environment, logger: logger))
        }
        if documents.count > candidates.count {
            reports[0].notes.append("\(documents.count - candidates.count) other document(s) of \(source) skipped")
        }
        return RenderOutcome(reports: reports)
    }

    /// Reads `--secrets-file`: a YAML or JSON map of strings, or a Kubernetes `Secret` manifest (`stringData`,
    /// and `data` base64-decoded). The message of a failure names the file and the key, never a value.
    package static func secrets(fromFile path: String, fileSystem: any FileSystem = PosixFileSystem()) throws(RenderInputError) -> [String: String] {
        let text = try readText(path, flag: "--secrets-file", fileSystem: fileSystem)
        let document: ManifestValue?
        do {
            document = try KubernetesManifest.documents(text).first
        } catch {
            throw RenderInputError(description: "--secrets-file \(path): \(error.description)")
        }
        guard case .map(let entries)? = document else {
            throw RenderInputError(description: "--secrets-file \(path): not a map of keys to values")
        }
        var result: [String: String] = [:]
        if document?["kind"]?.stringValue == "Secret" {
            if case .map(let data)? = document?["data"] {
                for entry in data {
                    guard let encoded = entry.value.stringValue, let bytes = Data(base64Encoded: encoded) else {
                        throw RenderInputError(description: "--secrets-file \(path): data.\(entry.key) is not base64")
                    }
                    result[entry.key] = String(decoding: bytes, as: UTF8.self)
                }
            }
            if case .map(let data)? = document?["stringData"] {
                for entry in data { result[entry.key] = try scalar(entry, path: path, prefix: "stringData.") }
            }
            return result
        }
        for entry in entries { result[entry.key] = try scalar(entry, path: path, prefix: "") }
        return result
    }

    /// Reads `-f`: the manifest's text.
    package static func manifest(fromFile path: String, fileSystem: any FileSystem = PosixFileSystem()) throws(RenderInputError) -> String {
        try readText(path, flag: "-f", fileSystem: fileSystem)
    }

    /// Reads `--token-file`: the token, without surrounding white space.
    package static func token(fromFile path: String, fileSystem: any FileSystem = PosixFileSystem()) throws(RenderInputError) -> String {
        let token = try readText(path, flag: "--token-file", fileSystem: fileSystem).trimmingWhitespace()
        guard !token.isEmpty else { throw RenderInputError(description: "--token-file \(path) is empty") }
        return token
    }

    // MARK: One class

    private static func render(
        _ document: ManifestValue,
        source: String,
        options: RenderOptions,
        environment: RenderEnvironment,
        logger: Logger
    ) async -> RenderReport {
        let checked = SecretProviderClassCheck.check(document, namespace: options.namespace)
        let spc = checked.secretProviderClass
        var report = RenderReport(
            source: source,
            mode: options.dryRun ? "dry-run" : "fetch",
            secretProviderClass: .init(namespace: spc.namespace, name: spc.name, provider: spc.provider),
            valid: false,
            problems: checked.problems,
            notes: checked.notes
        )
        for (name, value) in spc.parameters.sorted(by: { $0.key < $1.key }) {
            if let finding = CredentialCheck.finding(name: name, value: value) {
                report.problems.append(
                    RenderProblem(
                        "spec.parameters.\(name)",
                        "holds a credential (\(finding)); a SecretProviderClass belongs in Git and holds references only: put the credential in the Secret the pod's nodePublishSecretRef names, or use workload identity"
                    )
                )
            }
        }
        report.secretObjects = spc.secretObjects.map { object in
            .init(
                name: object.secretName,
                type: object.type,
                data: Dictionary((object.data ?? []).map { ($0.key, Self.source(of: $0)) }, uniquingKeysWith: { first, _ in first })
            )
        }
        // The files fileTemplates composes, by name (its problems are reported with the templates' below).
        let composedFiles = ((try? FileTemplatesParameter.entries(spc.parameters)) ?? []).map(\.name)

        // The request a publish would send, for this pod.
        let target: String
        var temporary: String?
        if let out = options.outputDirectory, !options.dryRun {
            target = absolute(out)
        } else {
            target = "/render/\(spc.namespace)/\(spc.name)/mount"
        }
        var volumeContext = [
            VolumeContextKey.secretProviderClass: spc.name.isEmpty ? "render" : spc.name,
            VolumeContextKey.podName: options.podName,
            VolumeContextKey.podNamespace: spc.namespace,
            VolumeContextKey.podUID: "render-\(options.podName)",
            VolumeContextKey.serviceAccountName: options.serviceAccount,
            VolumeContextKey.ephemeral: "true",
        ]
        if let token = options.serviceAccountToken {
            volumeContext[VolumeContextKey.serviceAccountTokens] = tokensJSON(token, audience: options.tokenAudience)
        }
        let validated: ValidatedPublishRequest
        do {
            validated = try ValidatedPublishRequest(
                PublishRequest(
                    volumeID: "render-\(spc.name)",
                    targetPath: target,
                    accessType: .mount,
                    readOnly: true,
                    volumeContext: volumeContext,
                    secrets: options.secrets ?? [:],
                    deadline: .now + options.timeout
                )
            )
        } catch {
            report.problems.append(RenderProblem("", error.description))
            return report
        }
        let providerRequest = ProviderRequestBuilder.build(for: validated, secretProviderClass: spc, currentObjectVersions: [])

        // The provider's own checks.
        var plan: AzureClassCheck.Plan?
        if spc.provider == AzureKeyVaultProvider.name {
            let azure = environment.builtInAzure ?? .init()
            let azureCheck = AzureRenderCheck.check(
                attributes: providerRequest.attributes,
                secrets: options.secrets,
                dryRun: options.dryRun,
                azure: azure
            )
            report.problems += azureCheck.problems
            report.notes += azureCheck.notes
            plan = azureCheck.plan
            if let plan {
                report.problems += AzureRenderCheck.secretObjectProblems(spc.secretObjects, plan: plan, composedFiles: composedFiles)
                if plan.hasSelector {
                    report.notes.append(
                        "objectNameRegex/objectTags select their files from the vault's list: templates and secretObjects naming files outside the plan are checked when fetched"
                    )
                }
                if let identity = azureCheck.identity { report.identity = identity }
                report.vault = "\(plan.vault) in \(plan.cloud), tenant \(plan.tenant)"
            }
            if environment.builtInAzure == nil {
                report.notes.append("--builtin-azure-provider=false: azure is served by azure.sock; checked with the built-in provider's rules")
            }
        } else if options.dryRun && !spc.provider.isEmpty {
            report.notes.append(
                "provider \(spc.provider) is not built in: its parameters go to \(spc.provider).sock as they are; run without --dry-run (its socket in --provider-volume) to see the files"
            )
        }
        // The templates: their syntax always; the files they name when every file of the volume is known before
        // fetching (an azure plan without selectors; otherwise after the fetch, below).
        let plannedFiles = plan.flatMap { $0.hasSelector ? nil : Set($0.files.map(\.path)) }
        report.problems += ClassTemplates.problems(in: spc, providerFiles: plannedFiles).compactMap { error in
            switch error.problem {
            case .objectNameAndTemplate, .neitherObjectNameNorTemplate: nil  // the schema check placed these by index
            default: RenderProblem(error)
            }
        }
        if options.dryRun, let plan {
            report.objects = plan.objects.map { object in
                let otherVault = object.keyVaultName.flatMap { $0.lowercased() == plan.vault.lowercased() ? nil : $0 }
                let file: String
                if let selector = object.selector {
                    file = "one file per match, named by the secret"
                    return RenderReport.Object(id: "secret/" + Self.describe(selector), version: "latest", file: file)
                } else if !object.jsonFields.isEmpty {
                    file = "fields " + object.jsonFields.map(\.fileName).joined(separator: ", ") + (object.alias.isEmpty ? "" : "; whole as \(object.alias)")
                } else {
                    file = object.versionHistory > 1 ? object.fileName + "/…" : object.fileName
                }
                return RenderReport.Object(
                    id: (otherVault.map { "\($0)/" } ?? "") + "\(object.type.rawValue)/\(object.name)",
                    version: object.version.isEmpty ? "latest" : object.version,
                    file: file,
                    versions: object.versionHistory > 1 ? object.versionHistory : nil
                )
            }
            report.files = plan.files.map { .init(path: $0.path, mode: octal($0.mode), source: $0.source, condition: $0.condition) }
            for object in plan.objects {
                guard let selector = object.selector else { continue }
                report.files.append(
                    .init(
                        path: "<name of each match>",
                        mode: octal(object.filePermission ?? ProviderRequest.defaultPermission),
                        source: "secret/" + Self.describe(selector),
                        condition: "every enabled match, at most maxSelectedObjects in all"
                    )
                )
            }
            report.files += composedFiles.map { .init(path: $0, mode: octal(ClassTemplates.fileMode), source: Self.composedSource) }
        }
        guard report.problems.isEmpty else { return report }
        if options.dryRun {
            report.valid = true
            return report
        }

        // The fetch.
        let fileSystem = environment.fileSystem
        if options.outputDirectory != nil {
            // Made before the call, for a provider that writes into the target itself.
            do {
                try fileSystem.createDirectories(at: target, permissions: 0o755)
            } catch {
                report.problems.append(RenderProblem("--out", PublishError.writeFailed(targetPath: target, reason: error.description).description))
                return report
            }
        } else {
            do {
                let base = getenv("TMPDIR").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
                temporary = try fileSystem.makeUniqueDirectory(in: base, prefix: "secrets-store-render-")
            } catch {
                report.problems.append(RenderProblem("", "cannot create a temporary directory: \(error)"))
                return report
            }
        }
        defer { if let temporary { try? fileSystem.removeItem(at: temporary) } }
        var request = providerRequest
        request.targetPath = temporary ?? target
        let fetched: ProviderResponse
        do {
            fetched = try await fetch(request, spc: spc, environment: environment, logger: logger)
        } catch {
            report.problems.append(RenderProblem("", error.description))
            return report
        }
        // The volume as the driver writes it: the provider's files and those fileTemplates composes over them;
        // every Secret key's template rendered once, as a publish that syncs Secrets checks them.
        let response: ProviderResponse
        do {
            let templates = try ClassTemplates(spc)
            response = try templates.compose(fetched)
            try templates.checkSecretKeys(against: response)
            if options.showValues {
                report.secretObjectValues = try Self.templateValues(templates, over: response)
            }
        } catch {
            report.problems.append(RenderProblem(error))
            return report
        }
        let pairVersions = fetched.objectVersions.count == fetched.files.count
        report.objects = fetched.objectVersions.map { .init(id: $0.id, version: $0.version) }
        report.files = response.files.enumerated().map { index, file in
            let provided = index < fetched.files.count
            var entry = RenderReport.File(
                path: file.path,
                mode: octal(file.mode & 0o7777),
                source: provided ? (pairVersions ? fetched.objectVersions[index].id : nil) : Self.composedSource,
                size: file.contents.count,
                version: provided && pairVersions ? fetched.objectVersions[index].version : nil
            )
            if options.showValues {
                if let text = String(validating: file.contents, as: UTF8.self) {
                    (entry.value, entry.valueEncoding) = (text, "utf-8")
                } else {
                    (entry.value, entry.valueEncoding) = (Data(file.contents).base64EncodedString(), "base64")
                }
            }
            return entry
        }
        if response.files.isEmpty {
            let written = (try? fileSystem.contentsOfDirectory(at: request.targetPath)) ?? []
            guard !written.isEmpty else {
                report.problems.append(RenderProblem("", PublishError.emptyVolume(provider: spc.provider).description))
                return report
            }
            report.notes.append("the provider returned no files and wrote \(written.count) entries into the target itself")
        } else if options.outputDirectory != nil {
            do {
                try AtomicWriter(fileSystem: fileSystem, now: environment.wallClockSeconds).write(response.files, to: target)
                report.outputDirectory = target
                report.dataDirectory = try fileSystem.symbolicLinkDestination(at: target + "/" + AtomicWriter.dataLinkName)
            } catch {
                report.problems.append(RenderProblem("--out", PublishError.writeFailed(targetPath: target, reason: error.description).description))
                return report
            }
        }
        report.valid = true
        return report
    }

    /// One provider call, checked as the driver checks an answer before writing it. The built-in Azure
    /// provider's HTTPS client is made for the call and shut down after it.
    private static func fetch(
        _ request: ProviderRequest,
        spc: SecretProviderClass,
        environment: RenderEnvironment,
        logger: Logger
    ) async throws(PublishError) -> ProviderResponse {
        let outcome: Result<ProviderResponse, ProviderFailure>
        if spc.provider == AzureKeyVaultProvider.name, let azure = environment.builtInAzure {
            let made: (provider: AzureKeyVaultProvider, http: AzureHTTP)
            do {
                made = try azure.makeProvider()
            } catch {
                throw .provider(name: spc.provider, .misconfigured("cannot create the Azure HTTPS client: \(error)"))
            }
            outcome = await call(made.provider, request, logger: logger)
            try? await made.http.shutdown()
        } else {
            let provider = try ProviderSocketDirectory(
                directories: environment.providerDirectories,
                maxReceiveMessageBytes: environment.maxReceiveMessageBytes
            ).provider(named: spc.provider)
            outcome = await call(provider, request, logger: logger)
        }
        let response: ProviderResponse
        switch outcome {
        case .success(let answer): response = answer
        case .failure(let failure): throw .provider(name: spc.provider, failure)
        }
        try ProviderResponseValidation.validate(response, providerName: spc.provider)
        return response
    }

    private static func call(
        _ provider: any SecretsProvider,
        _ request: ProviderRequest,
        logger: Logger
    ) async -> Result<ProviderResponse, ProviderFailure> {
        do {
            return .success(try await provider.fetch(request, logger: logger))
        } catch {
            return .failure(error)
        }
    }

    // MARK: Helpers

    /// A selector in the report's words: `[objectNameRegex ^db-, objectTags env=prod]`.
    private static func describe(_ selector: SecretSelector) -> String {
        var parts: [String] = []
        if let pattern = selector.namePattern { parts.append("objectNameRegex \(pattern)") }
        if !selector.tags.isEmpty { parts.append("objectTags " + selector.tags.map { "\($0.key)=\($0.value)" }.joined(separator: ",")) }
        return "[" + parts.joined(separator: ", ") + "]"
    }

    /// The `source` of a file `fileTemplates` composed.
    static let composedSource = "fileTemplates"

    /// What a Secret key is taken from, for the report: the file's name, or `template: ` and the files the
    /// template names (never the template's text, which may spell out a value's shape).
    private static func source(of entry: SecretProviderClass.SecretObject.DataEntry) -> String {
        if let name = ClassTemplates.objectName(of: entry) { return name }
        guard let text = entry.template else { return "" }
        guard let template = try? ValueTemplate(text) else { return "template" }
        return "template: " + template.references.joined(separator: ", ")
    }

    /// Every templated Secret key's value (`--show-values` only), as `secretName` → key → text (base64 when the
    /// output is not UTF-8).
    private static func templateValues(_ templates: ClassTemplates, over response: ProviderResponse) throws(TemplateError) -> [String: [String: String]]? {
        guard !templates.secretKeys.isEmpty else { return nil }
        let files = Dictionary(response.files.map { ($0.path, $0.contents) }, uniquingKeysWith: { first, _ in first })
        var values: [String: [String: String]] = [:]
        for key in templates.secretKeys {
            let field = TemplateField.secretObjectKey(secretName: key.secretName, key: key.key)
            guard let bytes = try ClassTemplates.render(key.template, files: files, missing: response.missingOptionalObjects, field: field) else { continue }
            values[key.secretName, default: [:]][key.key] = String(validating: bytes, as: UTF8.self) ?? Data(bytes).base64EncodedString()
        }
        return values
    }

    private static func isSecretProviderClass(_ document: ManifestValue) -> Bool {
        document["kind"]?.stringValue == "SecretProviderClass"
            || (document["apiVersion"]?.stringValue ?? "").hasPrefix("secrets-store.csi.x-k8s.io/")
    }

    private static func failed(source: String, options: RenderOptions, _ problem: RenderProblem) -> RenderReport {
        RenderReport(source: source, mode: options.dryRun ? "dry-run" : "fetch", valid: false, problems: [problem])
    }

    /// kubelet's `serviceAccount.tokens` value for one token.
    private static func tokensJSON(_ token: String, audience: String) -> String {
        struct Entry: Encodable {
            var token: String
            var expirationTimestamp: String
        }
        let data = (try? JSONEncoder().encode([audience: Entry(token: token, expirationTimestamp: "")])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    private static func octal(_ mode: UInt32) -> String {
        let digits = String(mode, radix: 8)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }

    private static func absolute(_ path: String) -> String {
        guard !path.hasPrefix("/") else { return path.count > 1 && path.hasSuffix("/") ? String(path.dropLast()) : path }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let found = buffer.withUnsafeMutableBufferPointer { pointer in
            pointer.baseAddress!.withMemoryRebound(to: CChar.self, capacity: pointer.count) { getcwd($0, pointer.count) != nil }
        }
        let directory = found ? String(decoding: buffer.prefix(while: { $0 != 0 }), as: UTF8.self) : "."
        let relative = path.hasPrefix("./") ? String(path.dropFirst(2)) : path
        return directory + "/" + (relative.hasSuffix("/") ? String(relative.dropLast()) : relative)
    }

    private static func readText(_ path: String, flag: String, fileSystem: any FileSystem) throws(RenderInputError) -> String {
        do {
            return String(decoding: try fileSystem.readFile(at: absolute(path)), as: UTF8.self)
        } catch {
            throw RenderInputError(description: "\(flag) \(path): \(error.reason)")
        }
    }

    private static func scalar(_ entry: ManifestValue.Entry, path: String, prefix: String) throws(RenderInputError) -> String {
        switch entry.value {
        case .string(let text), .number(let text): return text
        case .bool(let value): return value ? "true" : "false"
        default: throw RenderInputError(description: "--secrets-file \(path): \(prefix)\(entry.key) is not a string")
        }
    }
}

/// A `render` input file that cannot be used; the description names the flag, the file and the key, never a
/// value.
package struct RenderInputError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The message printed before exiting.
    package var description: String

    /// An error saying `description`.
    package init(description: String) {
        self.description = description
    }
}

/// The text form of a ``RenderReport``.
enum RenderText {
    static func format(_ report: RenderReport) -> String {
        var lines: [String] = []
        let title: String
        if let spc = report.secretProviderClass {
            title = "\(report.source): SecretProviderClass \(spc.namespace)/\(spc.name.isEmpty ? "?" : spc.name) (provider \(spc.provider.isEmpty ? "?" : spc.provider))"
        } else {
            title = report.source
        }
        if !report.valid {
            lines.append("\(title): invalid, \(report.problems.count) problem\(report.problems.count == 1 ? "" : "s")")
            lines += report.problems.map { "  - \($0)" }
            lines += report.notes.map { "  note: \($0)" }
            if !report.files.isEmpty {
                lines.append("  files it would write:")
                lines += table(report.files.map { [$0.mode, $0.path, $0.source ?? ""] }, header: ["MODE", "PATH", "FROM"]).map { "    " + $0 }
            }
            return lines.joined(separator: "\n") + "\n"
        }
        if report.mode == "dry-run" {
            lines.append("\(title): valid")
        } else {
            lines.append("\(title): fetched \(report.files.count) file\(report.files.count == 1 ? "" : "s") from \(report.objects.count) object version\(report.objects.count == 1 ? "" : "s")")
        }
        if let identity = report.identity { lines.append("  identity: \(identity)") }
        if let vault = report.vault { lines.append("  vault: \(vault)") }
        lines += report.notes.map { "  note: \($0)" }
        if report.mode == "dry-run" {
            if !report.objects.isEmpty {
                lines.append("  objects (\(report.objects.count)):")
                lines += table(
                    report.objects.map { [$0.id, "version \($0.version)", $0.versions.map { "\($0) versions" } ?? "", "-> \($0.file ?? "")"] },
                    header: nil
                ).map { "    " + $0 }
            }
            if !report.files.isEmpty {
                lines.append("  files (\(report.files.count)):")
                lines += table(
                    report.files.map { [$0.mode, $0.path, $0.source ?? "", $0.condition.map { "(\($0))" } ?? ""] },
                    header: ["MODE", "PATH", "FROM", ""]
                ).map { "    " + $0 }
            }
        } else {
            lines += table(
                report.files.map { [$0.mode, "\($0.size ?? 0) B", $0.version ?? "-", $0.path] },
                header: ["MODE", "SIZE", "VERSION", "PATH"]
            ).map { "  " + $0 }
            if report.files.contains(where: { $0.version == nil }) {
                lines.append("  object versions: " + report.objects.map { "\($0.id)=\($0.version)" }.joined(separator: ", "))
            }
        }
        if !report.secretObjects.isEmpty {
            lines.append("  Secrets synced with --enable-secret-sync:")
            for secret in report.secretObjects {
                let data = secret.data.sorted { $0.key < $1.key }.map { "\($0.key) <- \($0.value)" }.joined(separator: ", ")
                lines.append("    \(secret.name) (\(secret.type)): \(data)")
            }
        }
        if let directory = report.outputDirectory {
            lines.append("  written to \(directory) (\(AtomicWriter.dataLinkName) -> \(report.dataDirectory ?? "?"))")
        }
        for file in report.files {
            guard let value = file.value else { continue }
            lines.append("  --- \(file.path)\(file.valueEncoding == "base64" ? " (base64)" : "")")
            lines += value.split(separator: "\n", omittingEmptySubsequences: false).map { "  " + $0 }
        }
        for (secret, keys) in (report.secretObjectValues ?? [:]).sorted(by: { $0.key < $1.key }) {
            for (key, value) in keys.sorted(by: { $0.key < $1.key }) {
                lines.append("  --- Secret \(secret) key \(key) (template)")
                lines += value.split(separator: "\n", omittingEmptySubsequences: false).map { "  " + $0 }
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Rows padded into columns (trailing spaces trimmed).
    static func table(_ rows: [[String]], header: [String]?) -> [String] {
        let all = (header.map { [$0] } ?? []) + rows
        guard let columns = all.map(\.count).max() else { return [] }
        var widths = [Int](repeating: 0, count: columns)
        for row in all { for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) } }
        return all.map { row in
            let padded = row.enumerated().map { index, cell in
                index == row.count - 1 ? cell : cell + String(repeating: " ", count: widths[index] - cell.count)
            }
            var line = padded.joined(separator: "  ")
            while line.hasSuffix(" ") { line.removeLast() }
            return line
        }
    }
}
