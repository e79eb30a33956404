import ArgumentParser
import Logging
import SecretsStoreDriver
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

    @OptionGroup var azure: AzureOptions

    func validate() throws {
        guard name == "azure" else { throw ValidationError("unknown provider \(name): only azure is built in") }
    }

    func run() async throws {
        let logger = bootstrapLogging(verbosity: verbosity, json: logFormatJSON)
        let socketPath = try Endpoint.socketPath(from: endpoint)
        try await BuiltInProviderServer.runAzure(
            try azure.builtInAzure(),
            socketPath: socketPath,
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        )
    }
}

/// Installs the line log handler for the whole process and returns the root logger.
func bootstrapLogging(verbosity: Int, json: Bool) -> Logger {
    let level: Logger.Level = verbosity >= 5 ? .trace : verbosity >= 4 ? .debug : .info
    let format: LineLogHandler.Format = json ? .json : .text
    LoggingSystem.bootstrap { label in LineLogHandler(label: label, format: format, level: level) }
    return Logger(label: "secrets-store-csi-driver")
}
