import KeyVaultEmulator
import SecretsStoreAzure

/// Runs `body` with a Key Vault emulator serving `seed` and an HTTPS client that trusts the emulator's CA, and
/// shuts both down after `body`, whether it returned or threw (the error is rethrown).
package func withKeyVaultEmulator<Result>(
    seed: EmulatorSeed,
    _ body: (KeyVaultEmulator, AzureHTTP) async throws -> Result
) async throws -> Result {
    let emulator = try await KeyVaultEmulator(seed: seed)
    let http: AzureHTTP
    do {
        http = try AzureHTTP(extraCABundlePEM: Array(emulator.certificates.caCertificatePEM.utf8))
    } catch {
        try? await emulator.shutdown()
        throw error
    }
    let result: Result
    do {
        result = try await body(emulator, http)
    } catch {
        try? await http.shutdown()
        try? await emulator.shutdown()
        throw error
    }
    try await http.shutdown()
    try await emulator.shutdown()
    return result
}

extension KeyVaultEmulator {
    /// The built-in Azure provider reading this emulator's vaults and getting its tokens from the emulator's
    /// Entra endpoints, over `http` (which must trust the emulator's CA, as ``withKeyVaultEmulator(seed:_:)``'s
    /// client does).
    package func azureProvider(http: AzureHTTP) -> AzureKeyVaultProvider {
        AzureKeyVaultProvider(
            http: http,
            overrides: AzureEndpointOverrides(keyVaultURLTemplate: baseURL + "/{vault}", authorityHost: baseURL + "/")
        )
    }
}
