import SecretsStoreCommandLine
import ArgumentParser
import SecretsStoreAzure
import SecretsStoreApplication

#if canImport(Glibc)
import Glibc
#endif

/// Options of the built-in Azure Key Vault provider, shared by `serve` and `provider azure`.
struct AzureOptions: ParsableArguments {
    @Option(name: .customLong("azure-cloud-name"), help: "Cloud used when a SecretProviderClass sets no cloudName.")
    var cloudName = "AzurePublicCloud"

    @Option(
        name: .customLong("azure-keyvault-url-template"),
        help: "Key Vault base URL with {vault}, for emulators and private endpoints (e.g. https://127.0.0.1:8443/{vault})."
    )
    var keyVaultURLTemplate: String?

    @Option(
        name: .customLong("azure-authority-host"),
        help: "Entra ID authority host; defaults to $AZURE_AUTHORITY_HOST, else the cloud's."
    )
    var authorityHost: String?

    @Option(name: .customLong("azure-imds-endpoint"), help: "Managed identity endpoint (default http://169.254.169.254).")
    var imdsEndpoint: String?

    @Option(name: .customLong("azure-ca-bundle"), help: "PEM file of extra CA certificates to trust for Azure endpoints.")
    var caBundle: String?

    @Flag(
        name: .customLong("construct-pem-chain"),
        inversion: .prefixedNo,
        help: "Order a certificate-backed secret's certificates leaf, intermediates, root (Go form: --construct-pem-chain=false)."
    )
    var constructPEMChain = true

    @Flag(
        name: .customLong("write-cert-and-key-in-separate-files"),
        help: "Also write <file>.crt and <file>.key for certificate-backed secrets."
    )
    var writeCertAndKeyInSeparateFiles = false

    @Option(name: .customLong("custom-user-agent"), help: "Text appended to the User-Agent of every Azure request.")
    var customUserAgent: String?

    /// The Azure flags that take no value, for ``GoFlags``: default `false`.
    static let booleanFlagNames: Set<String> = ["write-cert-and-key-in-separate-files"]
    /// The Azure flags that take no value and default to `true` (`--name=false` becomes `--no-name`).
    static let invertedBooleanFlagNames: Set<String> = ["construct-pem-chain"]

    /// The endpoint overrides and file-layout flags these options describe.
    func overrides() throws -> AzureEndpointOverrides {
        var bundle: [UInt8]?
        if let caBundle {
            guard let file = fopen(caBundle, "r") else { throw ValidationError("--azure-ca-bundle \(caBundle): cannot open") }
            defer { fclose(file) }
            var bytes: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 4096)
            while case let count = fread(&buffer, 1, buffer.count, file), count > 0 { bytes += buffer[0..<count] }
            bundle = bytes
        }
        let environmentAuthority = getenv("AZURE_AUTHORITY_HOST").map { String(cString: $0) }
        return AzureEndpointOverrides(
            keyVaultURLTemplate: keyVaultURLTemplate,
            authorityHost: authorityHost ?? environmentAuthority,
            imdsEndpoint: imdsEndpoint,
            caBundlePEM: bundle,
            constructPEMChain: constructPEMChain,
            writeCertAndKeyInSeparateFiles: writeCertAndKeyInSeparateFiles
        )
    }

    /// The built-in provider these options describe, for ``DriverAssembly`` and `provider azure`.
    func builtInAzure() throws -> DriverConfiguration.BuiltInAzure {
        DriverConfiguration.BuiltInAzure(
            overrides: try overrides(),
            defaultCloudName: cloudName,
            customUserAgent: customUserAgent.flatMap { $0.isEmpty ? nil : $0 }
        )
    }
}
