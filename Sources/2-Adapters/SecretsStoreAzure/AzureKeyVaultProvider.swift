import Logging
import SecretsStoreCore

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The Azure Key Vault provider, in-process: SecretProviderClass parameters in, files and object versions out,
/// byte for byte as the upstream `secrets-store-csi-driver-provider-azure` produces them.
///
/// Objects are fetched in the order the SPC lists them; the first failure fails the whole mount and no file is
/// returned, except that an object marked `optional: true` which Key Vault does not have (404 for the object
/// or the version asked for) is left out and reported in ``ProviderResponse/missingOptionalObjects``. A volume
/// whose objects are all optional and all missing fails as not found (nothing to publish). Objects may name
/// their own `keyvaultName` and `tenantID`; tokens stay cached per tenant and resource (see
/// ``TokenProvider``), so several vaults of one tenant cost one token.
///
/// A selector (`objectNameRegex`/`objectTags`) writes every enabled secret its vault's list matches, each at
/// its latest version under its own name; the lists are read before any object is fetched, one request per
/// page, and a secret whose list entry shows the `updated` of the answer kept for it is not fetched again
/// (``SelectedSecretCache``, shared by every volume and refresh). A secret a selector matched that is gone by
/// its GET (404) is left out. An entry with `objectJSONFields` writes the fields of its secret's JSON value,
/// one file each, and the whole value only under its `objectAlias`.
package final class AzureKeyVaultProvider: SecretsProvider {
    /// The provider's name, as a SecretProviderClass's `spec.provider` and `provider <name>` spell it.
    package static let name = "azure"

    private let http: AzureHTTP
    private let tokens: TokenProvider
    private let overrides: AzureEndpointOverrides
    private let defaultCloudName: String
    private let onKeyVaultResponse: @Sendable (Int) -> Void
    /// The answers kept for the secrets selectors matched, across volumes and refreshes.
    let selectedSecrets = SelectedSecretCache()

    /// - Parameters:
    ///   - overrides: operator settings: endpoints for emulators and private clouds, and the
    ///     `--construct-pem-chain` / `--write-cert-and-key-in-separate-files` flags.
    ///   - defaultCloudName: the cloud when an SPC sets no `cloudName`.
    ///   - onKeyVaultResponse: told the HTTP status of every Key Vault answer (for metrics).
    package init(
        http: AzureHTTP,
        overrides: AzureEndpointOverrides = .init(),
        defaultCloudName: String = "AzurePublicCloud",
        onKeyVaultResponse: @escaping @Sendable (Int) -> Void = { _ in }
    ) {
        self.http = http
        self.onKeyVaultResponse = onKeyVaultResponse
        self.tokens = TokenProvider(http: http, imdsEndpoint: overrides.imdsEndpoint ?? "http://169.254.169.254")
        self.overrides = overrides
        self.defaultCloudName = defaultCloudName
    }

    /// Parses the volume's parameters, fetches every object and returns its files and versions; or throws the
    /// first failure in the objects' order: bad parameters as `.misconfigured`; Key Vault's 400 and other 4xx
    /// as `.rejected`; 401/403 and refused identities as `.permissionDenied`; 404 as `.objectNotFound` (for an
    /// optional object: left out, unless every object is optional and missing); 429 as `.throttled`; 408, 5xx
    /// and transport failures as `.unavailable` (after the retries ``KeyVaultClient`` makes).
    package func fetch(_ request: ProviderRequest, logger: Logger) async throws(ProviderFailure) -> ProviderResponse {
        let parameters: AzureMountParameters
        let cloud: AzureCloud
        do {
            parameters = try AzureMountParameters(
                attributes: request.attributes,
                secrets: request.secrets,
                defaultFilePermission: request.permission
            )
            cloud = try AzureCloud.named(
                parameters.cloudName ?? defaultCloudName,
                environmentFile: parameters.cloudEnvironmentFile,
                authorityHostOverride: overrides.authorityHost
            )
        } catch {
            throw .misconfigured("failed to mount objects, error: \(error.message)")
        }
        var logger = logger
        logger[metadataKey: "azure.vault"] = "\(parameters.keyVaultName)"
        // One client per (vault, tenant) the objects read; they share the token cache.
        var clients: [String: KeyVaultClient] = [:]
        var objectClients: [KeyVaultClient] = []
        for object in parameters.objects {
            let vault = parameters.vaultName(of: object)
            let tenant = parameters.tenant(of: object)
            let key = "\(vault.lowercased())|\(tenant)"
            if clients[key] == nil {
                var clientLogger = logger
                clientLogger[metadataKey: "azure.vault"] = "\(vault)"
                clients[key] = KeyVaultClient(
                    http: http,
                    tokens: tokens,
                    identity: parameters.identity,
                    tenantID: tenant,
                    authorityHost: cloud.authorityHost,
                    vaultURL: overrides.vaultURL(name: vault, cloud: cloud),
                    resource: cloud.keyVaultResource,
                    verifyChallengeResource: overrides.keyVaultURLTemplate == nil,
                    deadline: request.deadline,
                    logger: clientLogger,
                    onResponse: onKeyVaultResponse
                )
            }
            objectClients.append(clients[key]!)
        }
        var files: [SecretFile] = []
        var versions: [ObjectVersion] = []
        var missing: [MissingObject] = []
        var parts: [String: CertificateBundleParts] = [:]
        let units = try await fetchUnits(parameters, clients: objectClients)
        let results = await fetchAll(units)
        for (unit, result) in zip(units, results) {
            let object = unit.object
            if unit.match != nil, case .failure(let error) = result, Self.isMissing(error) {
                logger.debug("selected secret gone before its read; publishing without it", metadata: ["azure.object": "secret/\(object.name)"])
                continue
            }
            let mode = object.filePermission ?? parameters.defaultFilePermission
            let idPrefix = parameters.readsAnotherVault(object) ? "\(parameters.vaultName(of: object))/" : ""
            switch result {
            case .success(let output):
                for item in output.items {
                    files.append(SecretFile(path: item.path, mode: mode, contents: item.contents))
                    if item.recordsVersion { versions.append(ObjectVersion(id: idPrefix + item.id, version: item.version)) }
                }
                parts.merge(output.parts) { first, _ in first }
                logger.debug("fetched key vault object", metadata: ["azure.object": "\(idPrefix)\(object.type.rawValue)/\(object.name)"])
            case .failure(let error):
                guard object.optional, Self.isMissing(error) else { throw Self.providerFailure(error, object: object) }
                let id = "\(idPrefix)\(object.type.rawValue)/\(object.name)"
                missing.append(MissingObject(id: id, path: object.fileName))
                logger.debug("optional key vault object not found; publishing without it", metadata: ["azure.object": "\(id)"])
            }
        }
        if !parameters.objects.isEmpty, missing.count == parameters.objects.count {
            throw .objectNotFound(
                "failed to mount objects, error: every object is optional and none is in Key Vault ("
                    + missing.map(\.id).joined(separator: ", ") + "); refusing to publish an empty volume"
            )
        }
        if !parameters.objects.isEmpty, versions.isEmpty {
            let selectors = parameters.objects.indices.filter { parameters.objects[$0].selector != nil }.map { "objects[\($0)]" }
            throw .objectNotFound(
                "failed to mount objects, error: no enabled secret matches the selectors (" + selectors.joined(separator: ", ") + ")"
                    + (missing.isEmpty ? "" : " and no optional object is in Key Vault (" + missing.map(\.id).joined(separator: ", ") + ")")
                    + "; refusing to publish an empty volume"
            )
        }
        return ProviderResponse(files: files, objectVersions: versions, missingOptionalObjects: missing, certificateParts: parts)
    }

    /// Whether `error` says Key Vault has no such object or version: a 404 with Key Vault's
    /// `SecretNotFound`/`KeyNotFound`/`CertificateNotFound` code, or a version history without the version
    /// asked for. Other 404s (a wrong vault URL) are not "missing".
    private static func isMissing(_ error: FetchError) -> Bool {
        switch error {
        case .keyVault(let failure):
            return failure.kind == .notFound && (failure.code.map(KeyVaultFailure.objectNotFoundCodes.contains) ?? false)
        case .contents, .decoding, .jsonFields:
            return false
        }
    }

    /// Key Vault requests of one volume in flight at once, after the first.
    static let parallelFetches = 4

    /// Every object's outcome, in the objects' order. The first object of each tenant whose token is not
    /// cached yet is fetched alone, in order, so that token is requested once per tenant; the rest (every
    /// object, when the tokens are cached) run ``parallelFetches`` at a time. When the first object was fetched
    /// alone and failed (and is not an optional one that is missing), the result holds only that failure.
    private func fetchAll(_ units: [FetchUnit]) async -> [Result<ObjectOutput, FetchError>] {
        guard !units.isEmpty else { return [] }
        var results = [Result<ObjectOutput, FetchError>?](repeating: nil, count: units.count)
        var seenTenants: Set<String> = []
        var rest: [Int] = []
        for index in units.indices {
            guard seenTenants.insert(units[index].client.tenantID).inserted, !units[index].client.hasFreshToken else {
                rest.append(index)
                continue
            }
            let result = await result(of: units[index])
            results[index] = result
            if index == 0, case .failure(let error) = result, !((units[0].object.optional || units[0].match != nil) && Self.isMissing(error)) {
                return [result]
            }
        }
        await withTaskGroup(of: (Int, Result<ObjectOutput, FetchError>).self) { group in
            var next = 0
            while next < rest.count, next < Self.parallelFetches {
                let index = rest[next]
                group.addTask { (index, await self.result(of: units[index])) }
                next += 1
            }
            for await (index, result) in group {
                results[index] = result
                if next < rest.count {
                    let index = rest[next]
                    group.addTask { (index, await self.result(of: units[index])) }
                    next += 1
                }
            }
        }
        return results.compactMap { $0 }
    }

    private func result(of unit: FetchUnit) async -> Result<ObjectOutput, FetchError> {
        do {
            if let match = unit.match {
                let body = try await matchedSecretBody(unit.object, match: match, client: unit.client)
                return .success(try output(of: unit.object, body: body))
            }
            return .success(try await fetch(unit.object, client: unit.client))
        } catch {
            return .failure(error)
        }
    }

    /// One produced file.
    private struct Item {
        var path: String
        var contents: [UInt8]
        var id: String
        var version: String
        /// Whether the item's object version is reported: once per object (the first of its JSON fields).
        var recordsVersion = true
    }

    /// What one object produced: its files, and what Secret sync needs of its PKCS#12 files.
    private struct ObjectOutput {
        var items: [Item] = []
        var parts: [String: CertificateBundleParts] = [:]
    }

    /// Why one object could not be fetched: Key Vault refused or failed, the bundle could not be turned into
    /// file contents, the answer was not the JSON Key Vault documents, or a field `objectJSONFields` names could
    /// not be read from the value.
    package enum FetchError: Error {
        case keyVault(KeyVaultFailure)
        case contents(ObjectContents.Failure)
        /// A Key Vault answer that did not parse: what was wrong, and the `DecodingError` when `JSONDecoder` said so.
        case decoding(String, cause: ErrorCause? = nil)
        case jsonFields(JSONFieldExtraction.Failure)
    }

    /// The files of `object` (an entry naming one secret) from the body of a GET of its current version.
    private func output(of object: KeyVaultObject, body: [UInt8]) throws(FetchError) -> ObjectOutput {
        let fetched = try Self.objectOutput(
            from: body,
            object: object,
            constructChain: overrides.constructPEMChain,
            separateFiles: overrides.writeCertAndKeyInSeparateFiles
        )
        return try Self.output(of: object, fetched: fetched)
    }

    /// The files of one version of `object`: its fields with `objectJSONFields` (and the whole value only under
    /// its alias), else its files as fetched.
    private static func output(of object: KeyVaultObject, fetched: VersionOutput) throws(FetchError) -> ObjectOutput {
        var output = ObjectOutput()
        let id = "\(object.type.rawValue)/\(object.name)"
        if !object.jsonFields.isEmpty {
            let value = fetched.files.last(where: { $0.suffix.isEmpty })?.contents ?? []
            let fields: [[UInt8]]
            do {
                fields = try JSONFieldExtraction.extract(object.jsonFields, from: value)
            } catch {
                throw .jsonFields(error)
            }
            for (index, (field, contents)) in zip(object.jsonFields, fields).enumerated() {
                output.items.append(Item(path: field.fileName, contents: contents, id: id, version: fetched.version, recordsVersion: index == 0))
            }
            guard !object.alias.isEmpty else { return output }
        }
        for file in fetched.files {
            output.items.append(
                Item(path: object.fileName + file.suffix, contents: file.contents, id: id, version: fetched.version, recordsVersion: object.jsonFields.isEmpty)
            )
        }
        if let parts = fetched.parts { output.parts[object.fileName] = parts }
        return output
    }

    private func fetch(_ object: KeyVaultObject, client: KeyVaultClient) async throws(FetchError) -> ObjectOutput {
        var output = ObjectOutput()
        guard object.versionHistory > 1 else {
            let fetched = try await fetchVersion(object, version: object.version, client: client)
            if !object.jsonFields.isEmpty { return try Self.output(of: object, fetched: fetched) }
            for file in fetched.files {
                output.items.append(
                    Item(path: object.fileName + file.suffix, contents: file.contents, id: "\(object.type.rawValue)/\(object.name)", version: fetched.version)
                )
            }
            if let parts = fetched.parts { output.parts[object.fileName] = parts }
            return output
        }
        let history = try await versionHistory(object, client: client)
        if history.isEmpty, object.optional {
            // The version asked for is not among the object's versions: for an optional object, it is missing.
            throw .keyVault(
                KeyVaultFailure(
                    kind: .notFound,
                    message: "version \(object.version) of \(object.name) not found in its version history",
                    code: object.type == .secret ? "SecretNotFound" : object.type == .key ? "KeyNotFound" : "CertificateNotFound"
                )
            )
        }
        for (index, version) in history.enumerated() {
            let fetched = try await fetchVersion(object, version: version, client: client)
            let path = "\(object.fileName)/\(index)"
            for file in fetched.files {
                output.items.append(
                    Item(path: path + file.suffix, contents: file.contents, id: "\(object.type.rawValue)/\(object.name)/\(index)", version: fetched.version)
                )
            }
            if let parts = fetched.parts { output.parts[path] = parts }
        }
        return output
    }

    private func collection(_ type: KeyVaultObject.ObjectType) -> String {
        switch type {
        case .secret: return "secrets"
        case .key: return "keys"
        case .cert: return "certificates"
        }
    }

    private func fetchVersion(
        _ object: KeyVaultObject,
        version: String,
        client: KeyVaultClient
    ) async throws(FetchError) -> VersionOutput {
        let path = "/\(collection(object.type))/\(PercentEncoding.escape(object.name))/\(PercentEncoding.escape(version))"
        let body: [UInt8]
        do {
            body = try await client.get(path)
        } catch {
            throw .keyVault(error)
        }
        return try Self.objectOutput(
            from: body,
            object: object,
            constructChain: overrides.constructPEMChain,
            separateFiles: overrides.writeCertAndKeyInSeparateFiles
        )
    }

    /// What one fetched version produces: its files by suffix (`""` for the object's own file; `.crt` and
    /// `.key` before it with `--write-cert-and-key-in-separate-files`), its version, and for a PKCS#12 written
    /// as `objectFormat: pfx` the parts Secret sync needs.
    package struct VersionOutput {
        /// The files, in the order they are returned.
        package var files: [(suffix: String, contents: [UInt8])]
        /// The version fetched (last segment of the bundle's id).
        package var version: String
        /// Certificates and key of a PKCS#12 written as `pfx`, for `kubernetes.io/tls` sync; else `nil`.
        package var parts: CertificateBundleParts?
    }

    /// The files and version of `object` from the body of a Key Vault GET of one version, as the provider
    /// writes them with the given flags.
    package static func objectOutput(
        from body: [UInt8],
        object: KeyVaultObject,
        constructChain: Bool = true,
        separateFiles: Bool = false
    ) throws(FetchError) -> VersionOutput {
        do {
            switch object.type {
            case .secret:
                let bundle = try decode(SecretBundle.self, body)
                guard let value = bundle.value else { throw FetchError.decoding("secret value is nil") }
                guard let id = bundle.id else { throw FetchError.decoding("secret id is nil") }
                let isCertificateBacked = bundle.kid != nil
                let files = try ObjectContents.secretFiles(
                    value: value,
                    contentType: bundle.contentType,
                    isCertificateBacked: isCertificateBacked,
                    format: object.format,
                    encoding: object.encoding,
                    constructChain: constructChain,
                    separateFiles: separateFiles
                )
                var parts: CertificateBundleParts?
                if isCertificateBacked, object.format == .pfx, bundle.contentType == "application/x-pkcs12" {
                    parts = ObjectContents.certificateParts(pkcs12Base64: value)
                }
                return VersionOutput(files: files, version: Self.lastSegment(id), parts: parts)
            default:
                let (contents, version) = try objectContents(from: body, object: object)
                return VersionOutput(files: [("", contents)], version: version, parts: nil)
            }
        } catch let error as FetchError {
            throw error
        } catch let error as ObjectContents.Failure {
            throw .contents(error)
        } catch {
            throw .decoding("\(error)", cause: ErrorCause(error))
        }
    }

    /// The file contents and version of `object` from the body of a Key Vault GET of one version (a secret,
    /// key or certificate bundle), as the provider writes them.
    package static func objectContents(
        from body: [UInt8],
        object: KeyVaultObject
    ) throws(FetchError) -> (contents: [UInt8], version: String) {
        do {
            switch object.type {
            case .secret:
                let bundle = try decode(SecretBundle.self, body)
                guard let value = bundle.value else { throw FetchError.decoding("secret value is nil") }
                guard let id = bundle.id else { throw FetchError.decoding("secret id is nil") }
                let contents = try ObjectContents.secret(
                    value: value,
                    contentType: bundle.contentType,
                    isCertificateBacked: bundle.kid != nil,
                    format: object.format,
                    encoding: object.encoding
                )
                return (contents, Self.lastSegment(id))
            case .key:
                let bundle = try decode(KeyBundle.self, body)
                guard let key = bundle.key else { throw FetchError.decoding("key value is nil") }
                guard let kid = key.kid else { throw FetchError.decoding("key id is nil") }
                let pem = try ObjectContents.publicKeyPEM(
                    keyType: key.kty ?? "",
                    n: key.n,
                    e: key.e,
                    curve: key.crv,
                    x: key.x,
                    y: key.y
                )
                return (Array(pem.utf8), Self.lastSegment(kid))
            case .cert:
                let bundle = try decode(CertificateBundle.self, body)
                guard let cer = bundle.cer else { throw FetchError.decoding("certificate value is nil") }
                guard let id = bundle.id else { throw FetchError.decoding("certificate id is nil") }
                return (Array(try ObjectContents.certificatePEM(cer: cer).utf8), Self.lastSegment(id))
            }
        } catch let error as FetchError {
            throw error
        } catch let error as ObjectContents.Failure {
            throw .contents(error)
        } catch {
            throw .decoding("\(error)", cause: ErrorCause(error))
        }
    }

    /// Enabled versions, newest first (by `created`), starting at `objectVersion` when set, at most N.
    private func versionHistory(_ object: KeyVaultObject, client: KeyVaultClient) async throws(FetchError) -> [String] {
        var entries: [(version: String, created: Int64)] = []
        var next: String? = "/\(collection(object.type))/\(PercentEncoding.escape(object.name))/versions"
        while let page = next {
            let body: [UInt8]
            do {
                body = try await client.get(page)
            } catch {
                throw .keyVault(error)
            }
            let listing = try Self.versionEntries(from: body)
            entries += listing.entries
            next = listing.nextLink
        }
        entries.sort { $0.created > $1.created }
        var versions = entries.map(\.version)
        if !object.version.isEmpty && object.version != "latest" {
            guard let start = versions.firstIndex(of: object.version) else { return [] }
            versions = Array(versions[start...])
        }
        return Array(versions.prefix(object.versionHistory))
    }

    /// The enabled versions on one page of a Key Vault version listing, in the page's order, and the link to the
    /// next page (`nil` on the last page).
    package static func versionEntries(
        from body: [UInt8]
    ) throws(FetchError) -> (entries: [(version: String, created: Int64)], nextLink: String?) {
        let list: VersionList
        do {
            list = try decode(VersionList.self, body)
        } catch {
            throw .decoding("failed to list versions: \(error)", cause: ErrorCause(error))
        }
        var entries: [(version: String, created: Int64)] = []
        for item in list.value ?? [] {
            guard let attributes = item.attributes, attributes.enabled == true,
                let id = item.id ?? item.kid
            else { continue }
            entries.append((lastSegment(id), attributes.created ?? 0))
        }
        return (entries, list.nextLink.flatMap { $0.isEmpty ? nil : $0 })
    }

    private static func decode<T: Decodable>(_ type: T.Type, _ body: [UInt8]) throws -> T {
        try JSONDecoder().decode(type, from: Data(body))
    }

    private static func lastSegment(_ id: String) -> String {
        id.split(separator: "/").last.map(String.init) ?? id
    }

    private static func providerFailure(_ error: FetchError, object: KeyVaultObject) -> ProviderFailure {
        let prefix = "failed to mount objects, error: failed to get objectType:\(object.type.rawValue), objectName:\(object.name), objectVersion:\(object.version): "
        switch error {
        case .keyVault(let failure):
            let message = prefix + failure.message
            switch failure.kind {
            case .notFound: return .objectNotFound(message)
            case .forbidden, .authentication: return .permissionDenied(message)
            case .throttled: return .throttled(message)
            case .unavailable: return .unavailable(message, cause: failure.cause)
            case .deadline: return .deadlineExceeded(message)
            case .invalidResponse: return .invalidResponse(message)
            case .rejected: return .rejected(message)
            }
        case .contents(let failure):
            return .misconfigured(prefix + failure.message)
        case .decoding(let message, let cause):
            return .invalidResponse(prefix + message, cause: cause)
        case .jsonFields(let failure):
            return .misconfigured(prefix + failure.message)
        }
    }
}

// MARK: Key Vault JSON (only the fields used)

struct SecretBundle: Decodable {
    var value: String?
    var id: String?
    var contentType: String?
    var kid: String?
}

struct KeyBundle: Decodable {
    struct JSONWebKey: Decodable {
        var kid: String?
        var kty: String?
        var n: String?
        var e: String?
        var crv: String?
        var x: String?
        var y: String?
    }
    var key: JSONWebKey?
}

struct CertificateBundle: Decodable {
    var id: String?
    var cer: String?
}

struct VersionList: Decodable {
    struct Item: Decodable {
        struct Attributes: Decodable {
            var enabled: Bool?
            var created: Int64?
        }
        var id: String?
        var kid: String?
        var attributes: Attributes?
    }
    var value: [Item]?
    var nextLink: String?
}
