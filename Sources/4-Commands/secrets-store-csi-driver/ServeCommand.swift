import ArgumentParser
import Logging
import SecretsStoreCSI
import SecretsStoreCore
import SecretsStoreApplication
import SecretsStoreKubernetes
import UnixSignals

/// Serves CSI Identity and Node on `--endpoint`. Flag names, defaults and syntax follow the upstream driver.
///
/// It only parses: the flags become a ``DriverConfiguration`` that ``DriverAssembly`` builds and runs.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "serve", abstract: "Serve the CSI node plugin.")

    /// Flags that take no value; Go-style `--flag=true|false` is rewritten for them.
    static let booleanFlagNames: Set<String> = [
        "enable-secret-rotation", "log-format-json", "version", "provider-health-check", "enable-secret-sync",
        "enable-rotation-restart",
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

    @Flag(
        name: .customLong("enable-rotation-restart"),
        help: "After a refresh changes a volume's files, restart the pod's Deployment, StatefulSet or DaemonSet when it is annotated secrets-store.csi.k8s.io/restart-on-rotation=true (the chart's rotationRestart.enabled grants the RBAC)."
    )
    var enableRotationRestart = false

    @Option(
        name: .customLong("rotation-poll-interval"),
        help: "Least time between two fetches of one volume (Go duration: 30s, 2m, 1h)."
    )
    var rotationPollInterval = GoDurationArgument(argument: "2m")

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

    @Flag(
        name: .customLong("provider-health-check"),
        help: "Call Version on every provider socket every --provider-health-check-interval; log and export (provider_health_check_healthy) changes."
    )
    var providerHealthCheck = false

    @Option(
        name: .customLong("provider-health-check-interval"),
        help: "Period of the provider health check (Go duration: 30s, 2m)."
    )
    var providerHealthCheckInterval = GoDurationArgument(argument: "2m")

    @Option(
        name: .customLong("heap-trim-interval"),
        help: "How often to check whether a burst of volume operations has ended and hand the heap memory it freed back to the system and mark the code pages that ran cold, so they leave the working set (Go duration; 0 turns both off)."
    )
    var heapTrimInterval = GoDurationArgument(argument: "1s")

    @Option(
        name: .customLong("builtin-azure-provider"),
        help: "Serve SecretProviderClasses with provider azure in-process (true) or through azure.sock (false)."
    )
    var builtinAzureProvider = true

    @Option(
        name: .customLong("plugin-registration-dir"),
        help: "Kubelet's plugins_registry directory: register with kubelet by serving <dir>/<drivername>-reg.sock, without the node-driver-registrar sidecar (empty: do not register)."
    )
    var pluginRegistrationDir = ""

    @Option(
        name: .customLong("kubelet-registration-path"),
        help: "The CSI socket path as kubelet sees it, announced at registration (default: the --endpoint path)."
    )
    var kubeletRegistrationPath = ""

    @OptionGroup var azure: AzureOptions

    func validate() throws {
        // 0 would make the rotation loop fetch every volume back to back (no wait, no per-volume gate), as fast as
        // Key Vault answers; the controller refuses it too.
        _ = try rotationInterval()
        guard metricsBackend.lowercased() == "prometheus" else {
            throw ValidationError("--metrics-backend \(metricsBackend): only Prometheus is supported")
        }
        guard maxCallRecvMsgSize > 0 else { throw ValidationError("--max-call-recv-msg-size must be positive") }
        _ = try heapTrimPeriod()
        _ = try providerHealthCheckPeriod()
    }

    /// `--rotation-poll-interval`, greater than zero.
    private func rotationInterval() throws -> Duration {
        try rotationPollInterval.positive("rotation-poll-interval", example: "30s or 2m")
    }

    /// `--heap-trim-interval`; 0 turns trimming off.
    private func heapTrimPeriod() throws -> Duration {
        try heapTrimInterval.nonNegative("heap-trim-interval", example: "1s or 500ms (0 turns it off)")
    }

    /// `--provider-health-check-interval`, checked whether or not `--provider-health-check` is on.
    private func providerHealthCheckPeriod() throws -> Duration {
        try providerHealthCheckInterval.positive("provider-health-check-interval", example: "30s or 2m")
    }

    func run() async throws {
        if version {
            print("{\"BuildVersion\":\"\(DriverVersion.current)\",\"GitCommit\":\"\",\"BuildDate\":\"\"}")
            return
        }
        let logger = bootstrapLogging(verbosity: verbosity, json: logFormatJSON)
        let assembly: DriverAssembly
        do {
            assembly = try await DriverAssembly(configuration: try driverConfiguration(), logger: logger)
        } catch let error as KubernetesConfiguration.LoadError {
            throw ValidationError(error.description)
        }
        try await assembly.run(gracefulShutdownSignals: [.sigterm, .sigint])
        logger.info("stopped")
    }

    /// What the flags ask for. Reads `--azure-ca-bundle` and `$AZURE_AUTHORITY_HOST` when the built-in Azure
    /// provider is on.
    func driverConfiguration() throws -> DriverConfiguration {
        let heapTrim = try heapTrimPeriod()
        return DriverConfiguration(
            socketPath: try Endpoint.socketPath(from: endpoint),
            nodeID: nodeid,
            driverName: drivername,
            providerDirectories: additionalProviderVolumePaths.split(separator: ",").map { String($0).trimmingSpaces() }
                .filter { !$0.isEmpty } + [providerVolume],
            maxReceiveMessageBytes: maxCallRecvMsgSize,
            kubernetes: kubeconfig.isEmpty ? .inCluster : .kubeconfig(path: kubeconfig),
            rotation: RotationPolicy(enabled: enableSecretRotation, interval: try rotationInterval()),
            rotationIntervalText: rotationPollInterval.text,
            syncSecrets: enableSecretSync,
            restartOnRotation: enableRotationRestart,
            metricsAddress: metricsAddr,
            builtInAzure: builtinAzureProvider ? try azure.builtInAzure() : nil,
            providerHealthCheckInterval: providerHealthCheck ? try providerHealthCheckPeriod() : nil,
            heapTrimInterval: heapTrim > .zero ? heapTrim : nil,
            kubeletRegistration: pluginRegistrationDir.isEmpty
                ? nil
                : .init(
                    directory: pluginRegistrationDir,
                    endpointPath: kubeletRegistrationPath.isEmpty ? try Endpoint.socketPath(from: endpoint) : kubeletRegistrationPath
                )
        )
    }
}

extension String {
    fileprivate func trimmingSpaces() -> String {
        String(drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }
}
