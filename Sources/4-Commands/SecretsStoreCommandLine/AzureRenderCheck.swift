import SecretsStoreApplication
import SecretsStoreAzure
import SecretsStoreCore
import SecretsStoreKubernetes

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A file `render --dry-run` expects a volume to hold.
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

/// `render`'s checks for `provider: azure`, through the built-in provider's own parser
/// (``AzureMountParameters``, ``AzureCloud``), so a class that passes here passes the provider.
///
/// The parser stops at its first problem; to list every problem each group of parameters (identity, vault,
/// tenant, cloud, each entry of `objects`) is parsed on its own, next to placeholders that are valid for the
/// rest, and then the whole class once more. What only a pod supplies (its service account token, its
/// nodePublishSecretRef) is a placeholder in a dry run.
package enum AzureRenderCheck {
    /// What the class asks of the provider.
    package struct Plan: Sendable, Equatable {
        /// The identity, in words (no credential).
        package var identity: String
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
        package var problems: [RenderProblem] = []
        /// Remarks that are not problems.
        package var notes: [String] = []
        /// The objects and files, when `objects` parses.
        package var plan: Plan?
    }

    /// The audience of the workload identity token.
    package static let workloadIdentityAudience = "api://AzureADTokenExchange"

    /// Checks `attributes` (the provider request's attributes: parameters, pod information, tokens) and
    /// `secrets` (the nodePublishSecretRef data; `nil`: none given).
    ///
    /// - Parameters:
    ///   - dryRun: the token and the nodePublishSecretRef are placeholders when absent.
    ///   - azure: the provider's configuration (default cloud, separate certificate and key files).
    package static func check(
        attributes: [String: String],
        secrets: [String: String]?,
        dryRun: Bool,
        azure: DriverConfiguration.BuiltInAzure
    ) -> Result {
        var result = Result()
        func record(_ field: String, _ message: String) {
            guard !result.problems.contains(where: { $0.message == message }) else { return }
            result.problems.append(RenderProblem(field, message))
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
        let tokens = attributes[tokensKey].flatMap { $0.isEmpty ? nil : $0 } ?? (dryRun ? placeholderTokens : nil)
        let givenSecrets = secrets ?? (dryRun ? placeholderSecrets : [:])

        func parse(_ attributes: [String: String], secrets: [String: String]) -> Swift.Result<AzureMountParameters, AzureMountParameters.Invalid> {
            do {
                return .success(try AzureMountParameters(attributes: attributes, secrets: secrets, defaultFilePermission: 0o644))
            } catch {
                return .failure(error)
            }
        }
        func field(for message: String, default field: String) -> String {
            if message.contains("nodePublishSecretRef") || message.contains("in secrets") { return "nodePublishSecretRef (--secrets-file)" }
            if message.contains("token") && !message.contains("useAzureTokenProxy") { return "service account token (--token-file)" }
            return field
        }
        func hint(_ message: String) -> String {
            if message.contains("service account tokens not found") || message.contains("token for audience") {
                return message + "; pass --token-file with a token for \(workloadIdentityAudience) (kubectl create token <service-account> --audience \(workloadIdentityAudience))"
            }
            if message.contains("nodePublishSecretRef secret is not set") {
                return message + "; pass --secrets-file with clientid and clientsecret, or use workload identity (clientID)"
            }
            return message
        }

        // Identity: the user's identity parameters, the rest placeholders.
        var identity = baseline
        for key in ["usePodIdentity", "useVMManagedIdentity", "useAzureTokenProxy", "clientID", "userAssignedIdentityID"] {
            identity[key] = attributes[key]
        }
        if !trimmed("clientID").isEmpty { identity[tokensKey] = tokens }
        if case .failure(let error) = parse(identity, secrets: givenSecrets) {
            record(field(for: error.message, default: "spec.parameters"), hint(error.message))
        }
        // Vault and tenant, each with everything else valid.
        var vault = baseline
        vault["keyvaultName"] = attributes["keyvaultName"]
        if case .failure(let error) = parse(vault, secrets: placeholderSecrets) {
            record("spec.parameters.keyvaultName", error.message)
        }
        var tenant = baseline
        tenant["tenantID"] = attributes["tenantID"]
        tenant["tenantId"] = attributes["tenantId"]
        if case .failure(let error) = parse(tenant, secrets: placeholderSecrets) {
            record("spec.parameters.tenantID", error.message)
        }
        // The cloud (an Azure Stack environment file is read on the node, not here, in a dry run).
        let cloudName = trimmed("cloudName").isEmpty ? azure.defaultCloudName : trimmed("cloudName")
        if dryRun && cloudName.uppercased() == "AZURESTACKCLOUD" {
            result.notes.append("cloudName AzureStackCloud: cloudEnvFileName \(trimmed("cloudEnvFileName")) is read on the node at mount time")
        } else {
            do {
                _ = try AzureCloud.named(
                    cloudName,
                    environmentFile: trimmed("cloudEnvFileName").isEmpty ? nil : trimmed("cloudEnvFileName"),
                    authorityHostOverride: azure.overrides.authorityHost
                )
            } catch {
                record("spec.parameters.cloudName", error.message)
            }
        }
        // Objects: the whole list, then each entry on its own to report every broken one.
        let objectsText = trimmed("objects")
        var objects: [KeyVaultObject]?
        if objectsText.isEmpty {
            record("spec.parameters.objects", "objects is not set")
        } else {
            do {
                objects = try AzureMountParameters.parseObjects(objectsText)
            } catch {
                let items = (try? KubernetesManifest.documents(objectsText))?.first?["array"]
                if case .list(let entries)? = items, !entries.isEmpty {
                    for (index, entry) in entries.enumerated() {
                        guard case .string(let text) = entry else {
                            record(
                                "spec.parameters.objects[\(index)]",
                                "must be a YAML string: write each object as `- |` followed by its fields on the lines below"
                            )
                            continue
                        }
                        if let message = objectProblem(text) {
                            record("spec.parameters.objects[\(index)]", message.replacing("at index 0,", with: "at index \(index),"))
                        }
                    }
                }
                if !result.problems.contains(where: { $0.field.hasPrefix("spec.parameters.objects") }) {
                    record("spec.parameters.objects", error.message)
                }
            }
        }
        // The whole class, as the provider parses it.
        var full = attributes
        if let tokens { full[tokensKey] = tokens }
        let parsed = parse(full, secrets: givenSecrets)
        switch parsed {
        case .failure(let error):
            if !result.problems.contains(where: { error.message.hasPrefix($0.message) || $0.message.hasPrefix(error.message) }) {
                record(field(for: error.message, default: "spec.parameters"), hint(error.message))
            }
        case .success(let parameters):
            let files = plannedFiles(
                parameters.objects,
                separateFiles: azure.overrides.writeCertAndKeyInSeparateFiles,
                classVault: parameters.keyVaultName
            )
            result.problems += pathProblems(files)
            result.plan = Plan(
                identity: describe(parameters.identity, placeholderSecrets: secrets == nil),
                vault: parameters.keyVaultName,
                tenant: parameters.tenantID,
                cloud: cloudName,
                objects: parameters.objects,
                files: files
            )
        }
        if result.plan == nil, let objects, result.problems.allSatisfy({ !$0.field.hasPrefix("spec.parameters.objects") }) {
            // Identity or vault problems: the objects are still worth showing.
            let files = plannedFiles(objects, separateFiles: azure.overrides.writeCertAndKeyInSeparateFiles, classVault: trimmed("keyvaultName"))
            result.problems += pathProblems(files)
            result.plan = Plan(identity: "", vault: trimmed("keyvaultName"), tenant: trimmed("tenantID"), cloud: cloudName, objects: objects, files: files)
        }
        return result
    }

    /// The parser's problem with one `objects` entry, or `nil`.
    private static func objectProblem(_ entry: String) -> String? {
        struct Wrapper: Encodable { var array: [String] }
        guard let json = try? JSONEncoder().encode(Wrapper(array: [entry])) else { return "not encodable" }
        do {
            _ = try AzureMountParameters.parseObjects(String(decoding: json, as: UTF8.self))
            return nil
        } catch {
            return error.message
        }
    }

    /// The files the provider writes for `objects`, in its order (see the provider's file naming: alias or
    /// name; `<file>/<index>` for a version history; `.crt` and `.key` first for certificate-backed secrets
    /// when the provider writes them separately).
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
    package static func pathProblems(_ files: [PlannedFile]) -> [RenderProblem] {
        var problems: [RenderProblem] = []
        var seen: [String: String] = [:]
        for file in files {
            do {
                try PayloadPath.validate(file.path)
            } catch {
                problems.append(RenderProblem("spec.parameters.objects", "\(file.source): \(error)"))
            }
            if let other = seen[file.path] {
                problems.append(RenderProblem("spec.parameters.objects", "\(other) and \(file.source) are both written to \(file.path): set objectAlias on one"))
            } else {
                seen[file.path] = file.source
            }
        }
        for file in files {
            var prefix = Substring(file.path)
            while let slash = prefix.lastIndex(of: "/") {
                prefix = prefix[..<slash]
                if let other = seen[String(prefix)] {
                    problems.append(RenderProblem("spec.parameters.objects", "\(prefix) is the file of \(other) and a directory of \(file.source)"))
                }
            }
        }
        return problems
    }

    /// Checks that every `secretObjects[].data[].objectName` names a file of the plan.
    package static func secretObjectProblems(_ secretObjects: [SecretProviderClass.SecretObject], plan: Plan) -> [RenderProblem] {
        let paths = Set(plan.files.map(\.path))
        var problems: [RenderProblem] = []
        for (index, object) in secretObjects.enumerated() {
            for (entryIndex, entry) in (object.data ?? []).enumerated() where !paths.contains(entry.objectName) {
                let field = "spec.secretObjects[\(index)].data[\(entryIndex)].objectName"
                if let aliased = plan.objects.first(where: { $0.name == entry.objectName && !$0.alias.isEmpty }) {
                    problems.append(RenderProblem(field, "\(entry.objectName) is written as \(aliased.alias) (its objectAlias): use \(aliased.alias)"))
                } else if let history = plan.objects.first(where: { $0.fileName == entry.objectName && $0.versionHistory > 1 }) {
                    problems.append(RenderProblem(field, "\(entry.objectName) keeps \(history.versionHistory) versions, written as \(entry.objectName)/0…: use \(entry.objectName)/0 for the latest"))
                } else {
                    let known = plan.files.map(\.path).joined(separator: ", ")
                    problems.append(RenderProblem(field, "no object of spec.parameters.objects is written as \(entry.objectName) (the files are: \(known))"))
                }
            }
        }
        return problems
    }

    private static func describe(_ identity: AzureIdentity, placeholderSecrets: Bool) -> String {
        switch identity {
        case .workloadIdentity(let clientID, _):
            return "workload identity, clientID \(clientID) (the pod's service account token for \(workloadIdentityAudience))"
        case .servicePrincipal(let clientID, _):
            return placeholderSecrets
                ? "service principal: clientid and clientsecret from the pod's nodePublishSecretRef Secret"
                : "service principal, clientid \(clientID) (from --secrets-file)"
        case .managedIdentity(let clientID?):
            return "managed identity, user-assigned \(clientID)"
        case .managedIdentity(nil):
            return "managed identity, the node's system-assigned identity"
        }
    }
}
