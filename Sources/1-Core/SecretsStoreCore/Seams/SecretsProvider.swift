import Logging

/// Something that turns a SecretProviderClass's parameters into files: the built-in Azure provider, or an
/// external provider reached over the v1alpha1 API on a Unix socket.
package protocol SecretsProvider: Sendable {
    /// Fetches every object the request names. Returns the whole desired content of the volume.
    ///
    /// - Throws: ``ProviderFailure``; cancellation of the calling task surfaces as `.cancelled` or
    ///   `.deadlineExceeded`.
    func fetch(_ request: ProviderRequest, logger: Logger) async throws(ProviderFailure) -> ProviderResponse
}

/// Finds the provider a SecretProviderClass names.
package protocol ProviderDirectory: Sendable {
    /// Returns the provider called `name`, or throws ``PublishError/providerNotFound(name:searched:)``.
    func provider(named name: String) throws(PublishError) -> any SecretsProvider
}
