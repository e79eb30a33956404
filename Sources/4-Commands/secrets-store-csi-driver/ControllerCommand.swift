import ArgumentParser
import Logging
import SecretsStoreCore
import SecretsStoreApplication
import SecretsStoreKubernetes
import UnixSignals

/// `controller`: keeps the `secretObjects` Secrets of every SecretProviderClass with `spec.sync` in sync,
/// without pods. It only parses: the flags become a ``ControllerConfiguration`` that ``ControllerAssembly``
/// builds and runs.
struct ControllerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "controller",
        abstract: "Sync the Secrets of SecretProviderClasses that have spec.sync, before and without any pod."
    )

    /// Flags that take no value (default `false`).
    static let booleanFlagNames: Set<String> = ["log-format-json"]
    /// Flags that take no value and default to `true` (`--leader-elect=false` becomes `--no-leader-elect`).
    static let invertedBooleanFlagNames: Set<String> = ["leader-elect"]

    @Option(help: "Path to a kubeconfig; the in-cluster service account configuration is used when empty.")
    var kubeconfig = ""

    @Option(name: .customLong("provider-volume"), help: "Directory of provider sockets (provider sidecars), searched last.")
    var providerVolume = "/var/run/secrets-store-csi-providers"

    @Option(
        name: .customLong("additional-provider-volume-paths"),
        help: "Comma-separated directories of provider sockets, searched first."
    )
    var additionalProviderVolumePaths = ""

    @Option(name: .customLong("max-call-recv-msg-size"), help: "Largest provider response accepted, in bytes.")
    var maxCallRecvMsgSize = 4_194_304

    @Option(
        name: .customLong("builtin-azure-provider"),
        help: "Serve SecretProviderClasses with provider azure in-process (true) or through azure.sock (false)."
    )
    var builtinAzureProvider = true

    @OptionGroup var azure: AzureOptions

    @Option(
        name: .customLong("rotation-poll-interval"),
        help: "Refresh interval of SecretProviderClasses without spec.refreshInterval (Go duration: 30s, 2m, 1h)."
    )
    var rotationPollInterval = GoDurationArgument(argument: "2m")

    @Option(help: "Watch SecretProviderClasses of this namespace only; all namespaces when empty.")
    var namespace = ""

    @Option(help: "Name of the CSIDriver whose spec.tokenRequests name the service account token audiences.")
    var drivername = "secrets-store.csi.k8s.io"

    @Option(
        name: .customLong("token-requests"),
        help: "Comma-separated token audiences; overrides the CSIDriver's spec.tokenRequests."
    )
    var tokenRequests: String?

    @Flag(name: .customLong("leader-elect"), inversion: .prefixedNo, help: "Elect one active controller with a Lease.")
    var leaderElect = true

    @Option(
        name: .customLong("leader-election-namespace"),
        help: "Namespace of the Lease; the pod's namespace (service-account mount) when empty, else kube-system."
    )
    var leaderElectionNamespace = ""

    @Option(name: .customLong("leader-election-id"), help: "Name of the Lease.")
    var leaderElectionID = "secrets-store-csi-driver-controller"

    @Option(name: .customLong("metrics-addr"), help: "Address of the /metrics and /healthz listener.")
    var metricsAddr = ":8096"

    @Flag(name: .customLong("log-format-json"), help: "Write logs as JSON lines.")
    var logFormatJSON = false

    @Option(name: [.customLong("v"), .customShort("v")], help: "Log verbosity: 0 info, 4 debug, 5 and more trace.")
    var verbosity = 0

    func validate() throws {
        _ = try defaultInterval()
        guard maxCallRecvMsgSize > 0 else { throw ValidationError("--max-call-recv-msg-size must be positive") }
    }

    func run() async throws {
        let logger = bootstrapLogging(verbosity: verbosity, json: logFormatJSON)
        let assembly = try await makeAssembly(logger: logger)
        try await assembly.run(gracefulShutdownSignals: [.sigterm, .sigint])
        logger.info("stopped")
    }

    /// The assembly the flags describe.
    func makeAssembly(logger: Logger) async throws -> ControllerAssembly {
        do {
            return try await ControllerAssembly(configuration: try controllerConfiguration(), logger: logger)
        } catch let error as KubernetesConfiguration.LoadError {
            throw ValidationError(error.description)
        }
    }

    /// `--rotation-poll-interval`, greater than zero.
    private func defaultInterval() throws -> Duration {
        try rotationPollInterval.positive("rotation-poll-interval", example: "30s or 2m")
    }

    /// What the flags ask for.
    func controllerConfiguration() throws -> ControllerConfiguration {
        func list(_ text: String) -> [String] {
            text.split(separator: ",").map { String($0).filter { $0 != " " } }.filter { !$0.isEmpty }
        }
        return ControllerConfiguration(
            kubernetes: kubeconfig.isEmpty ? .inCluster : .kubeconfig(path: kubeconfig),
            providerDirectories: list(additionalProviderVolumePaths) + [providerVolume],
            maxReceiveMessageBytes: maxCallRecvMsgSize,
            builtInAzure: builtinAzureProvider ? try azure.builtInAzure() : nil,
            defaultInterval: try defaultInterval(),
            namespace: namespace.isEmpty ? nil : namespace,
            driverName: drivername,
            tokenAudiences: tokenRequests.map(list),
            leaderElection: leaderElect
                ? .init(
                    namespace: leaderElectionNamespace.isEmpty ? ControllerConfiguration.LeaderElection.defaultNamespace() : leaderElectionNamespace,
                    name: leaderElectionID
                ) : nil,
            metricsAddress: metricsAddr
        )
    }
}
