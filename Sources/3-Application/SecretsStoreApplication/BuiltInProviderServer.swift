import Logging
import SecretsStoreAzure
import SecretsStoreCSI
import SecretsStoreObservability
import ServiceLifecycle
import Synchronization
import UnixSignals

/// `provider azure`: the built-in Azure provider served over the v1alpha1 provider API on a Unix socket, so
/// the upstream Go driver (or this driver with `--builtin-azure-provider=false`) can use it as `azure.sock`.
///
/// It shares the provider's construction with ``DriverAssembly`` (``DriverConfiguration/BuiltInAzure``) and
/// runs under one `ServiceGroup`, as the upstream Azure provider's process does:
/// - the socket serves `v1alpha1.CSIDriverProvider` (`Version`, `Mount`) and `grpc.health.v1.Health` (`Check`,
///   `Watch`; `SERVING` for `""` and `v1alpha1.CSIDriverProvider` until shutdown, then `NOT_SERVING`);
/// - `--healthz-port`/`--healthz-path`/`--healthz-timeout`: an HTTP endpoint that answers 200 `ok` when a
///   `Health/Check` on the socket answers `SERVING` within the timeout, else 503 with the reason;
/// - `--prometheus-port`: `/metrics` with the upstream provider's `keyvault_request` and `grpc_request`
///   histograms (and `/healthz` `ok` for the listener's own liveness);
/// - on graceful shutdown the health statuses turn `NOT_SERVING` and `Watch` streams end first, then the HTTP
///   listeners close, then the socket server finishes its calls; the HTTPS client is shut down last.
package enum BuiltInProviderServer {
    /// The runtime name the provider API reports.
    package static let azureRuntimeName = "secrets-store-csi-driver-swift-azure"
    /// The provider service's full name, as health clients ask for it (from the generated descriptor).
    package static let providerServiceName = ProviderService.serviceName

    /// The HTTP side of `provider azure`: the upstream Azure provider's flags and defaults.
    package struct Options: Sendable {
        /// `--healthz-port` as a listen address (`:8989`); `nil` serves no health endpoint.
        package var healthzAddress: String?
        /// `--healthz-path` (`/healthz`).
        package var healthzPath: String
        /// `--healthz-timeout` (5 s): the limit of the `Health/Check` behind each request.
        package var healthzTimeout: Duration
        /// `--prometheus-port` as a listen address (`:8898`); `nil` serves no metrics.
        package var metricsAddress: String?

        /// The upstream defaults: health on `:8989/healthz` with a 5 s timeout, metrics on `:8898`.
        package init(
            healthzAddress: String? = ":8989",
            healthzPath: String = "/healthz",
            healthzTimeout: Duration = .seconds(5),
            metricsAddress: String? = ":8898"
        ) {
            self.healthzAddress = healthzAddress
            self.healthzPath = healthzPath
            self.healthzTimeout = healthzTimeout
            self.metricsAddress = metricsAddress
        }
    }

    /// Where a running `provider azure` can be reached, reported once everything listens.
    package struct Listening: Sendable, Equatable {
        /// The provider socket.
        package var socketPath: String
        /// The health endpoint's port, when served.
        package var healthzPort: Int?
        /// The metrics port, when served.
        package var metricsPort: Int?
    }

    /// Serves `azure` on `socketPath` until one of `gracefulShutdownSignals` (or cancellation).
    ///
    /// - Parameters:
    ///   - options: the health endpoint and metrics listeners.
    ///   - metrics: the series `/metrics` serves (tests read them directly).
    ///   - onListening: told where everything listens, once all of it does.
    /// - Throws: the HTTPS client's errors (a bad CA bundle, an unusable proxy variable) and the listeners'
    ///   address errors before serving; the server's (a locked socket) and the listeners' bind errors.
    package static func runAzure(
        _ azure: DriverConfiguration.BuiltInAzure,
        socketPath: String,
        options: Options = Options(),
        metrics: PrometheusDriverMetrics = PrometheusDriverMetrics(driverSeries: false),
        gracefulShutdownSignals: [UnixSignal] = [],
        logger: Logger,
        onListening: @escaping @Sendable (Listening) -> Void = { _ in }
    ) async throws {
        let (provider, http) = try azure.makeProvider(onHTTPExchange: { exchange in
            guard let object = exchange.keyVaultObject else { return }
            let error: String
            switch exchange.status {
            case let status? where (200..<300).contains(status): error = ""
            case let status?: error = "HTTP \(status)"
            case nil: error = "request failed"
            }
            metrics.keyVaultRequestObserved(objectType: object.type, objectName: object.name, error: error, duration: exchange.duration)
        })
        do {
            try await serve(
                provider: provider,
                proxy: http.proxySummary,
                socketPath: socketPath,
                options: options,
                metrics: metrics,
                gracefulShutdownSignals: gracefulShutdownSignals,
                logger: logger,
                onListening: onListening
            )
        } catch {
            try? await http.shutdown()
            throw error
        }
        try await http.shutdown()
    }

    /// The group of `provider azure` around an already-made provider.
    private static func serve(
        provider: AzureKeyVaultProvider,
        proxy: String?,
        socketPath: String,
        options: Options,
        metrics: PrometheusDriverMetrics,
        gracefulShutdownSignals: [UnixSignal],
        logger: Logger,
        onListening: @escaping @Sendable (Listening) -> Void
    ) async throws {
        // Built outside the async function: in release, Swift 6.3's coroutine splitting crashed on the throwing
        // initialisers below when they were called inside it (signal 11 in CoroSplit, swifterror).
        let services = try makeServices(
            provider: provider, proxy: proxy, socketPath: socketPath, options: options, metrics: metrics,
            logger: logger, onListening: onListening
        )
        let group = ServiceGroup(
            configuration: .init(services: services, gracefulShutdownSignals: gracefulShutdownSignals, logger: logger)
        )
        try await group.run()
    }

    /// The provider socket's server, the listeners the options ask for and the health board, in group order.
    private static func makeServices(
        provider: AzureKeyVaultProvider,
        proxy: String?,
        socketPath: String,
        options: Options,
        metrics: PrometheusDriverMetrics,
        logger: Logger,
        onListening: @escaping @Sendable (Listening) -> Void
    ) throws -> [ServiceGroupConfiguration.ServiceConfiguration] {
        let board = HealthStatusBoard(services: [providerServiceName])
        let observer = GRPCCallObserver { call in
            metrics.grpcRequestObserved(method: call.method, code: call.code, message: call.message, duration: call.duration)
        }
        let expected = ListeningParts(healthz: options.healthzAddress != nil, metrics: options.metricsAddress != nil)
        let parts = ProviderListeningSignal(expected: expected, onListening: onListening)
        let server = CSIServer(
            socketPath: socketPath,
            services: [
                ObservedProviderService(
                    ProviderService(provider: provider, runtimeName: azureRuntimeName, logger: logger),
                    observer: observer
                ),
                ObservedHealthService(HealthService(board: board), observer: observer),
            ],
            logger: logger,
            onListening: { parts.socket($0) }
        )
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: server)]
        if let address = options.metricsAddress {
            services.append(
                .init(service: try MetricsAndHealthListener(address: address, metrics: metrics, logger: logger, onListening: { parts.metrics($0) }))
            )
        }
        if let address = options.healthzAddress {
            let timeout = options.healthzTimeout
            services.append(
                .init(
                    service: try HealthzListener(
                        address: address,
                        path: options.healthzPath,
                        logger: logger,
                        check: { await HealthCheckClient.problem(socketPath: socketPath, timeout: timeout) },
                        onListening: { parts.healthz($0) }
                    )
                )
            )
        }
        // Last in the group, so first to stop: statuses turn NOT_SERVING and Watch streams end before the
        // server waits for its calls to finish.
        services.append(.init(service: HealthBoardService(board: board)))
        if let proxy { logger.info("outbound proxy in use for Entra ID and Key Vault", metadata: ["proxy": "\(proxy)"]) }
        return services
    }
}

/// Ends the health statuses (every service `NOT_SERVING`, every `Watch` finished) when the group shuts down.
private struct HealthBoardService: Service {
    let board: HealthStatusBoard

    func run() async throws {
        try? await gracefulShutdown()
        board.shutDown()
    }
}

/// Which listeners `provider azure` runs besides the socket.
private struct ListeningParts {
    var healthz: Bool
    var metrics: Bool
}

/// Collects where each part listens and reports ``BuiltInProviderServer/Listening`` once, when all have.
private final class ProviderListeningSignal: Sendable {
    private struct State {
        var socketPath: String?
        var healthzPort: Int?
        var metricsPort: Int?
        var reported = false
    }

    private let expected: ListeningParts
    private let onListening: @Sendable (BuiltInProviderServer.Listening) -> Void
    private let state = Mutex(State())

    init(expected: ListeningParts, onListening: @escaping @Sendable (BuiltInProviderServer.Listening) -> Void) {
        self.expected = expected
        self.onListening = onListening
    }

    func socket(_ path: String) { update { $0.socketPath = path } }
    func healthz(_ port: Int) { update { $0.healthzPort = port } }
    func metrics(_ port: Int) { update { $0.metricsPort = port } }

    private func update(_ change: (inout State) -> Void) {
        let ready = state.withLock { state -> BuiltInProviderServer.Listening? in
            change(&state)
            guard !state.reported, let socketPath = state.socketPath,
                !expected.healthz || state.healthzPort != nil, !expected.metrics || state.metricsPort != nil
            else { return nil }
            state.reported = true
            return .init(socketPath: socketPath, healthzPort: state.healthzPort, metricsPort: state.metricsPort)
        }
        if let ready { onListening(ready) }
    }
}
