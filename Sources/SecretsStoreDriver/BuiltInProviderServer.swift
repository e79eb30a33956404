import Logging
import SecretsStoreAzure
import SecretsStoreCSI
import ServiceLifecycle
import UnixSignals

/// `provider azure`: the built-in Azure provider served over the v1alpha1 provider API on a Unix socket, so
/// the upstream Go driver (or this driver with `--builtin-azure-provider=false`) can use it as `azure.sock`.
///
/// It shares the provider's construction with ``DriverAssembly`` (``DriverConfiguration/BuiltInAzure``) and
/// runs the socket server under a `ServiceGroup`, shutting the HTTPS client down after the group stops.
package enum BuiltInProviderServer {
    /// The runtime name the provider API reports.
    package static let azureRuntimeName = "secrets-store-csi-driver-swift-azure"

    /// Serves `azure` on `socketPath` until one of `gracefulShutdownSignals` (or cancellation).
    ///
    /// - Throws: the HTTPS client's errors (a bad CA bundle) before serving; the server's (a locked socket).
    package static func runAzure(
        _ azure: DriverConfiguration.BuiltInAzure,
        socketPath: String,
        gracefulShutdownSignals: [UnixSignal] = [],
        logger: Logger
    ) async throws {
        let (provider, http) = try azure.makeProvider()
        let server = CSIServer(
            socketPath: socketPath,
            services: [ProviderService(provider: provider, runtimeName: azureRuntimeName, logger: logger)],
            logger: logger
        )
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: server)],
                gracefulShutdownSignals: gracefulShutdownSignals,
                logger: logger
            )
        )
        do {
            try await group.run()
        } catch {
            try? await http.shutdown()
            throw error
        }
        try await http.shutdown()
    }
}
