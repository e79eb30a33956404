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

    /// The file the object is written to: the alias, else the name.
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

    /// Thrown for a parameter problem; `message` is the upstream text.
    package struct Invalid: Error, Equatable, CustomStringConvertible {
        /// The upstream provider's error text.
        package var message: String
        /// The message.
        package var description: String { message }
        init(_ message: String) { self.message = message }
    }

    static let workloadIdentityAudience = "api://AzureADTokenExchange"

    /// Parses `attributes` (SPC parameters + volume context + tokens) and `secrets` (nodePublishSecretRef data).
    package init(attributes: [String: String], secrets: [String: String], defaultFilePermission: UInt32) throws(Invalid) {
        func value(_ key: String) -> String { (attributes[key] ?? "").trimmingWhitespace() }

        podName = value(VolumeContextKey.podName)
        guard !podName.isEmpty else { throw Invalid("pod name is not provided") }
        podNamespace = value(VolumeContextKey.podNamespace)
        guard !podNamespace.isEmpty else { throw Invalid("pod namespace is not provided") }

        let usePodIdentity = try Self.parseBool(value("usePodIdentity"), flag: "usePodIdentity")
        let useVMManagedIdentity = try Self.parseBool(value("useVMManagedIdentity"), flag: "useVMManagedIdentity")
        let useAzureTokenProxy = try Self.parseBool(value("useAzureTokenProxy"), flag: "useAzureTokenProxy")
        if [usePodIdentity, useVMManagedIdentity, useAzureTokenProxy].filter({ $0 }).count > 1 {
            throw Invalid(
                "only one identity mode can be enabled at a time: usePodIdentity, useVMManagedIdentity, or useAzureTokenProxy"
            )
        }
        if usePodIdentity {
            throw Invalid(
                "usePodIdentity is not supported: AAD pod identity is deprecated upstream; use workload identity (clientID) or useVMManagedIdentity"
            )
        }
        if useAzureTokenProxy {
            throw Invalid("useAzureTokenProxy (AKS identity binding) is not supported by the built-in provider")
        }

        keyVaultName = value("keyvaultName")
        guard !keyVaultName.isEmpty else { throw Invalid("keyvaultName is not provided") }
        let tenant = value("tenantID").isEmpty ? value("tenantId") : value("tenantID")
        guard !tenant.isEmpty else { throw Invalid("tenantId is not provided") }
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
                throw Invalid("failed to build auth config for mode \(useVMManagedIdentity ? "VMManagedIdentity" : "None"): failed to parse workload identity tokens, error: \(error.message)")
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
        guard !objectsText.isEmpty else { throw Invalid("objects is not set") }
        objects = try Self.parseObjects(objectsText)
        if !objects.isEmpty {
            try Self.validateVaultName(keyVaultName)
        }
    }

    /// Go's `strconv.ParseBool` over a trimmed value; empty means false.
    static func parseBool(_ text: String, flag: String) throws(Invalid) -> Bool {
        switch text {
        case "": return false
        case "1", "t", "T", "TRUE", "true", "True": return true
        case "0", "f", "F", "FALSE", "false", "False": return false
        default:
            throw Invalid("failed to parse \(flag) flag, error: strconv.ParseBool: parsing \"\(text)\": invalid syntax")
        }
    }

    /// The token for `audience` from kubelet's `serviceAccount.tokens` JSON.
    package static func serviceAccountToken(_ json: String, audience: String) throws(Invalid) -> String {
        guard !json.isEmpty else { throw Invalid("service account tokens not found") }
        struct Entry: Decodable { var token: String? }
        let tokens: [String: Entry]
        do {
            tokens = try JSONDecoder().decode([String: Entry].self, from: Data(json.utf8))
        } catch {
            throw Invalid("failed to unmarshal service account tokens, error: not a JSON object of audience to token")
        }
        guard let token = tokens[audience]?.token, !token.isEmpty else {
            throw Invalid("token for audience \(audience) not found")
        }
        return token
    }

    static func servicePrincipal(from secrets: [String: String]) throws(Invalid) -> AzureIdentity {
        guard !secrets.isEmpty else {
            throw Invalid("failed to build auth config for mode None: failed to get credentials, nodePublishSecretRef secret is not set")
        }
        let lowered = Dictionary(secrets.map { ($0.key.lowercased(), $0.value) }, uniquingKeysWith: { first, _ in first })
        guard let clientID = lowered["clientid"], !clientID.trimmingWhitespace().isEmpty else {
            throw Invalid("failed to build auth config for mode None: could not find clientid in secrets")
        }
        guard let clientSecret = lowered["clientsecret"], !clientSecret.trimmingWhitespace().isEmpty else {
            throw Invalid("failed to build auth config for mode None: could not find clientsecret in secrets")
        }
        return .servicePrincipal(clientID: clientID.trimmingWhitespace(), clientSecret: clientSecret.trimmingWhitespace())
    }

    static func validateVaultName(_ name: String) throws(Invalid) {
        guard (3...24).contains(name.count) else {
            throw Invalid("failed to get vault: Invalid vault name: \"\(name)\", must be between 3 and 24 chars")
        }
        guard name.allSatisfy({ $0 == "-" || ($0.isASCII && ($0.isLetter || $0.isNumber)) }) else {
            throw Invalid("failed to get vault: Invalid vault name: \"\(name)\", must match [-a-zA-Z0-9]{3,24}")
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
        }
        let outer: Outer
        do {
            outer = try YAMLDecoder().decode(Outer.self, from: text)
        } catch {
            throw Invalid("failed to yaml unmarshal objects, error: \(Self.describe(error))")
        }
        var result: [KeyVaultObject] = []
        for (index, item) in (outer.array ?? []).enumerated() {
            let inner: Inner
            do {
                inner = try YAMLDecoder().decode(Inner.self, from: item)
            } catch {
                throw Invalid("unmarshal failed for keyVaultObjects at index \(index), error: \(Self.describe(error))")
            }
            let name = (inner.objectName ?? "").trimmingWhitespace()
            let typeText = (inner.objectType ?? "").trimmingWhitespace()
            let version = (inner.objectVersion ?? "").trimmingWhitespace()
            func wrap(_ cause: String) -> Invalid {
                Invalid("failed to get objectType:\(typeText), objectName:\(name), objectVersion:\(version): \(cause)")
            }
            guard let type = KeyVaultObject.ObjectType(rawValue: typeText) else {
                throw wrap("Invalid vaultObjectTypes. Should be secret, key, or cert")
            }
            let formatText = (inner.objectFormat ?? "").trimmingWhitespace().lowercased()
            guard let format = formatText.isEmpty ? .pem : KeyVaultObject.Format(rawValue: formatText) else {
                throw wrap("invalid objectFormat: \(inner.objectFormat ?? ""), should be PEM or PFX")
            }
            if format == .pfx && type != .secret {
                throw wrap("PFX format only supported for objectType: secret")
            }
            let encodingText = (inner.objectEncoding ?? "").trimmingWhitespace().lowercased()
            if !encodingText.isEmpty && type != .secret {
                throw wrap("objectEncoding only supported for objectType: secret")
            }
            guard let encoding = encodingText.isEmpty ? .utf8 : KeyVaultObject.Encoding(rawValue: encodingText) else {
                throw wrap("invalid objectEncoding: \(inner.objectEncoding ?? ""), should be hex, base64 or utf-8")
            }
            let alias = (inner.objectAlias ?? "").trimmingWhitespace()
            let fileName = alias.isEmpty ? name : alias
            if fileName.isEmpty { throw wrap("file name must not be empty") }
            if fileName.hasPrefix("/") { throw wrap("file name must be a relative path") }
            if fileName.contains("..") { throw wrap("file name must not contain '..'") }
            var permission: UInt32?
            let permissionText = (inner.filePermission ?? "").trimmingWhitespace()
            if !permissionText.isEmpty {
                guard let parsed = UInt32(permissionText, radix: 8), parsed <= 0o777 else {
                    throw wrap("invalid filePermission: \(permissionText), should be an octal mode such as 0644")
                }
                permission = parsed
            }
            // An alias only names the file: without a name there is nothing to fetch.
            if name.isEmpty { throw wrap("objectName is not set") }
            var optional = false
            switch inner.optional {
            case .none: break
            case .bool(let flag)?: optional = flag
            case .text(let text)?:
                do {
                    optional = try parseBool(text.trimmingWhitespace(), flag: "optional")
                } catch {
                    throw wrap(error.message)
                }
            }
            let vault = (inner.keyvaultName ?? "").trimmingWhitespace()
            if !vault.isEmpty {
                do {
                    try validateVaultName(vault)
                } catch {
                    throw wrap(error.message)
                }
            }
            let objectTenant = (inner.tenantID ?? "").trimmingWhitespace().isEmpty
                ? (inner.tenantId ?? "").trimmingWhitespace() : (inner.tenantID ?? "").trimmingWhitespace()
            result.append(
                KeyVaultObject(
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
                    tenantID: objectTenant.isEmpty ? nil : objectTenant
                )
            )
        }
        return result
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
