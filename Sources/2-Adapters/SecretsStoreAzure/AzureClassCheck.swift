import SecretsStoreCore
import Yams

/// A file a volume of an `azure` SecretProviderClass is expected to hold (the plan of a dry run).
package struct PlannedFile: Sendable, Equatable {
    /// The path in the volume.
    package var path: String
    /// The permission bits it gets.
    package var mode: UInt32
    /// The object it comes from, as the provider reports it (`secret/db-pass`, `secret/api-key/1`).
    package var source: String
    /// When the file exists only under a condition (an older version that may not exist, a certificate-backed
    /// secret); `nil` when it always does.
    package var condition: String?
}

/// The checks of an `azure` SecretProviderClass's parameters before anything is fetched (`render`), through the
/// provider's own parser (``AzureMountParameters``, ``AzureCloud``), so a class that passes here passes the
/// provider. Problems are told apart by the parser's error cases, never by their texts.
///
/// The parser stops at its first problem; to list every problem each group of parameters (identity, vault,
/// tenant, cloud, each entry of `objects`) is parsed on its own, next to placeholders that are valid for the
/// rest, and then the whole class once more. What only a pod supplies (its service account token, its
/// nodePublishSecretRef) is a placeholder in a dry run.
package enum AzureClassCheck {
    /// What is checked, and the provider settings that change the outcome.
    package struct Input: Sendable {
        /// The provider request's attributes: the parameters, the pod's information and its tokens.
        package var attributes: [String: String]
        /// The nodePublishSecretRef data; `nil` when none was given.
        package var secrets: [String: String]?
        /// Whether this is a dry run: the token and the nodePublishSecretRef data are placeholders when absent,
        /// and an Azure Stack environment file is not read (it is on the node).
        package var dryRun: Bool
        /// The cloud of a class without `cloudName`.
        package var defaultCloudName: String
        /// The operator's settings: the authority host override and the file layout.
        package var overrides: AzureEndpointOverrides

        /// An input with every field given.
        package init(
            attributes: [String: String],
            secrets: [String: String]?,
            dryRun: Bool,
            defaultCloudName: String,
            overrides: AzureEndpointOverrides
        ) {
            self.attributes = attributes
            self.secrets = secrets
            self.dryRun = dryRun
            self.defaultCloudName = defaultCloudName
            self.overrides = overrides
        }
    }

    /// Where a problem is.
    package enum Place: Sendable, Equatable {
        /// The parameters as a whole (the identity flags, or a problem no single parameter owns).
        case parameters
        /// One parameter, by name (`keyvaultName`, `tenantID`, `cloudName`).
        case parameter(String)
        /// `objects` as a whole, or the files it plans.
        case objects
        /// One entry of `objects`, by index.
        case object(index: Int)
        /// The nodePublishSecretRef data (a service principal's credentials).
        case nodePublishSecretRef
        /// The pod's service account token (workload identity).
        case serviceAccountToken
    }

    /// Something only a pod supplies.
    package enum PodInput: Sendable, Equatable {
        /// Its service account token for the workload identity audience.
        case serviceAccountToken
        /// The data of the Secret its nodePublishSecretRef names.
        case nodePublishSecretRef
    }

    /// One thing wrong with the class.
    package struct Problem: Sendable, Equatable {
        /// Where it is.
        package var place: Place
        /// What is wrong: the provider's own text for the parser's errors; never a parameter's value beyond the
        /// names the provider's texts repeat.
        package var message: String
        /// The pod input whose absence is the problem (giving it fixes it); `nil` for any other problem.
        package var absent: PodInput?
        /// The parser's error, when the problem is one.
        package var cause: AzureMountParameters.Invalid?

        /// A problem at `place`.
        package init(_ place: Place, _ message: String, absent: PodInput? = nil, cause: AzureMountParameters.Invalid? = nil) {
            self.place = place
            self.message = message
            self.absent = absent
            self.cause = cause
        }
    }

    /// The identity the class selects, without its credential.
    package enum PlannedIdentity: Sendable, Equatable {
        /// Workload identity with `clientID`: the pod's service account token is exchanged.
        case workloadIdentity(clientID: String)
        /// A service principal from the nodePublishSecretRef data: its `clientid` when that data was given to the
        /// check, `nil` when a placeholder stood in for it.
        case servicePrincipal(clientID: String?)
        /// The node's managed identity: user-assigned `clientID`, or the system-assigned one (`nil`).
        case managedIdentity(clientID: String?)
    }

    /// What the class asks of the provider.
    package struct Plan: Sendable, Equatable {
        /// The identity; `nil` when the identity parameters have a problem.
        package var identity: PlannedIdentity?
        /// `keyvaultName`.
        package var vault: String
        /// `tenantID` (or `tenantId`).
        package var tenant: String
        /// The cloud's name.
        package var cloud: String
        /// The objects, in order.
        package var objects: [KeyVaultObject]
        /// The files they become, in order.
        package var files: [PlannedFile]
    }

    /// What the checks found: every problem (empty when the class is valid), remarks, and the plan when the
    /// parameters parse.
    package struct Result: Sendable {
        /// Every problem found.
        package var problems: [Problem] = []
        /// Remarks that are not problems.
        package var notes: [String] = []
        /// The objects and files, when `objects` parses.
        package var plan: Plan?
    }

    /// The audience of the workload identity token.
    package static let workloadIdentityAudience = AzureMountParameters.workloadIdentityAudience

    /// Checks `input`'s attributes and nodePublishSecretRef data.
    package static func check(_ input: Input) -> Result {
        let attributes = input.attributes
        var result = Result()
        func record(_ problem: Problem) {
            // The same text from two groups (the identity, then the whole class) is one problem.
            guard !result.problems.contains(where: { $0.message == problem.message }) else { return }
            result.problems.append(problem)
        }
        func record(_ error: AzureMountParameters.Invalid, at place: Place) {
            record(Problem(place, error.message, absent: absentInput(error), cause: error))
        }
        func trimmed(_ key: String) -> String { (attributes[key] ?? "").trimmingWhitespace() }

        let tokensKey = VolumeContextKey.serviceAccountTokens
        let placeholderTokens = #"{"\#(workloadIdentityAudience)":{"token":"render-placeholder"}}"#
        let placeholderSecrets = ["clientid": "render-placeholder", "clientsecret": "render-placeholder"]
        let pod = [VolumeContextKey.podName, VolumeContextKey.podNamespace].reduce(into: [String: String]()) { $0[$1] = attributes[$1] }
        let baseline = pod.merging([
            "keyvaultName": "render-placeholder",
            "tenantID": "render-placeholder",
            "objects": "array:\n  - |\n    objectName: render-placeholder\n    objectType: secret\n",
        ]) { _, new in new }
        let tokens = attributes[tokensKey].flatMap { $0.isEmpty ? nil : $0 } ?? (input.dryRun ? placeholderTokens : nil)
        let givenSecrets = input.secrets ?? (input.dryRun ? placeholderSecrets : [:])

        func parse(_ attributes: [String: String], secrets: [String: String]) -> Swift.Result<AzureMountParameters, AzureMountParameters.Invalid> {
            do {
                return .success(try AzureMountParameters(attributes: attributes, secrets: secrets, defaultFilePermission: 0o644))
            } catch {
                return .failure(error)
            }
        }

        // Identity: the user's identity parameters, the rest placeholders.
        var identity = baseline
        for key in ["usePodIdentity", "useVMManagedIdentity", "useAzureTokenProxy", "clientID", "userAssignedIdentityID"] {
            identity[key] = attributes[key]
        }
        if !trimmed("clientID").isEmpty { identity[tokensKey] = tokens }
        if case .failure(let error) = parse(identity, secrets: givenSecrets) {
            record(error, at: place(of: error))
        }
        // Vault and tenant, each with everything else valid.
        var vault = baseline
        vault["keyvaultName"] = attributes["keyvaultName"]
        if case .failure(let error) = parse(vault, secrets: placeholderSecrets) {
            record(error, at: .parameter("keyvaultName"))
        }
        var tenant = baseline
        tenant["tenantID"] = attributes["tenantID"]
        tenant["tenantId"] = attributes["tenantId"]
        if case .failure(let error) = parse(tenant, secrets: placeholderSecrets) {
            record(error, at: .parameter("tenantID"))
        }
        // The cloud (an Azure Stack environment file is read on the node, not here, in a dry run).
        let cloudName = trimmed("cloudName").isEmpty ? input.defaultCloudName : trimmed("cloudName")
        if input.dryRun && cloudName.uppercased() == "AZURESTACKCLOUD" {
            result.notes.append("cloudName AzureStackCloud: cloudEnvFileName \(trimmed("cloudEnvFileName")) is read on the node at mount time")
        } else {
            do {
                _ = try AzureCloud.named(
                    cloudName,
                    environmentFile: trimmed("cloudEnvFileName").isEmpty ? nil : trimmed("cloudEnvFileName"),
                    authorityHostOverride: input.overrides.authorityHost
                )
            } catch {
                record(error, at: .parameter("cloudName"))
            }
        }
        // Objects: the whole list, then each entry on its own to report every broken one.
        let objectsText = trimmed("objects")
        var objects: [KeyVaultObject]?
        if objectsText.isEmpty {
            record(.objectsMissing, at: .objects)
        } else {
            do {
                objects = try AzureMountParameters.parseObjects(objectsText)
            } catch {
                for (index, entry) in (objectEntries(objectsText) ?? []).enumerated() {
                    guard let text = entry else {
                        record(
                            Problem(
                                .object(index: index),
                                "must be a YAML string: write each object as `- |` followed by its fields on the lines below"
                            )
                        )
                        continue
                    }
                    do {
                        _ = try AzureMountParameters.parseObject(text, at: index)
                    } catch {
                        record(error, at: .object(index: index))
                    }
                }
                if !result.problems.contains(where: { $0.place.isInObjects }) {
                    // A problem between entries (a JSON field's file written by another entry) is its entry's.
                    let entry = place(of: error)
                    record(error, at: entry.isInObjects ? entry : .objects)
                }
            }
        }
        // maxSelectedObjects, with everything else valid.
        var selectionCap = baseline
        selectionCap["maxSelectedObjects"] = attributes["maxSelectedObjects"]
        if case .failure(let error) = parse(selectionCap, secrets: placeholderSecrets) {
            record(error, at: .parameter("maxSelectedObjects"))
        }
        // The whole class, as the provider parses it.
        var full = attributes
        if let tokens { full[tokensKey] = tokens }
        switch parse(full, secrets: givenSecrets) {
        case .failure(let error):
            if !result.problems.contains(where: { $0.cause == error }) {
                record(error, at: place(of: error))
            }
        case .success(let parameters):
            let files = plannedFiles(
                parameters.objects,
                separateFiles: input.overrides.writeCertAndKeyInSeparateFiles,
                classVault: parameters.keyVaultName
            )
            result.problems += pathProblems(files)
            result.plan = Plan(
                identity: planned(parameters.identity, secretsGiven: input.secrets != nil),
                vault: parameters.keyVaultName,
                tenant: parameters.tenantID,
                cloud: cloudName,
                objects: parameters.objects,
                files: files
            )
        }
        if result.plan == nil, let objects, !result.problems.contains(where: { $0.place.isInObjects }) {
            // Identity or vault problems: the objects are still worth showing.
            let files = plannedFiles(objects, separateFiles: input.overrides.writeCertAndKeyInSeparateFiles, classVault: trimmed("keyvaultName"))
            result.problems += pathProblems(files)
            result.plan = Plan(identity: nil, vault: trimmed("keyvaultName"), tenant: trimmed("tenantID"), cloud: cloudName, objects: objects, files: files)
        }
        return result
    }

    /// Where a parser error belongs when the group of parameters that produced it does not say (the identity
    /// group, and the whole class): the pod input it is about, else the parameters as a whole. Every case is
    /// listed, so a new one cannot be added without a place.
    static func place(of error: AzureMountParameters.Invalid) -> Place {
        switch error {
        case .servicePrincipal:
            return .nodePublishSecretRef
        case .workloadIdentityToken:
            return .serviceAccountToken
        case .maxSelectedObjectsOutOfRange:
            return .parameter("maxSelectedObjects")
        case .invalidSelector(let index, _):
            return .object(index: index)
        case .invalidJSONFields(let object, _):
            return .object(index: object.index)
        case .podNameMissing, .podNamespaceMissing, .invalidFlag, .conflictingIdentityModes, .podIdentityUnsupported,
            .azureTokenProxyUnsupported, .keyVaultNameMissing, .tenantMissing, .invalidKeyVaultName, .objectsMissing,
            .objectsNotYAML, .objectNotYAML, .invalidObject, .unknownCloud, .azureStackEnvironmentUnreadable,
            .azureStackEnvironmentInvalid:
            return .parameters
        }
    }

    /// The pod input whose absence `error` is: no service account tokens at all or none for the audience, or no
    /// nodePublishSecretRef data at all. A token or a Secret that is there but wrong is not absent.
    static func absentInput(_ error: AzureMountParameters.Invalid) -> PodInput? {
        switch error {
        case .workloadIdentityToken(.tokensMissing, _), .workloadIdentityToken(.noTokenForAudience, _):
            return .serviceAccountToken
        case .servicePrincipal(.secretNotSet):
            return .nodePublishSecretRef
        default:
            return nil
        }
    }

    /// The entries of `objects`' `array` in its first YAML document: each entry's text when it is a YAML string
    /// (what the parser reads), `nil` for an entry that is anything else; `nil` when there is no such list.
    static func objectEntries(_ text: String) -> [String?]? {
        guard var documents = try? Yams.compose_all(yaml: text) else { return nil }
        var first: Node?
        while first == nil, let node = documents.next() {
            if node.tag.rawValue != Tag.Name.null.rawValue { first = node }
        }
        guard case .sequence(let entries)? = first?["array"], !entries.isEmpty else { return nil }
        return entries.map { entry in
            guard case .scalar(let scalar) = entry else { return nil }
            switch entry.tag.rawValue {
            case Tag.Name.bool.rawValue, Tag.Name.int.rawValue, Tag.Name.float.rawValue, Tag.Name.null.rawValue: return nil
            default: return scalar.string
            }
        }
    }

    /// The files the provider writes for `objects`, in its order (see the provider's file naming: alias or
    /// name; `<file>/<index>` for a version history; `.crt` and `.key` first for certificate-backed secrets
    /// when the provider writes them separately; an entry with `objectJSONFields` writes one file per field,
    /// and the whole secret only under its alias). A selector (`objectNameRegex`/`objectTags`) plans no file:
    /// what it writes is known only from the vault's list; its entry is in ``Plan/objects``.
    ///
    /// - Parameter classVault: the class's `keyvaultName`: an object naming another vault has its id qualified
    ///   with that vault (`<vault>/<type>/<name>`), as the provider reports it.
    package static func plannedFiles(_ objects: [KeyVaultObject], separateFiles: Bool, classVault: String = "") -> [PlannedFile] {
        var files: [PlannedFile] = []
        for object in objects {
            let mode = object.filePermission ?? 0o644
            let otherVault = object.keyVaultName.flatMap { $0.lowercased() == classVault.lowercased() ? nil : $0 }
            let id = (otherVault.map { "\($0)/" } ?? "") + "\(object.type.rawValue)/\(object.name)"
            func add(_ path: String, source: String, condition: String?) {
                let condition = object.optional ? [condition, "if Key Vault has it (optional)"].compactMap { $0 }.joined(separator: ", ") : condition
                if separateFiles && object.type == .secret {
                    let certificateOnly = "if the secret is certificate-backed"
                    files.append(PlannedFile(path: path + ".crt", mode: mode, source: source, condition: [condition, certificateOnly].compactMap { $0 }.joined(separator: ", ")))
                    files.append(PlannedFile(path: path + ".key", mode: mode, source: source, condition: [condition, certificateOnly].compactMap { $0 }.joined(separator: ", ")))
                }
                files.append(PlannedFile(path: path, mode: mode, source: source, condition: condition))
            }
            if object.selector != nil { continue }
            if !object.jsonFields.isEmpty {
                let condition = object.optional ? "if Key Vault has it (optional)" : nil
                for field in object.jsonFields {
                    files.append(PlannedFile(path: field.fileName, mode: mode, source: "\(id) field \(field.dottedPath)", condition: condition))
                }
                if !object.alias.isEmpty { add(object.alias, source: id, condition: nil) }
                continue
            }
            if object.versionHistory > 1 {
                for index in 0..<object.versionHistory {
                    let start = object.version.isEmpty || object.version == "latest" ? "the latest version" : "version \(object.version)"
                    add(
                        "\(object.fileName)/\(index)",
                        source: "\(id)/\(index)",
                        condition: index == 0 ? start : "if \(index == 1 ? "an older enabled version exists" : "\(index) older enabled versions exist")"
                    )
                }
            } else {
                add(object.fileName, source: id, condition: nil)
            }
        }
        return files
    }

    /// The driver's checks of file paths, on the planned files: each must be a clean relative path, none may
    /// repeat, none may be both a file and a directory.
    package static func pathProblems(_ files: [PlannedFile]) -> [Problem] {
        var problems: [Problem] = []
        var seen: [String: String] = [:]
        for file in files {
            do {
                try PayloadPath.validate(file.path)
            } catch {
                problems.append(Problem(.objects, "\(file.source): \(error)"))
            }
            if let other = seen[file.path] {
                problems.append(Problem(.objects, "\(other) and \(file.source) are both written to \(file.path): set objectAlias on one"))
            } else {
                seen[file.path] = file.source
            }
        }
        for file in files {
            var prefix = Substring(file.path)
            while let slash = prefix.lastIndex(of: "/") {
                prefix = prefix[..<slash]
                if let other = seen[String(prefix)] {
                    problems.append(Problem(.objects, "\(prefix) is the file of \(other) and a directory of \(file.source)"))
                }
            }
        }
        return problems
    }

    private static func planned(_ identity: AzureIdentity, secretsGiven: Bool) -> PlannedIdentity {
        switch identity {
        case .workloadIdentity(let clientID, _): .workloadIdentity(clientID: clientID)
        case .servicePrincipal(let clientID, _): .servicePrincipal(clientID: secretsGiven ? clientID : nil)
        case .managedIdentity(let clientID): .managedIdentity(clientID: clientID)
        }
    }
}

extension AzureClassCheck.Place {
    /// Whether the place is `objects` or one of its entries.
    package var isInObjects: Bool {
        switch self {
        case .objects, .object: true
        case .parameters, .parameter, .nodePublishSecretRef, .serviceAccountToken: false
        }
    }
}
