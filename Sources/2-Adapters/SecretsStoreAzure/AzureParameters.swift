import SecretsStoreCore
import Synchronization
import Yams

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// One entry of the SecretProviderClass `objects` parameter.
package struct KeyVaultObject: Sendable, Equatable {
    /// `objectType`: which Key Vault collection the object is read from (case-sensitive).
    package enum ObjectType: String, Sendable, Equatable {
        case secret, key, cert
    }
    /// `objectFormat`: how a certificate-backed secret is written (PEM, or the PFX as Key Vault returns it).
    package enum Format: String, Sendable, Equatable {
        case pem, pfx
    }
    /// `objectEncoding`: how a secret's value is decoded before it is written.
    package enum Encoding: String, Sendable, Equatable {
        case utf8 = "utf-8"
        case hex, base64
    }

    /// `objectName`: the Key Vault object's name.
    package var name: String
    /// `objectType`.
    package var type: ObjectType
    /// `objectAlias`: the file name to write; empty for the object's name.
    package var alias: String
    /// `objectVersion`: a version id; empty for the latest.
    package var version: String
    /// `objectVersionHistory`: above 1, that many enabled versions are written as `<file>/<index>`.
    package var versionHistory: Int
    /// `objectFormat`.
    package var format: Format
    /// `objectEncoding`.
    package var encoding: Encoding
    /// `filePermission` parsed as octal; `nil` means the request's default (0644).
    package var filePermission: UInt32?
    /// `optional`: when Key Vault answers 404 for the object (or for the version asked for), the volume is
    /// published without it instead of failing. Not an upstream field.
    package var optional: Bool = false
    /// The object's own `keyvaultName`, validated like the SecretProviderClass's; `nil` for the class's vault.
    /// Not an upstream field.
    package var keyVaultName: String? = nil
    /// The object's own `tenantID` (or `tenantId`); `nil` for the class's tenant. Not an upstream field.
    package var tenantID: String? = nil
    /// `objectNameRegex`/`objectTags`: the entry is a selector and writes every enabled secret of the vault
    /// they match, each at its latest version under its own name; its `name`, `alias` and `version` are empty
    /// and `optional` has no effect. `nil` for an entry naming one object. Not an upstream field.
    package var selector: SecretSelector? = nil
    /// `objectJSONFields`: fields of the secret's JSON value, each written to a file of its own; the whole
    /// secret is then written only when `alias` is set. Empty for none. Not an upstream field.
    package var jsonFields: [JSONField] = []

    /// The file the object is written to: the alias, else the name (empty for a selector, whose files are
    /// named by what it matches).
    package var fileName: String { alias.isEmpty ? name : alias }
    /// The text of `objectVersion` for error messages.
    package var describedVersion: String { version }
}

/// How the provider authenticates to Entra ID.
package enum AzureIdentity: Sendable, Equatable {
    /// Workload identity: the pod's service account token exchanged as a client assertion.
    case workloadIdentity(clientID: String, serviceAccountToken: String)
    /// A service principal's client secret from the nodePublishSecretRef Secret.
    case servicePrincipal(clientID: String, clientSecret: String)
    /// The node's managed identity through IMDS; `clientID` selects a user-assigned identity.
    case managedIdentity(clientID: String?)
}

/// The SecretProviderClass parameters of an `azure` volume, parsed and validated once, in the upstream
/// provider's order and with its error texts (users search for them). Two upstream quirks are fixed on
/// purpose: an unknown `objectType` and an invalid `filePermission` are validation errors here, before any
/// request to Key Vault, instead of a late fetch failure and a silent mode 0000.
/// An object without `objectName` (say, only an alias) is refused here too, rather than requested from Key Vault
/// under an empty name.
package struct AzureMountParameters: Sendable, Equatable {
    /// `keyvaultName`.
    package var keyVaultName: String
    /// `tenantID` (or the legacy `tenantId`).
    package var tenantID: String
    /// `cloudName`; `nil` for the driver's default cloud.
    package var cloudName: String?
    /// `cloudEnvFileName`: the Azure Stack environment file.
    package var cloudEnvironmentFile: String?
    /// The identity the parameters select.
    package var identity: AzureIdentity
    /// The parsed `objects`, in order.
    package var objects: [KeyVaultObject]
    /// `csi.storage.k8s.io/pod.name`.
    package var podName: String
    /// `csi.storage.k8s.io/pod.namespace`.
    package var podNamespace: String
    /// The mode of files whose object sets no `filePermission`.
    package var defaultFilePermission: UInt32
    /// `maxSelectedObjects`: how many secrets the class's selectors may match in all (default 100, at most
    /// 1000); more fails the mount.
    package var maxSelectedObjects = AzureMountParameters.defaultMaxSelectedObjects

    /// The vault `object` is read from: its own `keyvaultName`, else the class's.
    package func vaultName(of object: KeyVaultObject) -> String { object.keyVaultName ?? keyVaultName }
    /// The tenant whose tokens read `object`: its own `tenantID`, else the class's.
    package func tenant(of object: KeyVaultObject) -> String { object.tenantID ?? tenantID }
    /// Whether `object` names a vault other than the class's (Azure vault names are case-insensitive): its
    /// object versions are then qualified with the vault (`<vault>/<type>/<name>`), so that two vaults holding
    /// the same name never share an id.
    package func readsAnotherVault(_ object: KeyVaultObject) -> Bool {
        guard let own = object.keyVaultName else { return false }
        return own.lowercased() != keyVaultName.lowercased()
    }

    /// Thrown for a parameter problem: each case says which parameter (and for `objects`, which entry and field)
    /// is wrong and how; ``message`` is the upstream provider's text for it (users search for those texts), or
    /// for the fields upstream does not have (selectors, JSON fields, `maxSelectedObjects`) a text naming the
    /// entry by index and the field, never a value.
    package enum Invalid: Error, Equatable, CustomStringConvertible {
        /// `csi.storage.k8s.io/pod.name` is empty.
        case podNameMissing
        /// `csi.storage.k8s.io/pod.namespace` is empty.
        case podNamespaceMissing
        /// An identity flag (`usePodIdentity`, `useVMManagedIdentity`, `useAzureTokenProxy`) is not a Go boolean.
        case invalidFlag(InvalidBoolean)
        /// More than one identity flag is true.
        case conflictingIdentityModes
        /// `usePodIdentity` is true.
        case podIdentityUnsupported
        /// `useAzureTokenProxy` is true.
        case azureTokenProxyUnsupported
        /// `clientID` selects workload identity, and the pod's service account token for the workload identity
        /// audience cannot be had; `managedIdentity` tells whether `useVMManagedIdentity` was also set.
        case workloadIdentityToken(ServiceAccountTokenProblem, managedIdentity: Bool)
        /// A service principal's credentials in the nodePublishSecretRef data are missing.
        case servicePrincipal(ServicePrincipalProblem)
        /// `keyvaultName` is empty.
        case keyVaultNameMissing
        /// `tenantID` (and `tenantId`) is empty.
        case tenantMissing
        /// `keyvaultName` is not a valid vault name.
        case invalidKeyVaultName(InvalidVaultName)
        /// `objects` is empty.
        case objectsMissing
        /// `objects` is not YAML of the shape `array:` of strings; `detail` is the decoder's reason.
        case objectsNotYAML(detail: String)
        /// Entry `index` of `objects` is not a YAML mapping of the object fields; `detail` is the decoder's reason.
        case objectNotYAML(index: Int, detail: String)
        /// Entry `object.index` of `objects` has a field that is wrong.
        case invalidObject(ObjectReference, ObjectProblem)
        /// Entry `index` of `objects` is a selector (`objectNameRegex`, `objectTags`) that cannot be used.
        case invalidSelector(index: Int, SelectorProblem)
        /// Entry `object.index` of `objects` has an `objectJSONFields` that cannot be used.
        case invalidJSONFields(ObjectReference, JSONFieldsProblem)
        /// `maxSelectedObjects` is not a whole number from 1 to 1000.
        case maxSelectedObjectsOutOfRange
        /// `cloudName` names no cloud.
        case unknownCloud(name: String)
        /// `cloudName` is `AzureStackCloud` and its environment file (`cloudEnvFileName`) cannot be read.
        case azureStackEnvironmentUnreadable(path: String)
        /// `cloudName` is `AzureStackCloud` and its environment file is not a valid environment.
        case azureStackEnvironmentInvalid(path: String)

        /// The upstream provider's error text.
        package var message: String {
            switch self {
            case .podNameMissing: "pod name is not provided"
            case .podNamespaceMissing: "pod namespace is not provided"
            case .invalidFlag(let flag): flag.message
            case .conflictingIdentityModes:
                "only one identity mode can be enabled at a time: usePodIdentity, useVMManagedIdentity, or useAzureTokenProxy"
            case .podIdentityUnsupported:
                "usePodIdentity is not supported: AAD pod identity is deprecated upstream; use workload identity (clientID) or useVMManagedIdentity"
            case .azureTokenProxyUnsupported: "useAzureTokenProxy (AKS identity binding) is not supported by the built-in provider"
            case .workloadIdentityToken(let problem, let managedIdentity):
                "failed to build auth config for mode \(managedIdentity ? "VMManagedIdentity" : "None"): failed to parse workload identity tokens, error: \(problem.message)"
            case .servicePrincipal(let problem): "failed to build auth config for mode None: \(problem.message)"
            case .keyVaultNameMissing: "keyvaultName is not provided"
            case .tenantMissing: "tenantId is not provided"
            case .invalidKeyVaultName(let invalid): invalid.message
            case .objectsMissing: "objects is not set"
            case .objectsNotYAML(let detail): "failed to yaml unmarshal objects, error: \(detail)"
            case .objectNotYAML(let index, let detail): "unmarshal failed for keyVaultObjects at index \(index), error: \(detail)"
            case .invalidObject(let object, let problem):
                "failed to get objectType:\(object.type), objectName:\(object.name), objectVersion:\(object.version): \(problem.message)"
            case .invalidSelector(let index, let problem): "objects[\(index)] (a selector): \(problem.message)"
            case .invalidJSONFields(let object, let problem): "objects[\(object.index)] (objectName \(object.name)): \(problem.message)"
            case .maxSelectedObjectsOutOfRange:
                "maxSelectedObjects must be a whole number from \(AzureMountParameters.maxSelectedObjectsRange.lowerBound) to \(AzureMountParameters.maxSelectedObjectsRange.upperBound) (default \(AzureMountParameters.defaultMaxSelectedObjects))"
            case .unknownCloud(let name):
                "cloudName \(name) is not valid, error: autorest/azure: There is no cloud environment matching the name \"\(name.uppercased())\""
            case .azureStackEnvironmentUnreadable(let path):
                "cloudName AzureStackCloud is not valid, error: open \(path): no such file or directory"
            case .azureStackEnvironmentInvalid(let path):
                "cloudName AzureStackCloud is not valid, error: \(path) is not a valid environment file"
            }
        }

        /// The message.
        package var description: String { message }
    }

    /// A value that Go's `strconv.ParseBool` refuses, for the flag `flag`.
    package struct InvalidBoolean: Error, Sendable, Equatable {
        /// The parameter (`useVMManagedIdentity`…) or object field (`optional`).
        package var flag: String
        /// The value as written (trimmed).
        package var text: String

        /// `text` refused for `flag`.
        package init(flag: String, text: String) {
            self.flag = flag
            self.text = text
        }

        /// The upstream text.
        package var message: String { "failed to parse \(flag) flag, error: strconv.ParseBool: parsing \"\(text)\": invalid syntax" }
    }

    /// A vault name Key Vault does not accept.
    package struct InvalidVaultName: Error, Sendable, Equatable {
        /// What is wrong with it.
        package enum Reason: Sendable, Equatable {
            /// Fewer than 3 or more than 24 characters.
            case length
            /// A character other than `-`, an ASCII letter or digit.
            case characters
        }

        /// The name.
        package var name: String
        /// Why it is refused.
        package var reason: Reason

        /// `name`, refused for `reason`.
        package init(name: String, reason: Reason) {
            self.name = name
            self.reason = reason
        }

        /// The upstream text.
        package var message: String {
            switch reason {
            case .length: "failed to get vault: Invalid vault name: \"\(name)\", must be between 3 and 24 chars"
            case .characters: "failed to get vault: Invalid vault name: \"\(name)\", must match [-a-zA-Z0-9]{3,24}"
            }
        }
    }

    /// Why the pod's service account token for an audience cannot be had from kubelet's
    /// `csi.storage.k8s.io/serviceAccount.tokens`.
    package enum ServiceAccountTokenProblem: Error, Sendable, Equatable, CustomStringConvertible {
        /// The attribute is empty: kubelet sent no tokens (no `tokenRequests` in the CSIDriver, or none given).
        case tokensMissing
        /// The attribute is not a JSON object of audience to token.
        case tokensNotJSON
        /// No token for `audience` among them.
        case noTokenForAudience(String)

        /// The upstream text.
        package var message: String {
            switch self {
            case .tokensMissing: "service account tokens not found"
            case .tokensNotJSON: "failed to unmarshal service account tokens, error: not a JSON object of audience to token"
            case .noTokenForAudience(let audience): "token for audience \(audience) not found"
            }
        }

        /// The message.
        package var description: String { message }
    }

    /// What is missing from the nodePublishSecretRef data of a service principal.
    package enum ServicePrincipalProblem: Sendable, Equatable {
        /// No data at all (no nodePublishSecretRef, or an empty Secret).
        case secretNotSet
        /// No non-empty `clientid`.
        case clientIDMissing
        /// No non-empty `clientsecret`.
        case clientSecretMissing

        /// The upstream text, after `failed to build auth config for mode None: `.
        package var message: String {
            switch self {
            case .secretNotSet: "failed to get credentials, nodePublishSecretRef secret is not set"
            case .clientIDMissing: "could not find clientid in secrets"
            case .clientSecretMissing: "could not find clientsecret in secrets"
            }
        }
    }

    /// Which entry of `objects` a problem is in, as the upstream text names it.
    package struct ObjectReference: Sendable, Equatable {
        /// The entry's index in `objects`.
        package var index: Int
        /// `objectType` as written (trimmed).
        package var type: String
        /// `objectName` (trimmed).
        package var name: String
        /// `objectVersion` (trimmed).
        package var version: String

        /// Entry `index`, of `objectType` `type`, `objectName` `name` and `objectVersion` `version`.
        package init(index: Int, type: String, name: String, version: String) {
            self.index = index
            self.type = type
            self.name = name
            self.version = version
        }
    }

    /// What is wrong with one field of an `objects` entry.
    package enum ObjectProblem: Sendable, Equatable {
        /// `objectType` is not `secret`, `key` or `cert`.
        case unknownType
        /// `objectFormat` (as written) is not PEM or PFX.
        case invalidFormat(String)
        /// `objectFormat: pfx` on an object that is not a secret.
        case pfxNeedsSecret
        /// `objectEncoding` on an object that is not a secret.
        case encodingNeedsSecret
        /// `objectEncoding` (as written) is not hex, base64 or utf-8.
        case invalidEncoding(String)
        /// Neither `objectAlias` nor `objectName` gives a file name.
        case fileNameEmpty
        /// The file name (`objectAlias`, else `objectName`) is absolute.
        case fileNameAbsolute
        /// The file name contains `..`.
        case fileNameClimbs
        /// `filePermission` is not an octal mode up to 0777.
        case invalidFilePermission(String)
        /// `objectName` is empty (only an alias names the file).
        case nameMissing
        /// `optional` is not a Go boolean.
        case invalidOptional(InvalidBoolean)
        /// The object's own `keyvaultName` is not a valid vault name.
        case invalidKeyVaultName(InvalidVaultName)

        /// The upstream text of the cause.
        package var message: String {
            switch self {
            case .unknownType: "Invalid vaultObjectTypes. Should be secret, key, or cert"
            case .invalidFormat(let text): "invalid objectFormat: \(text), should be PEM or PFX"
            case .pfxNeedsSecret: "PFX format only supported for objectType: secret"
            case .encodingNeedsSecret: "objectEncoding only supported for objectType: secret"
            case .invalidEncoding(let text): "invalid objectEncoding: \(text), should be hex, base64 or utf-8"
            case .fileNameEmpty: "file name must not be empty"
            case .fileNameAbsolute: "file name must be a relative path"
            case .fileNameClimbs: "file name must not contain '..'"
            case .invalidFilePermission(let text): "invalid filePermission: \(text), should be an octal mode such as 0644"
            case .nameMissing: "objectName is not set"
            case .invalidOptional(let invalid): invalid.message
            case .invalidKeyVaultName(let invalid): invalid.message
            }
        }
    }

    /// The audience of the token that workload identity exchanges (kubelet's `tokenRequests` entry).
    package static let workloadIdentityAudience = "api://AzureADTokenExchange"

    /// Parses `attributes` (SPC parameters + volume context + tokens) and `secrets` (nodePublishSecretRef data).
    package init(attributes: [String: String], secrets: [String: String], defaultFilePermission: UInt32) throws(Invalid) {
        func value(_ key: String) -> String { (attributes[key] ?? "").trimmingWhitespace() }

        podName = value(VolumeContextKey.podName)
        guard !podName.isEmpty else { throw .podNameMissing }
        podNamespace = value(VolumeContextKey.podNamespace)
        guard !podNamespace.isEmpty else { throw .podNamespaceMissing }

        func flag(_ name: String) throws(Invalid) -> Bool {
            do { return try Self.parseBool(value(name), flag: name) } catch { throw .invalidFlag(error) }
        }
        let usePodIdentity = try flag("usePodIdentity")
        let useVMManagedIdentity = try flag("useVMManagedIdentity")
        let useAzureTokenProxy = try flag("useAzureTokenProxy")
        if [usePodIdentity, useVMManagedIdentity, useAzureTokenProxy].filter({ $0 }).count > 1 {
            throw .conflictingIdentityModes
        }
        if usePodIdentity { throw .podIdentityUnsupported }
        if useAzureTokenProxy { throw .azureTokenProxyUnsupported }

        keyVaultName = value("keyvaultName")
        guard !keyVaultName.isEmpty else { throw .keyVaultNameMissing }
        let tenant = value("tenantID").isEmpty ? value("tenantId") : value("tenantID")
        guard !tenant.isEmpty else { throw .tenantMissing }
        tenantID = tenant
        cloudName = value("cloudName").isEmpty ? nil : value("cloudName")
        cloudEnvironmentFile = value("cloudEnvFileName").isEmpty ? nil : value("cloudEnvFileName")
        self.defaultFilePermission = defaultFilePermission

        let clientID = value("clientID")
        var workloadToken: String?
        if !clientID.isEmpty {
            do {
                workloadToken = try Self.serviceAccountToken(
                    attributes[VolumeContextKey.serviceAccountTokens] ?? "",
                    audience: Self.workloadIdentityAudience
                )
            } catch {
                throw .workloadIdentityToken(error, managedIdentity: useVMManagedIdentity)
            }
        }
        if useVMManagedIdentity {
            let userAssigned = value("userAssignedIdentityID")
            identity = .managedIdentity(clientID: userAssigned.isEmpty ? nil : userAssigned)
        } else if let workloadToken {
            identity = .workloadIdentity(clientID: clientID, serviceAccountToken: workloadToken)
        } else {
            identity = try Self.servicePrincipal(from: secrets)
        }

        let objectsText = value("objects")
        guard !objectsText.isEmpty else { throw .objectsMissing }
        objects = try Self.parseObjects(objectsText)
        if !objects.isEmpty {
            do { try Self.validateVaultName(keyVaultName) } catch { throw .invalidKeyVaultName(error) }
        }
        maxSelectedObjects = try Self.parseMaxSelectedObjects(value("maxSelectedObjects"))
    }

    /// Go's `strconv.ParseBool` over a trimmed value; empty means false.
    static func parseBool(_ text: String, flag: String) throws(InvalidBoolean) -> Bool {
        switch text {
        case "": return false
        case "1", "t", "T", "TRUE", "true", "True": return true
        case "0", "f", "F", "FALSE", "false", "False": return false
        default: throw InvalidBoolean(flag: flag, text: text)
        }
    }

    /// The token for `audience` from kubelet's `serviceAccount.tokens` JSON.
    package static func serviceAccountToken(_ json: String, audience: String) throws(ServiceAccountTokenProblem) -> String {
        guard !json.isEmpty else { throw .tokensMissing }
        struct Entry: Decodable { var token: String? }
        let tokens: [String: Entry]
        do {
            tokens = try JSONDecoder().decode([String: Entry].self, from: Data(json.utf8))
        } catch {
            throw .tokensNotJSON
        }
        guard let token = tokens[audience]?.token, !token.isEmpty else { throw .noTokenForAudience(audience) }
        return token
    }

    static func servicePrincipal(from secrets: [String: String]) throws(Invalid) -> AzureIdentity {
        guard !secrets.isEmpty else { throw .servicePrincipal(.secretNotSet) }
        let lowered = Dictionary(secrets.map { ($0.key.lowercased(), $0.value) }, uniquingKeysWith: { first, _ in first })
        guard let clientID = lowered["clientid"], !clientID.trimmingWhitespace().isEmpty else {
            throw .servicePrincipal(.clientIDMissing)
        }
        guard let clientSecret = lowered["clientsecret"], !clientSecret.trimmingWhitespace().isEmpty else {
            throw .servicePrincipal(.clientSecretMissing)
        }
        return .servicePrincipal(clientID: clientID.trimmingWhitespace(), clientSecret: clientSecret.trimmingWhitespace())
    }

    static func validateVaultName(_ name: String) throws(InvalidVaultName) {
        guard (3...24).contains(name.count) else { throw InvalidVaultName(name: name, reason: .length) }
        guard name.allSatisfy({ $0 == "-" || ($0.isASCII && ($0.isLetter || $0.isNumber)) }) else {
            throw InvalidVaultName(name: name, reason: .characters)
        }
    }

    /// Objects already parsed, by the parameter's text: every pod of a SecretProviderClass sends the same text,
    /// and the YAML parse was the largest cost of a publish after I/O. Bounded; errors are not kept.
    private static let parsedObjects = Mutex<[String: [KeyVaultObject]]>([:])

    /// Parses `array:` of YAML strings, each a mapping describing one object, and validates each.
    package static func parseObjects(_ text: String) throws(Invalid) -> [KeyVaultObject] {
        if let known = parsedObjects.withLock({ $0[text] }) { return known }
        let objects = try parseObjectsUncached(text)
        parsedObjects.withLock { cache in
            if cache.count >= 64 { cache.removeAll() }
            cache[text] = objects
        }
        return objects
    }

    private static func parseObjectsUncached(_ text: String) throws(Invalid) -> [KeyVaultObject] {
        struct Outer: Decodable { var array: [String]? }
        let outer: Outer
        do {
            outer = try YAMLDecoder().decode(Outer.self, from: text)
        } catch {
            throw .objectsNotYAML(detail: Self.describe(error))
        }
        var result: [KeyVaultObject] = []
        for (index, item) in (outer.array ?? []).enumerated() {
            result.append(try parseObject(item, at: index))
        }
        try checkJSONFieldFileNames(result)
        return result
    }

    /// Parses and validates one entry of `objects` (the YAML text of one `- |` item), at `index` in the list:
    /// what ``parseObjects(_:)`` does for each entry, for a caller that wants every broken entry, not the first.
    package static func parseObject(_ item: String, at index: Int) throws(Invalid) -> KeyVaultObject {
        struct Inner: Decodable {
            var objectName: String?
            var objectType: String?
            var objectAlias: String?
            var objectVersion: String?
            var objectVersionHistory: Int32?
            var objectFormat: String?
            var objectEncoding: String?
            var filePermission: String?
            var optional: FlexibleBool?
            var keyvaultName: String?
            var tenantID: String?
            var tenantId: String?
            var objectNameRegex: String?
            var objectTags: String?
            var objectJSONFields: String?
        }
        let inner: Inner
        do {
            inner = try YAMLDecoder().decode(Inner.self, from: item)
        } catch {
            throw .objectNotYAML(index: index, detail: Self.describe(error))
        }
        let name = (inner.objectName ?? "").trimmingWhitespace()
        let typeText = (inner.objectType ?? "").trimmingWhitespace()
        let version = (inner.objectVersion ?? "").trimmingWhitespace()
        let reference = ObjectReference(index: index, type: typeText, name: name, version: version)
        func invalid(_ problem: ObjectProblem) -> Invalid { .invalidObject(reference, problem) }
        guard let type = KeyVaultObject.ObjectType(rawValue: typeText) else { throw invalid(.unknownType) }
        let selector: SecretSelector?
        do {
            selector = try parseSelector(regex: inner.objectNameRegex, tags: inner.objectTags)
        } catch {
            throw .invalidSelector(index: index, error)
        }
        if selector != nil {
            if type != .secret { throw .invalidSelector(index: index, .notSecret) }
            let conflicting: [(String, Bool)] = [
                ("objectName", !name.isEmpty),
                ("objectAlias", !(inner.objectAlias ?? "").trimmingWhitespace().isEmpty),
                ("objectVersion", !version.isEmpty),
                ("objectVersionHistory", inner.objectVersionHistory != nil),
                ("objectJSONFields", inner.objectJSONFields != nil),
            ]
            if let (field, _) = conflicting.first(where: \.1) { throw .invalidSelector(index: index, .conflictingField(field)) }
        }
        let formatText = (inner.objectFormat ?? "").trimmingWhitespace().lowercased()
        guard let format = formatText.isEmpty ? .pem : KeyVaultObject.Format(rawValue: formatText) else {
            throw invalid(.invalidFormat(inner.objectFormat ?? ""))
        }
        if format == .pfx && type != .secret { throw invalid(.pfxNeedsSecret) }
        let encodingText = (inner.objectEncoding ?? "").trimmingWhitespace().lowercased()
        if !encodingText.isEmpty && type != .secret { throw invalid(.encodingNeedsSecret) }
        guard let encoding = encodingText.isEmpty ? .utf8 : KeyVaultObject.Encoding(rawValue: encodingText) else {
            throw invalid(.invalidEncoding(inner.objectEncoding ?? ""))
        }
        let alias = (inner.objectAlias ?? "").trimmingWhitespace()
        let fileName = alias.isEmpty ? name : alias
        if selector == nil {
            if fileName.isEmpty { throw invalid(.fileNameEmpty) }
            if fileName.hasPrefix("/") { throw invalid(.fileNameAbsolute) }
            if fileName.contains("..") { throw invalid(.fileNameClimbs) }
        }
        var permission: UInt32?
        let permissionText = (inner.filePermission ?? "").trimmingWhitespace()
        if !permissionText.isEmpty {
            guard let parsed = UInt32(permissionText, radix: 8), parsed <= 0o777 else {
                throw invalid(.invalidFilePermission(permissionText))
            }
            permission = parsed
        }
        // An alias only names the file: without a name there is nothing to fetch.
        if name.isEmpty && selector == nil { throw invalid(.nameMissing) }
        var jsonFields: [JSONField] = []
        if let fieldsText = inner.objectJSONFields {
            func invalidFields(_ problem: JSONFieldsProblem) -> Invalid { .invalidJSONFields(reference, problem) }
            if type != .secret { throw invalidFields(.notSecret) }
            if (inner.objectVersionHistory ?? 0) > 1 { throw invalidFields(.withVersionHistory) }
            do {
                jsonFields = try parseJSONFields(fieldsText, alias: alias)
            } catch {
                throw invalidFields(error)
            }
        }
        var optional = false
        switch inner.optional {
        case .none: break
        case .bool(let flag)?: optional = flag
        case .text(let text)?:
            do {
                optional = try parseBool(text.trimmingWhitespace(), flag: "optional")
            } catch {
                throw invalid(.invalidOptional(error))
            }
        }
        let vault = (inner.keyvaultName ?? "").trimmingWhitespace()
        if !vault.isEmpty {
            do {
                try validateVaultName(vault)
            } catch {
                throw invalid(.invalidKeyVaultName(error))
            }
        }
        let objectTenant = (inner.tenantID ?? "").trimmingWhitespace().isEmpty
            ? (inner.tenantId ?? "").trimmingWhitespace() : (inner.tenantID ?? "").trimmingWhitespace()
        return KeyVaultObject(
            name: name,
            type: type,
            alias: alias,
            version: version,
            versionHistory: Int(inner.objectVersionHistory ?? 0),
            format: format,
            encoding: encoding,
            filePermission: permission,
            optional: optional,
            keyVaultName: vault.isEmpty ? nil : vault,
            tenantID: objectTenant.isEmpty ? nil : objectTenant,
            selector: selector,
            jsonFields: jsonFields
        )
    }

    private static func describe(_ error: any Error) -> String {
        if let decoding = error as? DecodingError {
            switch decoding {
            case .typeMismatch(let type, let context):
                return "cannot unmarshal \(context.codingPath.map(\.stringValue).joined(separator: ".")) into \(type)"
            case .dataCorrupted(let context):
                return "invalid YAML: \(context.debugDescription)"
            case .keyNotFound(let key, _):
                return "missing key \(key.stringValue)"
            case .valueNotFound(let type, let context):
                return "missing \(type) at \(context.codingPath.map(\.stringValue).joined(separator: "."))"
            @unknown default:
                return "\(decoding)"
            }
        }
        return "\(error)"
    }
}


/// A YAML boolean, or a string Go's `strconv.ParseBool` reads (`optional: true` and `optional: "true"` alike).
enum FlexibleBool: Decodable, Equatable {
    case bool(Bool)
    case text(String)

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let flag = try? container.decode(Bool.self) {
            self = .bool(flag)
        } else {
            self = .text(try container.decode(String.self))
        }
    }
}
