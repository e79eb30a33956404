import SecretsStoreCommandLine
import ArgumentParser
import SecretsStoreApplication

/// `crds`: the CustomResourceDefinitions built into the binary.
struct CRDsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crds",
        abstract: "Manage the CustomResourceDefinitions built into the binary.",
        subcommands: [CRDsApplyCommand.self]
    )
}

/// `crds apply`: server-side-applies the built-in CRDs (the chart's pre-install/pre-upgrade hook Job runs it).
/// Prints one line per applied CRD; on any failure prints why to standard error and exits 1.
struct CRDsApplyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply",
        abstract: "Server-side-apply the SecretProviderClass and SecretProviderClassPodStatus CRDs (field manager secrets-store-csi-driver, force)."
    )

    @Option(help: "Path to a kubeconfig; the in-cluster service account configuration is used when empty.")
    var kubeconfig = ""

    @Flag(name: .customLong("log-format-json"), help: "Write logs as JSON lines.")
    var logFormatJSON = false

    @Option(name: [.customLong("v"), .customShort("v")], help: "Log verbosity: 0 info, 4 debug, 5 and more trace.")
    var verbosity = 0

    func run() async throws {
        let logger = bootstrapLogging(verbosity: verbosity, json: logFormatJSON)
        let report = await CRDApply.run(kubernetes: kubeconfig.isEmpty ? .inCluster : .kubeconfig(path: kubeconfig), logger: logger)
        for line in report.applied { print(line) }
        for line in report.failures { printError(line) }
        if report.exitCode != 0 { throw ExitCode(report.exitCode) }
    }
}
