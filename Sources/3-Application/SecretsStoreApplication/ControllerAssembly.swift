import Logging
import SecretsStoreAzure
import SecretsStoreCSI
import SecretsStoreCore
import SecretsStoreKubernetes
import SecretsStoreLinux
import SecretsStoreHTTPServer
import SecretsStoreObservability
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// What `secrets-store-csi-driver controller` was asked to do.
package struct ControllerConfiguration: Sendable {
    /// Leader election over a Lease (`--leader-elect`).
    package struct LeaderElection: Sendable, Equatable {
        /// The Lease's namespace (`--leader-election-namespace`).
        package var namespace: String
        /// The Lease's name (`--leader-election-id`).
        package var name: String
        /// This candidate's `holderIdentity`.
        package var identity: String
        /// client-go's 15 s / 10 s / 2 s unless a test shortens them.
        package var timing: LeaderElector.Timing

        /// A leader election configuration.
        package init(namespace: String, name: String, identity: String = LeaderElection.defaultIdentity(), timing: LeaderElector.Timing = .init()) {
            self.namespace = namespace
            self.name = name
            self.identity = identity
            self.timing = timing
        }

        /// client-go's form: `<hostname>_<random>`.
        package static func defaultIdentity() -> String {
            var buffer = [CChar](repeating: 0, count: 256)
            let host = gethostname(&buffer, buffer.count) == 0
                ? String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : "controller"
            return host + "_" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
        }

        /// The pod's namespace from the service-account mount, else `kube-system`.
        package static func defaultNamespace(
            serviceAccountNamespaceFile: String = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
        ) -> String {
            guard let raw = try? PosixFileSystem.readText(at: serviceAccountNamespaceFile) else { return "kube-system" }
            let text = raw.filter { !$0.isWhitespace }
            return text.isEmpty ? "kube-system" : text
        }
    }

    /// How the controller reaches the API server.
    package var kubernetes: DriverConfiguration.KubernetesSource
    /// Provider socket directories, searched in order.
    package var providerDirectories: [String]
    /// Largest provider answer accepted.
    package var maxReceiveMessageBytes: Int
    /// The in-process Azure provider, when on.
    package var builtInAzure: DriverConfiguration.BuiltInAzure?
    /// `--rotation-poll-interval`: the refresh of classes without `spec.refreshInterval`.
    package var defaultInterval: Duration
    /// `--namespace`: watch one namespace; `nil` for all.
    package var namespace: String?
    /// `--drivername`: the CSIDriver whose `spec.tokenRequests` name the audiences.
    package var driverName: String
    /// `--token-requests`: audiences that override the CSIDriver's; `nil` to read them from it.
    package var tokenAudiences: [String]?
    /// `--leader-elect`: `nil` when off.
    package var leaderElection: LeaderElection?
    /// `--metrics-addr`.
    package var metricsAddress: String

    /// A configuration.
    package init(
        kubernetes: DriverConfiguration.KubernetesSource,
        providerDirectories: [String],
        maxReceiveMessageBytes: Int = 4 << 20,
        builtInAzure: DriverConfiguration.BuiltInAzure?,
        defaultInterval: Duration,
        namespace: String?,
        driverName: String,
        tokenAudiences: [String]?,
        leaderElection: LeaderElection?,
        metricsAddress: String
    ) {
        self.kubernetes = kubernetes
        self.providerDirectories = providerDirectories
        self.maxReceiveMessageBytes = maxReceiveMessageBytes
        self.builtInAzure = builtInAzure
        self.defaultInterval = defaultInterval
        self.namespace = namespace
        self.driverName = driverName
        self.tokenAudiences = tokenAudiences
        self.leaderElection = leaderElection
        self.metricsAddress = metricsAddress
    }
}

/// The sync controller, assembled: the Kubernetes client, the providers, the token cache, the
/// ``SyncController`` (behind leader election when on) and the metrics and health listener, in one
/// `ServiceGroup` run as every assembly runs (``ServiceAssembly``). It listens (``Listening``) once the
/// metrics listener is bound. When the group has stopped (the controller's watches and the leader election's
/// Lease release have ended with it) it shuts the HTTP clients it made down. The executable, the demo and the
/// end-to-end tests all build it here.
package final class ControllerAssembly: ServiceAssembly {
    /// What the assembly would otherwise make for production.
    package struct Seams: Sendable {
        /// The Kubernetes client; `nil` (production): a REST client for the configuration, owned by the
        /// assembly. An injected client belongs to the caller.
        package var kubernetes: (any ControllerKubernetesClient)?
        /// In-process providers by name (they win over the built-in Azure provider of the same name).
        package var builtInProviders: [String: any SecretsProvider]
        /// Seconds since the epoch.
        package var wallClockSeconds: @Sendable () -> Int64
        /// A monotonic instant, for the controller's refresh schedule and the leader election's deadlines.
        package var monotonicNow: @Sendable () -> Duration
        /// Awaited in `run` before the services are made (production: nothing; tests hold start-up here).
        package var startingUp: @Sendable () async -> Void
        /// Production seams, with any replaced.
        package init(
            kubernetes: (any ControllerKubernetesClient)? = nil,
            builtInProviders: [String: any SecretsProvider] = [:],
            wallClockSeconds: @escaping @Sendable () -> Int64 = { Int64(time(nil)) },
            monotonicNow: @escaping @Sendable () -> Duration = ProcessClock.monotonicNow,
            startingUp: @escaping @Sendable () async -> Void = {}
        ) {
            self.kubernetes = kubernetes
            self.builtInProviders = builtInProviders
            self.wallClockSeconds = wallClockSeconds
            self.monotonicNow = monotonicNow
            self.startingUp = startingUp
        }
    }

    /// Where the running controller can be reached.
    package struct Listening: Sendable, Equatable {
        /// The port the metrics and health listener is bound to (the chosen one when the address asked for 0).
        package var metricsPort: Int
    }

    /// The parts of ``Listening`` reported so far.
    package struct ListeningProgress: Sendable {
        var metricsPort: Int?
    }

    /// The configuration it was built from.
    package let configuration: ControllerConfiguration
    /// The controller (for figures: ``SyncController/fullSyncsStarted``).
    package let controller: SyncController
    /// The token cache (for figures: ``ServiceAccountTokenCache/tokenRequestsSent``).
    package let tokens: ServiceAccountTokenCache
    /// The metrics `/metrics` serves.
    package let metrics: PrometheusDriverMetrics

    private let client: any ControllerKubernetesClient
    private let ownedClient: RESTKubernetesClient?
    private let azureHTTP: AzureHTTP?
    private let elector: LeaderElector?
    private let logger: Logger
    /// Running once, shutdown requests, the listening signal.
    package let lifecycle: AssemblyLifecycle<ListeningProgress, Listening>

    /// Makes the clients and the controller; nothing runs yet. Nothing is left open when it throws: a client
    /// it made is shut down before the error is thrown.
    package init(configuration: ControllerConfiguration, seams: Seams = Seams(), logger: Logger) async throws {
        self.configuration = configuration
        self.logger = logger
        self.lifecycle = AssemblyLifecycle(
            logger: logger,
            nothingListening: ListeningProgress(),
            complete: { progress in progress.metricsPort.map { Listening(metricsPort: $0) } },
            describe: { ["metrics.port": "\($0.metricsPort)"] },
            startingUp: seams.startingUp
        )
        let metrics = PrometheusDriverMetrics()
        self.metrics = metrics
        if let injected = seams.kubernetes {
            client = injected
            ownedClient = nil
        } else {
            let rest = try RESTKubernetesClient(configuration: try configuration.kubernetes.resolve())
            client = rest
            ownedClient = rest
        }
        let inProcess: InProcessProviders
        do {
            inProcess = try InProcessProviders(azure: configuration.builtInAzure, injected: seams.builtInProviders, metrics: metrics)
        } catch {
            try? await ownedClient?.shutdown()
            throw error
        }
        azureHTTP = inProcess.azureHTTP
        let providers = ProviderSocketDirectory(
            builtIn: inProcess.providers,
            directories: configuration.providerDirectories,
            maxReceiveMessageBytes: configuration.maxReceiveMessageBytes
        )
        let client = self.client
        tokens = ServiceAccountTokenCache(client: client, nowSeconds: seams.wallClockSeconds)
        let step = SecretProviderClassSyncStep(
            kubernetes: client,
            providers: providers,
            tokens: tokens,
            audiences: Self.audiences(configuration: configuration, client: client)
        )
        controller = SyncController(
            kubernetes: client,
            step: step,
            tokens: tokens,
            configuration: .init(namespace: configuration.namespace, defaultInterval: configuration.defaultInterval),
            monotonicNow: seams.monotonicNow,
            wallClockSeconds: seams.wallClockSeconds
        )
        elector = configuration.leaderElection.map { election in
            LeaderElector(
                client: client,
                namespace: election.namespace,
                name: election.name,
                identity: election.identity,
                timing: election.timing,
                monotonicNow: seams.monotonicNow,
                wallTime: { UTCTimestamp.rfc3339Micro(nanosecondsSinceEpoch: Self.nanosecondsSinceEpoch()) }
            )
        }
    }

    /// `--token-requests` when given, else the CSIDriver's `spec.tokenRequests`, read again at most every
    /// minute (a missing CSIDriver means no tokens).
    private static func audiences(configuration: ControllerConfiguration, client: any ControllerKubernetesClient) -> SecretProviderClassSyncStep.Audiences {
        if let fixed = configuration.tokenAudiences {
            return .init { _ async throws(KubernetesClientError) in fixed }
        }
        let cached = CachedAudiences()
        let driverName = configuration.driverName
        return .init { logger async throws(KubernetesClientError) in
            if let hit = cached.value.withLock({ $0 }), ContinuousClock.now - hit.at < .seconds(60) { return hit.audiences }
            let audiences: [String]
            do throws(KubernetesClientError) {
                audiences = try await client.csiDriverTokenAudiences(driverName: driverName, logger: logger)
            } catch {
                guard case .notFound = error else { throw error }
                logger.warning("CSIDriver not found: no service account tokens are requested", metadata: ["csi.driver": "\(driverName)"])
                audiences = []
            }
            cached.value.withLock { $0 = (audiences, ContinuousClock.now) }
            return audiences
        }
    }

    private static func nanosecondsSinceEpoch() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
    }

    /// The start-up line.
    package func startUp() async {
        logger.info(
            "starting the sync controller",
            metadata: [
                "driver.version": "\(DriverVersion.current)",
                "controller.namespace": "\(configuration.namespace ?? "(all)")",
                "controller.interval": "\(configuration.defaultInterval)",
                "leader.election": "\(configuration.leaderElection.map { "\($0.namespace)/\($0.name)" } ?? "off")",
            ]
        )
    }

    /// The metrics listener, then the controller service (shut down first); the listener reports ``Listening``.
    package func services(
        reportingTo signal: ListeningSignal<ListeningProgress, Listening>
    ) throws -> [ServiceGroupConfiguration.ServiceConfiguration] {
        let listener = try HTTPListener.metricsAndHealth(
            address: configuration.metricsAddress,
            metrics: metrics,
            logger: logger,
            onListening: { port in signal.report { $0.metricsPort = port } }
        )
        let controllerService = ControllerService(controller: controller, elector: elector, logger: logger)
        return [.init(service: listener), .init(service: controllerService)]
    }

    /// Shuts down the HTTP clients the assembly made (the Kubernetes REST client, the Azure HTTPS client).
    package func releaseOwnedResources() async throws {
        var failure: (any Error)?
        do { try await ownedClient?.shutdown() } catch { failure = error }
        do { try await azureHTTP?.shutdown() } catch { failure = failure ?? error }
        if let failure { throw failure }
    }
}

/// The CSIDriver's audiences as last read, and when.
private final class CachedAudiences: Sendable {
    let value = Mutex<(audiences: [String], at: ContinuousClock.Instant)?>(nil)
}

/// Runs the ``SyncController`` while this process leads (or always, without leader election) until
/// graceful shutdown. The controller's work (its watches, its sync queue, the leader election with the
/// Lease's release) is structured inside ``run()``: it has ended when "sync controller stopped" is logged,
/// just before ``run()`` returns.
struct ControllerService: Service {
    let controller: SyncController
    let elector: LeaderElector?
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown {
            if let elector {
                await elector.run(logger: logger) { [controller, logger] in await controller.run(logger: logger) }
            } else {
                await controller.run(logger: logger)
            }
        }
        logger.info("sync controller stopped")
    }
}
