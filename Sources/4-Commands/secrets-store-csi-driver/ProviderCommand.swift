import SecretsStoreObservability
import ArgumentParser
import Logging
import SecretsStoreAzure
import SecretsStoreCore
import SecretsStoreApplication
import UnixSignals

/// `provider azure`: serves the built-in Azure provider over the v1alpha1 provider API on a Unix socket, so the
/// upstream Go driver (or this driver with `--builtin-azure-provider=false`) can use it as `azure.sock`.
struct ProviderCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "provider",
        abstract: "Serve a built-in provider over the v1alpha1 provider API."
    )

    @Argument(help: "The provider to serve (azure).")
    var name: String

    @Option(help: "Provider socket (unix://).")
    var endpoint = "unix:///tmp/azure.sock"

    @Flag(name: .customLong("log-format-json"), help: "Write logs as JSON lines.")
    var logFormatJSON = false

    @Option(name: [.customLong("v"), .customShort("v")], help: "Log verbosity: 0 info, 4 debug, 5 and more trace.")
    var verbosity = 0

    @Option(name: .customLong("healthz-port"), help: "Port of the HTTP health endpoint (the upstream Azure provider's flag).")
    var healthzPort = 8989

    @Option(name: .customLong("healthz-path"), help: "Path of the HTTP health endpoint.")
    var healthzPath = "/healthz"

    @Option(
        name: .customLong("healthz-timeout"),
        help: "Limit of the gRPC health check behind each health request (Go duration)."
    )
    var healthzTimeout = GoDurationArgument(argument: "5s")

    @Option(name: .customLong("metrics-backend"), help: "Metrics backend (only Prometheus).")
    var metricsBackend = "Prometheus"

    @Option(name: .customLong("prometheus-port"), help: "Port of /metrics (keyvault_request, grpc_request).")
    var prometheusPort = 8898

    @OptionGroup var azure: AzureOptions

    func validate() throws {
        guard name == AzureKeyVaultProvider.name else {
            throw ValidationError("unknown provider \(name): only \(AzureKeyVaultProvider.name) is built in")
        }
        guard (0...65535).contains(healthzPort) else { throw ValidationError("--healthz-port \(healthzPort): not a port (0-65535)") }
        guard (0...65535).contains(prometheusPort) else {
            throw ValidationError("--prometheus-port \(prometheusPort): not a port (0-65535)")
        }
        guard healthzPath.hasPrefix("/") else {
            throw ValidationError("--healthz-path \(healthzPath): expected an absolute path such as /healthz")
        }
        _ = try checkTimeout()
        guard metricsBackend.lowercased() == "prometheus" else {
            throw ValidationError("--metrics-backend \(metricsBackend): only Prometheus is supported")
        }
    }

    /// `--healthz-timeout`, greater than zero.
    private func checkTimeout() throws -> Duration {
        try healthzTimeout.positive("healthz-timeout", example: "5s")
    }

    func run() async throws {
        let logger = bootstrapLogging(verbosity: verbosity, json: logFormatJSON)
        let socketPath = try Endpoint.socketPath(from: endpoint)
        let server = try BuiltInProviderServer(
            azure: try azure.builtInAzure(),
            socketPath: socketPath,
            options: BuiltInProviderServer.Options(
                healthzAddress: ":\(healthzPort)",
                healthzPath: healthzPath,
                healthzTimeout: try checkTimeout(),
                metricsAddress: ":\(prometheusPort)"
            ),
            logger: logger
        )
        try await server.run(gracefulShutdownSignals: [.sigterm, .sigint])
    }
}

/// Installs the line log handler for the whole process and returns the root logger.
func bootstrapLogging(verbosity: Int, json: Bool) -> Logger {
    let level: Logger.Level = verbosity >= 5 ? .trace : verbosity >= 4 ? .debug : .info
    let format: LineLogHandler.Format = json ? .json : .text
    LoggingSystem.bootstrap { label in LineLogHandler(label: label, format: format, level: level) }
    return Logger(label: "secrets-store-csi-driver")
}
