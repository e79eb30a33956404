import Logging
import SecretsStoreAzure
import SecretsStoreCSI
import SecretsStoreCore
import SecretsStoreKubernetes
import SecretsStoreLinux
import SecretsStoreHTTPServer
import SecretsStoreObservability
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#endif

/// The driver, assembled: the one place that turns a ``DriverConfiguration`` into the long-lived pieces and
/// runs them under one `ServiceGroup`, as every assembly does (``ServiceAssembly``: `run`, `listening()`,
/// `triggerGracefulShutdown()`, `withRunning`, `shutdown()`).
///
/// Made by ``init(configuration:seams:logger:)``: the Kubernetes REST client (unless one is injected), the
/// built-in Azure provider and its HTTPS client (when configured), the provider lookup, the ``NodePublisher``
/// and the CSI Identity and Node services. The publisher reads a SecretProviderClass with a GET when a volume
/// needs it, concurrent reads of one class sharing one GET (``SharedSecretProviderClassReads``); the node
/// plugin neither lists nor watches classes, so what it holds and asks the API server for grows with the
/// classes of its own pods, not with the cluster's. `run` then recovers this node's published volumes from
/// their pod statuses (``startUp()``), and only after that starts the services of ``services(reportingTo:)``:
/// the pod status writes' owner, the CSI server on the socket, the metrics and health listener, the kubelet
/// registrar (when configured), the ``HeapTrimService`` (unless turned off), the ``RotationService`` (with
/// rotation on) and the provider health check (when on). It listens (``Listening``) once the CSI socket accepts connections and the metrics listener
/// is bound. When the group has stopped it shuts the HTTP clients it made down.
///
/// The executable, the demo, the benchmarks and the end-to-end tests all build the driver here; what they
/// change is in ``Seams``.
package final class DriverAssembly: ServiceAssembly {
    /// What the assembly would otherwise make for production, for tests, the demo and the benchmarks.
    package struct Seams: Sendable {
        /// The Kubernetes client; `nil` (production): a REST client for ``DriverConfiguration/kubernetes``,
        /// owned by the assembly. An injected client belongs to the caller and is not shut down.
        package var kubernetes: (any KubernetesClient)?
        /// In-process providers by name, looked up before the socket directories; they take precedence over
        /// the built-in Azure provider of the configuration when one has the same name.
        package var builtInProviders: [String: any SecretsProvider]
        /// Replaces the whole provider lookup (built-in providers and socket directories) when set.
        package var providers: (any ProviderDirectory)?
        /// Mounts the volumes' tmpfs (production: `mount(2)`).
        package var mounter: any Mounter
        /// The file operations of the atomic writer and unpublish (production: POSIX calls).
        package var fileSystem: any FileSystem
        /// A monotonic instant, for the rotation gate.
        package var monotonicNow: @Sendable () -> Duration
        /// Seconds since the Unix epoch, for the names of the writer's timestamped directories.
        package var wallClockSeconds: @Sendable () -> Int64
        /// The metrics the publisher records and the listener serves.
        package var metrics: PrometheusDriverMetrics
        /// How the rotation loop waits between two cycles (production: `Task.sleep`).
        package var rotationSleep: @Sendable (Duration) async throws -> Void
        /// Awaited in `run` after recovery, before the services are made (production: nothing; tests hold
        /// start-up here).
        package var startingUp: @Sendable () async -> Void

        /// Production seams, with any of them replaced.
        package init(
            kubernetes: (any KubernetesClient)? = nil,
            builtInProviders: [String: any SecretsProvider] = [:],
            providers: (any ProviderDirectory)? = nil,
            mounter: any Mounter = LinuxMounter(),
            fileSystem: any FileSystem = PosixFileSystem(),
            monotonicNow: @escaping @Sendable () -> Duration = ProcessClock.monotonicNow,
            wallClockSeconds: @escaping @Sendable () -> Int64 = { Int64(time(nil)) },
            metrics: PrometheusDriverMetrics = PrometheusDriverMetrics(),
            rotationSleep: @escaping @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) },
            startingUp: @escaping @Sendable () async -> Void = {}
        ) {
            self.kubernetes = kubernetes
            self.builtInProviders = builtInProviders
            self.providers = providers
            self.mounter = mounter
            self.fileSystem = fileSystem
            self.monotonicNow = monotonicNow
            self.wallClockSeconds = wallClockSeconds
            self.metrics = metrics
            self.rotationSleep = rotationSleep
            self.startingUp = startingUp
        }

        /// A rotation wait that does not end before the group stops: the loop is in the group but never runs a
        /// cycle on its own, for callers that drive ``NodePublisher/rotate(logger:)`` themselves.
        package static let parkedRotation: @Sendable (Duration) async throws -> Void = { _ in
            try await Task.sleep(for: .seconds(365 * 86_400))
        }
    }

    /// Where the running driver can be reached.
    package struct Listening: Sendable, Equatable {
        /// The CSI socket, accepting connections.
        package var socketPath: String
        /// The port the metrics and health listener is bound to (the chosen one when the address asked for 0).
        package var metricsPort: Int
    }

    /// The parts of ``Listening`` reported so far.
    package struct ListeningProgress: Sendable {
        var socketPath: String?
        var metricsPort: Int?
    }

    /// The configuration the driver was assembled from.
    package let configuration: DriverConfiguration
    /// The publish, unpublish, rotation and recovery steps, over the seams.
    package let publisher: NodePublisher
    /// The metrics the publisher records and `/metrics` serves.
    package let metrics: PrometheusDriverMetrics
    /// CSI Identity (GetPluginInfo, GetPluginCapabilities, Probe).
    package let identity: IdentityService
    /// CSI Node (NodePublishVolume, NodeUnpublishVolume, NodeGetInfo, NodeGetCapabilities).
    package let node: NodeService
    /// How many SecretProviderClass reads so far were answered by a GET another read started.
    package var joinedClassReadCount: Int { classReads.joinedReadCount }

    private let logger: Logger
    private let rotationSleep: @Sendable (Duration) async throws -> Void
    private let ownedKubernetes: RESTKubernetesClient?
    private let azureHTTP: AzureHTTP?
    /// Providers served in-process, whose sockets the provider health check skips.
    private let builtInProviderNames: Set<String>
    /// The publisher's SecretProviderClass reads: GETs, shared by concurrent reads of one class.
    private let classReads: SharedSecretProviderClassReads
    /// Running once, shutdown requests, the listening signal.
    package let lifecycle: AssemblyLifecycle<ListeningProgress, Listening>
    /// How long pod status writes still pending at a graceful shutdown may take to land before they are
    /// cancelled (a later publish or restart recovery writes the status again).
    private static let podStatusDrainBound: Duration = .seconds(5)

    /// Makes the clients, the providers, the publisher and the CSI services; nothing listens yet.
    ///
    /// - Throws: `KubernetesConfiguration.LoadError` when the Kubernetes configuration cannot be read; the
    ///   HTTPS clients' errors (bad certificates or keys). Nothing is left open when it throws.
    package init(configuration: DriverConfiguration, seams: Seams = Seams(), logger: Logger) async throws {
        self.configuration = configuration
        self.logger = logger
        self.metrics = seams.metrics
        self.rotationSleep = seams.rotationSleep
        self.lifecycle = AssemblyLifecycle(
            logger: logger,
            nothingListening: ListeningProgress(),
            complete: { progress in
                guard let socketPath = progress.socketPath, let metricsPort = progress.metricsPort else { return nil }
                return Listening(socketPath: socketPath, metricsPort: metricsPort)
            },
            describe: { ["csi.endpoint": "unix://\($0.socketPath)", "metrics.port": "\($0.metricsPort)"] },
            startingUp: seams.startingUp
        )

        let kubernetes: any KubernetesClient
        if let injected = seams.kubernetes {
            kubernetes = injected
            ownedKubernetes = nil
        } else {
            let client = try RESTKubernetesClient(configuration: try configuration.kubernetes.resolve())
            kubernetes = client
            ownedKubernetes = client
        }

        let inProcess: InProcessProviders
        do {
            inProcess = try InProcessProviders(azure: configuration.builtInAzure, injected: seams.builtInProviders, metrics: seams.metrics)
        } catch {
            try? await ownedKubernetes?.shutdown()
            throw error
        }
        azureHTTP = inProcess.azureHTTP
        let builtIn = inProcess.providers
        builtInProviderNames = Set(builtIn.keys)

        classReads = SharedSecretProviderClassReads(kubernetes)
        publisher = NodePublisher(
            kubernetes: classReads,
            providers: seams.providers
                ?? ProviderSocketDirectory(
                    builtIn: builtIn,
                    directories: configuration.providerDirectories,
                    maxReceiveMessageBytes: configuration.maxReceiveMessageBytes
                ),
            mounter: seams.mounter,
            fileSystem: seams.fileSystem,
            monotonicNow: seams.monotonicNow,
            wallClockSeconds: seams.wallClockSeconds,
            configuration: .init(
                nodeID: configuration.nodeID,
                rotation: configuration.rotation,
                syncSecrets: configuration.syncSecrets,
                restartOnRotation: configuration.restartOnRotation
            ),
            metrics: seams.metrics
        )
        identity = IdentityService(driverName: configuration.driverName, vendorVersion: DriverVersion.current)
        node = NodeService(publisher: publisher, nodeID: configuration.nodeID, logger: logger)
        if let proxy = azureHTTP?.proxySummary {
            logger.info("outbound proxy in use for Entra ID and Key Vault", metadata: ["proxy": "\(proxy)"])
        }
    }

    /// Start-up recovery: the volumes this node's pod statuses name and that are still mounted and filled are
    /// adopted (so rotation and republish see them) before the CSI socket accepts a publish. A failure to list
    /// is logged and the driver serves anyway. Then the "starting" line.
    package func startUp() async {
        do {
            try await publisher.recover(logger: logger)
        } catch {
            logger.warning(
                "could not list this node's pod statuses; published volumes are picked up on republish",
                metadata: ["error": "\(error)"]
            )
        }
        logger.info(
            "starting",
            metadata: [
                "driver.name": "\(configuration.driverName)", "driver.version": "\(DriverVersion.current)",
                "node.id": "\(configuration.nodeID)", "rotation.enabled": "\(configuration.rotation.enabled)",
                "rotation.restart": "\(configuration.restartOnRotation)",
                "rotation.interval": "\(configuration.rotationIntervalText ?? "\(configuration.rotation.interval)")",
                "concurrency.executor": "\(EventLoopConcurrency.isInstalled ? "event-loops" : "default")",
            ]
        )
        if configuration.restartOnRotation, !configuration.rotation.enabled {
            logger.warning("--enable-rotation-restart has no effect without --enable-secret-rotation: volumes are never refreshed")
        }
    }

    /// The driver's services, in group order; the CSI server and the metrics listener report ``Listening``.
    package func services(
        reportingTo signal: ListeningSignal<ListeningProgress, Listening>
    ) throws -> [ServiceGroupConfiguration.ServiceConfiguration] {
        let server = CSIServer(
            socketPath: configuration.socketPath,
            identity: identity,
            node: node,
            logger: logger,
            onListening: { path in signal.report { $0.socketPath = path } }
        )
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            // First, so shut down last: the writes the CSI server's calls submitted end before the group does.
            .init(service: PodStatusWriterService(writer: publisher.podStatusWrites, drainBound: Self.podStatusDrainBound)),
            .init(service: server),
            .init(
                service: try HTTPListener.metricsAndHealth(
                    address: configuration.metricsAddress,
                    metrics: metrics,
                    logger: logger,
                    healthCheck: .init { [probe = CSIProbeCheck(socketPath: configuration.socketPath)] in
                        let result = await probe.check()
                        return result.healthy ? nil : result.reason
                    },
                    onListening: { port in signal.report { $0.metricsPort = port } }
                )
            ),
        ]
        if let registration = configuration.kubeletRegistration {
            let metrics = self.metrics
            services.append(
                .init(
                    service: KubeletRegistrar(
                        socketPath: registration.socketPath(driverName: configuration.driverName),
                        service: RegistrationService(
                            driverName: configuration.driverName,
                            endpointPath: registration.endpointPath,
                            logger: logger,
                            onStatus: { metrics.kubeletRegistrationNotified(registered: $0) }
                        ),
                        logger: logger,
                        whenServing: { _ = try await signal.wait() }
                    )
                )
            )
        }
        if let interval = configuration.heapTrimInterval {
            let trim = HeapTrimService.returnFreedMemory(logger: logger)
            services.append(.init(service: HeapTrimService(activity: publisher.activity, interval: interval, trim: trim)))
        }
        if configuration.rotation.enabled {
            services.append(
                .init(
                    service: RotationService(
                        publisher: publisher,
                        interval: configuration.rotation.interval,
                        logger: logger,
                        sleep: rotationSleep
                    )
                )
            )
        }
        if let interval = configuration.providerHealthCheckInterval {
            let metrics = self.metrics
            services.append(
                .init(
                    service: ProviderHealthService(
                        directories: configuration.providerDirectories,
                        skipping: builtInProviderNames,
                        interval: interval,
                        logger: logger,
                        report: { metrics.providerHealthChecked(provider: $0, healthy: $1) }
                    )
                )
            )
        }
        return services
    }

    /// Shuts down the HTTP clients the assembly made (the Kubernetes REST client, the Azure HTTPS client).
    package func releaseOwnedResources() async throws {
        var failure: (any Error)?
        do { try await ownedKubernetes?.shutdown() } catch { failure = error }
        do { try await azureHTTP?.shutdown() } catch { failure = failure ?? error }
        if let failure { throw failure }
    }
}

/// The providers served in this process: the built-in Azure provider (when configured, with the HTTPS client
/// it owns and that its owner shuts down) and the injected ones, which win over it by name.
struct InProcessProviders {
    /// By provider name.
    var providers: [String: any SecretsProvider]
    /// The Azure provider's HTTPS client, when there is one.
    var azureHTTP: AzureHTTP?

    /// Throws the HTTPS client's errors (a bad CA bundle); nothing is left open then.
    init(azure: DriverConfiguration.BuiltInAzure?, injected: [String: any SecretsProvider], metrics: PrometheusDriverMetrics) throws {
        providers = [:]
        if let azure {
            let (provider, http) = try azure.makeProvider(onKeyVaultResponse: { metrics.keyVaultResponded(status: $0) })
            providers[AzureKeyVaultProvider.name] = provider
            azureHTTP = http
        }
        providers.merge(injected) { _, injected in injected }
    }
}

/// The built-in registrar: kubelet's registration service on `<plugins_registry>/<driver>-reg.sock`, bound only
/// once the driver serves (CSI socket and metrics listener), so kubelet's `NodeGetInfo`, which follows the
/// registration at once, finds the CSI socket answering, and a second instance that failed the CSI socket's
/// lock never replaces the running one's registration socket. A stale socket file is replaced; the socket is
/// removed at shutdown, which tells kubelet the plugin is gone.
struct KubeletRegistrar: Service {
    var socketPath: String
    var service: RegistrationService
    var logger: Logger
    /// Returns once the driver serves; throws if it stopped first.
    var whenServing: @Sendable () async throws -> Void

    func run() async throws {
        // A graceful shutdown before the driver served ends the wait instead of leaving the group waiting here.
        do {
            try await cancelWhenGracefulShutdown { try await whenServing() }
        } catch is CancellationError where Task.isShuttingDownGracefully {
            return
        }
        if Task.isShuttingDownGracefully { return }
        logger.info("registering with kubelet", metadata: ["registration.socket": "\(socketPath)"])
        try await CSIServer(socketPath: socketPath, services: [service], lockFile: false, logger: logger).run()
    }
}
