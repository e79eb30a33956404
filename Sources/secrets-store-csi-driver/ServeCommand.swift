import ArgumentParser
import Logging
import SecretsStoreAzure
import SecretsStoreCSI
import SecretsStoreCore
import SecretsStoreKubernetes
import SecretsStoreLinux
import SecretsStoreObservability
import ServiceLifecycle
import UnixSignals

#if canImport(Glibc)
import Glibc
#endif

/// Serves CSI Identity and Node on `--endpoint`. Flag names, defaults and syntax follow the upstream driver.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "serve", abstract: "Serve the CSI node plugin.")

    /// Flags that take no value; Go-style `--flag=true|false` is rewritten for them.
    static let booleanFlagNames: Set<String> = [
        "enable-secret-rotation", "log-format-json", "version", "provider-health-check", "enable-pprof",
        "enable-secret-sync",
    ]

    @Option(help: "CSI endpoint (unix:// socket path).")
    var endpoint = "unix://tmp/csi.sock"

    @Option(help: "Node ID reported by NodeGetInfo and written on SecretProviderClassPodStatus objects.")
    var nodeid = ""

    @Option(help: "Name of the driver.")
    var drivername = "secrets-store.csi.k8s.io"

    @Option(name: .customLong("provider-volume"), help: "Directory of provider sockets, searched last.")
    var providerVolume = "/var/run/secrets-store-csi-providers"

    @Option(
        name: .customLong("additional-provider-volume-paths"),
        help: "Comma-separated directories of provider sockets, searched first."
    )
    var additionalProviderVolumePaths = "/etc/kubernetes/secrets-store-csi-providers"

    @Option(name: .customLong("max-call-recv-msg-size"), help: "Largest provider response accepted, in bytes.")
    var maxCallRecvMsgSize = 4_194_304

    @Option(help: "Path to a kubeconfig; the in-cluster service account configuration is used when empty.")
    var kubeconfig = ""

    @Flag(name: .customLong("enable-secret-rotation"), help: "Re-fetch published volumes periodically.")
    var enableSecretRotation = false

    @Flag(
        name: .customLong("enable-secret-sync"),
        help: "Mirror secretObjects into Kubernetes Secrets (the chart's syncSecret.enabled grants the RBAC)."
    )
    var enableSecretSync = false

    @Option(
        name: .customLong("rotation-poll-interval"),
        help: "Least time between two fetches of one volume (Go duration: 30s, 2m, 1h)."
    )
    var rotationPollInterval = "2m"

    @Option(name: .customLong("metrics-addr"), help: "Address of the /metrics and /healthz listener.")
    var metricsAddr = ":8095"

    @Option(name: .customLong("metrics-backend"), help: "Metrics backend (only Prometheus).")
    var metricsBackend = "Prometheus"

    @Flag(name: .customLong("log-format-json"), help: "Write logs as JSON lines.")
    var logFormatJSON = false

    @Option(name: [.customLong("v"), .customShort("v")], help: "Log verbosity: 0 info, 4 debug, 5 and more trace.")
    var verbosity = 0

    @Flag(help: "Print the version as JSON and exit.")
    var version = false

    @Flag(name: .customLong("provider-health-check"), help: "Accepted for compatibility; has no effect.")
    var providerHealthCheck = false

    @Option(name: .customLong("provider-health-check-interval"), help: "Accepted for compatibility; has no effect.")
    var providerHealthCheckInterval = "2m"

    @Option(
        name: .customLong("builtin-azure-provider"),
        help: "Serve SecretProviderClasses with provider azure in-process (true) or through azure.sock (false)."
    )
    var builtinAzureProvider = true

    @OptionGroup var azure: AzureOptions

    func validate() throws {
        guard GoDuration.parse(rotationPollInterval) != nil else {
            throw ValidationError("--rotation-poll-interval \(rotationPollInterval): not a duration such as 30s or 2m")
        }
        guard metricsBackend.lowercased() == "prometheus" else {
            throw ValidationError("--metrics-backend \(metricsBackend): only Prometheus is supported")
        }
        guard maxCallRecvMsgSize > 0 else { throw ValidationError("--max-call-recv-msg-size must be positive") }
    }

    func run() async throws {
        if version {
            print("{\"BuildVersion\":\"\(DriverVersion.current)\",\"GitCommit\":\"\",\"BuildDate\":\"\"}")
            return
        }
        let logger = bootstrapLogging(verbosity: verbosity, json: logFormatJSON)

        let socketPath = try Endpoint.socketPath(from: endpoint)
        let kubernetesConfiguration: KubernetesConfiguration
        do {
            kubernetesConfiguration =
                kubeconfig.isEmpty
                ? try .inCluster(environment: Self.environment()) : try .kubeconfig(at: kubeconfig)
        } catch {
            throw ValidationError(error.description)
        }
        let kubernetes = try RESTKubernetesClient(configuration: kubernetesConfiguration)
        let metrics = PrometheusDriverMetrics()
        var builtIn: [String: any SecretsProvider] = [:]
        var azureHTTP: AzureHTTP?
        if builtinAzureProvider {
            let (provider, http) = try azure.makeProvider(onKeyVaultResponse: { metrics.keyVaultResponded(status: $0) })
            builtIn["azure"] = provider
            azureHTTP = http
        }
        let directories =
            additionalProviderVolumePaths.split(separator: ",").map { String($0).trimmingSpaces() }
            .filter { !$0.isEmpty } + [providerVolume]
        let publisher = NodePublisher(
            kubernetes: kubernetes,
            providers: ProviderSocketDirectory(
                builtIn: builtIn,
                directories: directories,
                maxReceiveMessageBytes: maxCallRecvMsgSize
            ),
            mounter: LinuxMounter(),
            fileSystem: PosixFileSystem(),
            monotonicNow: { ContinuousClock.now - ContinuousClock.Instant.processStart },
            wallClockSeconds: { Int64(time(nil)) },
            configuration: .init(
                nodeID: nodeid,
                rotation: RotationPolicy(enabled: enableSecretRotation, interval: GoDuration.parse(rotationPollInterval)!),
                syncSecrets: enableSecretSync
            ),
            metrics: metrics
        )
        do {
            try await publisher.recover(logger: logger)
        } catch {
            logger.warning("could not list this node's pod statuses; published volumes are picked up on republish", metadata: ["error": "\(error)"])
        }
        let server = CSIServer(
            socketPath: socketPath,
            identity: IdentityService(driverName: drivername, vendorVersion: DriverVersion.current),
            node: NodeService(publisher: publisher, nodeID: nodeid, logger: logger),
            logger: logger
        )
        logger.info(
            "starting",
            metadata: [
                "driver.name": "\(drivername)", "driver.version": "\(DriverVersion.current)", "node.id": "\(nodeid)",
                "rotation.enabled": "\(enableSecretRotation)", "rotation.interval": "\(rotationPollInterval)",
            ]
        )
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: server),
            .init(service: try MetricsServer(address: metricsAddr, metrics: metrics, logger: logger)),
        ]
        if enableSecretRotation {
            services.append(
                .init(service: RotationService(publisher: publisher, interval: GoDuration.parse(rotationPollInterval)!, logger: logger))
            )
        }
        let group = ServiceGroup(
            configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        )
        do {
            try await group.run()
        } catch {
            try? await kubernetes.shutdown()
            try? await azureHTTP?.shutdown()
            throw error
        }
        try await kubernetes.shutdown()
        try await azureHTTP?.shutdown()
        logger.info("stopped")
    }

    private static func environment() -> [String: String] {
        var result: [String: String] = [:]
        for name in ["KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"] {
            if let value = getenv(name) { result[name] = String(cString: value) }
        }
        return result
    }
}

extension String {
    fileprivate func trimmingSpaces() -> String {
        String(drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }
}

extension ContinuousClock.Instant {
    /// A fixed origin for the publisher's monotonic clock.
    static let processStart = ContinuousClock.now
}
