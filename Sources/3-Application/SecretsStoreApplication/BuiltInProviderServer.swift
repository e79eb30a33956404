import Logging
import SecretsStoreAzure
import SecretsStoreCSI
import SecretsStoreHTTPServer
import SecretsStoreObservability
import ServiceLifecycle

/// `provider azure`: the built-in Azure provider served over the v1alpha1 provider API on a Unix socket, so
/// the upstream Go driver (or this driver with `--builtin-azure-provider=false`) can use it as `azure.sock`.
///
/// It shares the provider's construction with ``DriverAssembly`` (``DriverConfiguration/BuiltInAzure``) and
/// runs under one `ServiceGroup` as every assembly does (``ServiceAssembly``), with the parts the upstream
/// Azure provider's process has:
/// - the socket serves `v1alpha1.CSIDriverProvider` (`Version`, `Mount`) and `grpc.health.v1.Health` (`Check`,
///   `Watch`; `SERVING` for `""` and `v1alpha1.CSIDriverProvider` until shutdown, then `NOT_SERVING`);
/// - `--healthz-port`/`--healthz-path`/`--healthz-timeout`: an HTTP endpoint that answers 200 `ok` when a
///   `Health/Check` on the socket answers `SERVING` within the timeout, else 503 with the reason;
/// - `--prometheus-port`: `/metrics` with the upstream provider's `keyvault_request` and `grpc_request`
///   histograms (and `/healthz` `ok` for the listener's own liveness);
/// - on graceful shutdown the health statuses turn `NOT_SERVING` and `Watch` streams end first, then the HTTP
///   listeners close, then the socket server finishes its calls; the HTTPS client is shut down last.
///
/// It listens (``Listening``) once the socket accepts connections and every listener the options ask for is
/// bound.
package final class BuiltInProviderServer: ServiceAssembly {
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

    /// The parts of ``Listening`` reported so far.
    package struct ListeningProgress: Sendable {
        var socketPath: String?
        var healthzPort: Int?
        var metricsPort: Int?
    }

    /// What the server would otherwise do in production, for tests.
    package struct Seams: Sendable {
        /// Awaited in `run` before the services are made (production: nothing; tests hold start-up here).
        package var startingUp: @Sendable () async -> Void

        /// Production seams, with any replaced.
        package init(startingUp: @escaping @Sendable () async -> Void = {}) {
            self.startingUp = startingUp
        }
    }

    /// The provider socket.
    package let socketPath: String
    /// The health endpoint and metrics listeners.
    package let options: Options
    /// The series `/metrics` serves (tests read them directly).
    package let metrics: PrometheusDriverMetrics
    /// Running once, shutdown requests, the listening signal.
    package let lifecycle: AssemblyLifecycle<ListeningProgress, Listening>

    private let provider: AzureKeyVaultProvider
    private let http: AzureHTTP
    private let logger: Logger

    /// Makes the Azure provider and its HTTPS client; nothing listens yet.
    ///
    /// - Throws: the HTTPS client's errors (a bad CA bundle, an unusable proxy variable).
    package init(
        azure: DriverConfiguration.BuiltInAzure,
        socketPath: String,
        options: Options = Options(),
        metrics: PrometheusDriverMetrics = PrometheusDriverMetrics(driverSeries: false),
        seams: Seams = Seams(),
        logger: Logger
    ) throws {
        self.socketPath = socketPath
        self.options = options
        self.metrics = metrics
        self.logger = logger
        let (expectsHealthz, expectsMetrics) = (options.healthzAddress != nil, options.metricsAddress != nil)
        self.lifecycle = AssemblyLifecycle(
            logger: logger,
            nothingListening: ListeningProgress(),
            complete: { progress in
                guard let socketPath = progress.socketPath, !expectsHealthz || progress.healthzPort != nil,
                    !expectsMetrics || progress.metricsPort != nil
                else { return nil }
                return Listening(socketPath: socketPath, healthzPort: progress.healthzPort, metricsPort: progress.metricsPort)
            },
            describe: { listening in
                var metadata: Logger.Metadata = ["provider.endpoint": "unix://\(listening.socketPath)"]
                if let port = listening.healthzPort { metadata["healthz.port"] = "\(port)" }
                if let port = listening.metricsPort { metadata["metrics.port"] = "\(port)" }
                return metadata
            },
            startingUp: seams.startingUp
        )
        (provider, http) = try azure.makeProvider(onHTTPExchange: { exchange in
            guard let object = exchange.keyVaultObject else { return }
            let error: String
            switch exchange.status {
            case let status? where (200..<300).contains(status): error = ""
            case let status?: error = "HTTP \(status)"
            case nil: error = "request failed"
            }
            metrics.keyVaultRequestObserved(objectType: object.type, objectName: object.name, error: error, duration: exchange.duration)
        })
    }

    /// The proxy line, when a proxy is in use.
    package func startUp() async {
        if let proxy = http.proxySummary {
            logger.info("outbound proxy in use for Entra ID and Key Vault", metadata: ["proxy": "\(proxy)"])
        }
    }

    /// The provider socket's server, the listeners the options ask for and the health board, in group order;
    /// each reports its part of ``Listening``.
    package func services(
        reportingTo parts: ListeningSignal<ListeningProgress, Listening>
    ) throws -> [ServiceGroupConfiguration.ServiceConfiguration] {
        let (provider, metrics, options, socketPath, logger) = (self.provider, self.metrics, self.options, self.socketPath, self.logger)
        let board = HealthStatusBoard(services: [Self.providerServiceName])
        let observer = GRPCCallObserver { call in
            metrics.grpcRequestObserved(method: call.method, code: call.code, message: call.message, duration: call.duration)
        }
        let server = CSIServer(
            socketPath: socketPath,
            services: [
                ObservedProviderService(
                    ProviderService(provider: provider, runtimeName: Self.azureRuntimeName, logger: logger),
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
                .init(service: try HTTPListener.metricsAndHealth(address: address, metrics: metrics, logger: logger, onListening: { parts.metrics($0) }))
            )
        }
        if let address = options.healthzAddress {
            let timeout = options.healthzTimeout
            services.append(
                .init(
                    service: try HTTPListener.providerHealth(
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
        return services
    }

    /// Shuts down the Azure provider's HTTPS client.
    package func releaseOwnedResources() async throws {
        try await http.shutdown()
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

extension ListeningSignal where Progress == BuiltInProviderServer.ListeningProgress {
    /// The provider socket accepts connections on `path`.
    fileprivate func socket(_ path: String) { report { $0.socketPath = path } }
    /// The health endpoint is bound to `port`.
    fileprivate func healthz(_ port: Int) { report { $0.healthzPort = port } }
    /// The metrics listener is bound to `port`.
    fileprivate func metrics(_ port: Int) { report { $0.metricsPort = port } }
}
