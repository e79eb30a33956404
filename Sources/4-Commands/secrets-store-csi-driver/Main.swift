import SecretsStoreCommandLine
import ArgumentParser
import SecretsStoreApplication

#if canImport(Glibc)
import Glibc
#endif

/// `secrets-store-csi-driver`: the node plugin. Without a subcommand it serves CSI (`serve`).
@main
struct Driver: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "secrets-store-csi-driver",
        abstract: "Secrets Store CSI driver: mounts secrets from Azure Key Vault and other providers into pods.",
        subcommands: [ServeCommand.self, ControllerCommand.self, ProviderCommand.self, RenderCommand.self, CRDsCommand.self],
        defaultSubcommand: ServeCommand.self
    )

    /// Parses the command line after rewriting Go-style flags (see ``GoFlags``), then runs the command.
    static func main() async {
        EventLoopConcurrency.install()
        let arguments = GoFlags.normalize(
            Array(CommandLine.arguments.dropFirst()),
            booleanFlags: ServeCommand.booleanFlagNames.union(AzureOptions.booleanFlagNames).union(RenderCommand.booleanFlagNames)
                .union(ControllerCommand.booleanFlagNames),
            invertedBooleanFlags: AzureOptions.invertedBooleanFlagNames.union(ControllerCommand.invertedBooleanFlagNames)
        )
        do {
            var command = try parseAsRoot(arguments)
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}

/// Writes `line` and a newline to standard error in one `write(2)`.
func printError(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}
