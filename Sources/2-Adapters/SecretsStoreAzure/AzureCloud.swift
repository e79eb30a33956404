#if canImport(FoundationEssentials)
import SecretsStoreCore
import FoundationEssentials
#else
import Foundation
#endif

/// The endpoints of an Azure cloud.
package struct AzureCloud: Sendable, Equatable {
    /// The cloud's name as go-autorest spells it (`AzurePublicCloud`…).
    package var name: String
    /// Entra ID authority host, with a trailing slash (`https://login.microsoftonline.com/`).
    package var authorityHost: String
    /// Key Vault DNS suffix (`vault.azure.net`).
    package var keyVaultDNSSuffix: String
    /// The Key Vault resource, without a trailing slash (`https://vault.azure.net`).
    package var keyVaultResource: String

    /// Azure's public cloud (`AzurePublicCloud`, alias `AzureCloud`).
    package static let publicCloud = AzureCloud(
        name: "AzurePublicCloud",
        authorityHost: "https://login.microsoftonline.com/",
        keyVaultDNSSuffix: "vault.azure.net",
        keyVaultResource: "https://vault.azure.net"
    )
    /// Azure US Government (`AzureUSGovernmentCloud`, alias `AzureUSGovernment`).
    package static let usGovernment = AzureCloud(
        name: "AzureUSGovernmentCloud",
        authorityHost: "https://login.microsoftonline.us/",
        keyVaultDNSSuffix: "vault.usgovcloudapi.net",
        keyVaultResource: "https://vault.usgovcloudapi.net"
    )
    /// Azure China (`AzureChinaCloud`).
    package static let china = AzureCloud(
        name: "AzureChinaCloud",
        authorityHost: "https://login.chinacloudapi.cn/",
        keyVaultDNSSuffix: "vault.azure.cn",
        keyVaultResource: "https://vault.azure.cn"
    )
    /// The retired Azure Germany cloud (`AzureGermanCloud`), kept for parameter compatibility.
    package static let germany = AzureCloud(
        name: "AzureGermanCloud",
        authorityHost: "https://login.microsoftonline.de/",
        keyVaultDNSSuffix: "vault.microsoftazure.de",
        keyVaultResource: "https://vault.microsoftazure.de"
    )

    /// Resolves `cloudName` (case-insensitive, with the upstream aliases); `AzureStackCloud` reads the
    /// environment file. `authorityHostOverride` (the Azure SDKs' `AZURE_AUTHORITY_HOST`) replaces the authority.
    package static func named(
        _ cloudName: String?,
        environmentFile: String?,
        authorityHostOverride: String? = nil
    ) throws(AzureMountParameters.Invalid) -> AzureCloud {
        let requested = cloudName ?? "AzurePublicCloud"
        var cloud: AzureCloud
        switch requested.uppercased() {
        case "AZUREPUBLICCLOUD", "AZURECLOUD": cloud = .publicCloud
        case "AZUREUSGOVERNMENTCLOUD", "AZUREUSGOVERNMENT": cloud = .usGovernment
        case "AZURECHINACLOUD": cloud = .china
        case "AZUREGERMANCLOUD": cloud = .germany
        case "AZURESTACKCLOUD": cloud = try stack(from: environmentFile ?? "")
        default:
            throw .unknownCloud(name: requested)
        }
        if let override = authorityHostOverride, !override.isEmpty {
            cloud.authorityHost = override.hasSuffix("/") ? override : override + "/"
        }
        return cloud
    }

    /// An Azure Stack Hub environment from its JSON file (`name`, `activeDirectoryEndpoint`, `keyVaultEndpoint`,
    /// `keyVaultDNSSuffix`).
    static func stack(from path: String) throws(AzureMountParameters.Invalid) -> AzureCloud {
        struct File: Decodable {
            var name: String?
            var activeDirectoryEndpoint: String
            var keyVaultEndpoint: String?
            var keyVaultDNSSuffix: String
        }
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw .azureStackEnvironmentUnreadable(path: path)
        }
        let file: File
        do {
            file = try JSONDecoder().decode(File.self, from: data)
        } catch {
            throw .azureStackEnvironmentInvalid(path: path)
        }
        var resource = file.keyVaultEndpoint ?? "https://\(file.keyVaultDNSSuffix)"
        if resource.hasSuffix("/") { resource.removeLast() }
        return AzureCloud(
            name: file.name ?? "AzureStackCloud",
            authorityHost: file.activeDirectoryEndpoint.hasSuffix("/") ? file.activeDirectoryEndpoint : file.activeDirectoryEndpoint + "/",
            keyVaultDNSSuffix: file.keyVaultDNSSuffix,
            keyVaultResource: resource
        )
    }
}

/// The built-in provider's operator settings (flags or environment, never SecretProviderClass parameters):
/// endpoint overrides for emulators and private clouds, and the upstream provider's two file-layout flags
/// `--construct-pem-chain` and `--write-cert-and-key-in-separate-files`.
package struct AzureEndpointOverrides: Sendable, Equatable {
    /// Replaces `https://<vault>.<suffix>`: a template containing `{vault}`, e.g. `https://127.0.0.1:8443/{vault}`.
    /// When set, the 401 challenge's resource is not checked against the vault host.
    package var keyVaultURLTemplate: String?
    /// Replaces the cloud's Entra ID authority host (the Azure SDKs' `AZURE_AUTHORITY_HOST`).
    package var authorityHost: String?
    /// Replaces `http://169.254.169.254` for managed identity.
    package var imdsEndpoint: String?
    /// Extra PEM CA certificates to trust for all Azure endpoints.
    package var caBundlePEM: [UInt8]?
    /// `--construct-pem-chain` (upstream default `true`): a PKCS#12 certificate written as PEM has its
    /// certificates ordered leaf → intermediates → root by key identifiers; `false` keeps them in the order the
    /// PKCS#12 stores them.
    package var constructPEMChain: Bool
    /// `--write-cert-and-key-in-separate-files` (upstream default `false`): a certificate-backed secret also
    /// gets `<file>.crt` (its `CERTIFICATE` blocks) and `<file>.key` (every other block), written before the
    /// file itself with the same mode and object version.
    package var writeCertAndKeyInSeparateFiles: Bool

    /// Settings; every `nil` keeps the cloud's own endpoint, and the two flags default as upstream.
    package init(
        keyVaultURLTemplate: String? = nil,
        authorityHost: String? = nil,
        imdsEndpoint: String? = nil,
        caBundlePEM: [UInt8]? = nil,
        constructPEMChain: Bool = true,
        writeCertAndKeyInSeparateFiles: Bool = false
    ) {
        self.keyVaultURLTemplate = keyVaultURLTemplate
        self.authorityHost = authorityHost
        self.imdsEndpoint = imdsEndpoint
        self.caBundlePEM = caBundlePEM
        self.constructPEMChain = constructPEMChain
        self.writeCertAndKeyInSeparateFiles = writeCertAndKeyInSeparateFiles
    }

    /// The vault's base URL, without a trailing slash.
    package func vaultURL(name: String, cloud: AzureCloud) -> String {
        if let template = keyVaultURLTemplate {
            var url = template.replacing("{vault}", with: name)
            if url.hasSuffix("/") { url.removeLast() }
            return url
        }
        return "https://\(name).\(cloud.keyVaultDNSSuffix)"
    }
}
