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
/// returned. Access tokens are cached across mounts (see ``TokenProvider``).
package final class AzureKeyVaultProvider: SecretsProvider {
    private let http: AzureHTTP
    private let tokens: TokenProvider
    private let overrides: AzureEndpointOverrides
    private let defaultCloudName: String
    private let onKeyVaultResponse: @Sendable (Int) -> Void

    /// - Parameters:
    ///   - overrides: operator-set endpoints for emulators and private clouds.
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
    /// as `.rejected`; 401/403 and refused identities as `.permissionDenied`; 404 as `.objectNotFound`; 429 as
    /// `.throttled`; 408, 5xx and transport failures as `.unavailable` (after the retries ``KeyVaultClient``
    /// makes).
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
        let client = KeyVaultClient(
            http: http,
            tokens: tokens,
            identity: parameters.identity,
            tenantID: parameters.tenantID,
            authorityHost: cloud.authorityHost,
            vaultURL: overrides.vaultURL(name: parameters.keyVaultName, cloud: cloud),
            resource: cloud.keyVaultResource,
            verifyChallengeResource: overrides.keyVaultURLTemplate == nil,
            deadline: request.deadline,
            logger: logger,
            onResponse: onKeyVaultResponse
        )
        var files: [SecretFile] = []
        var versions: [ObjectVersion] = []
        for (object, result) in zip(parameters.objects, await fetchAll(parameters.objects, client: client)) {
            let mode = object.filePermission ?? parameters.defaultFilePermission
            switch result {
            case .success(let items):
                for item in items {
                    files.append(SecretFile(path: item.path, mode: mode, contents: item.contents))
                    versions.append(ObjectVersion(id: item.id, version: item.version))
                }
            case .failure(let error):
                throw Self.providerFailure(error, object: object)
            }
            logger.debug("fetched key vault object", metadata: ["azure.object": "\(object.type.rawValue)/\(object.name)"])
        }
        return ProviderResponse(files: files, objectVersions: versions)
    }

    /// Key Vault requests of one volume in flight at once, after the first.
    static let parallelFetches = 4

    /// Every object's items, in the objects' order. The first object is fetched alone, so a token that is not
    /// cached yet is requested once; the rest run ``parallelFetches`` at a time. When the first fails, the
    /// result holds only that failure.
    private func fetchAll(_ objects: [KeyVaultObject], client: KeyVaultClient) async -> [Result<[Item], FetchError>] {
        guard let first = objects.first else { return [] }
        let firstResult = await result(of: first, client: client)
        guard case .success = firstResult else { return [firstResult] }
        var results = [Result<[Item], FetchError>?](repeating: nil, count: objects.count)
        results[0] = firstResult
        await withTaskGroup(of: (Int, Result<[Item], FetchError>).self) { group in
            var next = 1
            while next < objects.count, next <= Self.parallelFetches {
                let (index, object) = (next, objects[next])
                group.addTask { (index, await self.result(of: object, client: client)) }
                next += 1
            }
            for await (index, result) in group {
                results[index] = result
                if next < objects.count {
                    let (index, object) = (next, objects[next])
                    group.addTask { (index, await self.result(of: object, client: client)) }
                    next += 1
                }
            }
        }
        return results.compactMap { $0 }
    }

    private func result(of object: KeyVaultObject, client: KeyVaultClient) async -> Result<[Item], FetchError> {
        do {
            return .success(try await fetch(object, client: client))
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
    }

    /// Why one object could not be fetched: Key Vault refused or failed, the bundle could not be turned into
    /// file contents, or the answer was not the JSON Key Vault documents.
    package enum FetchError: Error {
        case keyVault(KeyVaultFailure)
        case contents(ObjectContents.Failure)
        case decoding(String)
    }

    private func fetch(_ object: KeyVaultObject, client: KeyVaultClient) async throws(FetchError) -> [Item] {
        guard object.versionHistory > 1 else {
            let (contents, version) = try await fetchVersion(object, version: object.version, client: client)
            return [Item(path: object.fileName, contents: contents, id: "\(object.type.rawValue)/\(object.name)", version: version)]
        }
        let history = try await versionHistory(object, client: client)
        var items: [Item] = []
        for (index, version) in history.enumerated() {
            let (contents, fetched) = try await fetchVersion(object, version: version, client: client)
            items.append(
                Item(
                    path: "\(object.fileName)/\(index)",
                    contents: contents,
                    id: "\(object.type.rawValue)/\(object.name)/\(index)",
                    version: fetched
                )
            )
        }
        return items
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
    ) async throws(FetchError) -> ([UInt8], String) {
        let path = "/\(collection(object.type))/\(PercentEncoding.escape(object.name))/\(PercentEncoding.escape(version))"
        let body: [UInt8]
        do {
            body = try await client.get(path)
        } catch {
            throw .keyVault(error)
        }
        return try Self.objectContents(from: body, object: object)
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
            throw .decoding("\(error)")
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
            throw .decoding("failed to list versions: \(error)")
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
            case .unavailable: return .unavailable(message)
            case .deadline: return .deadlineExceeded(message)
            case .invalidResponse: return .invalidResponse(message)
            case .rejected: return .rejected(message)
            }
        case .contents(let failure):
            return .misconfigured(prefix + failure.message)
        case .decoding(let message):
            return .invalidResponse(prefix + message)
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
