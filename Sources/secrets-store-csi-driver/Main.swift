import ArgumentParser
import SecretsStoreDriver

/// `secrets-store-csi-driver`: the node plugin. Without a subcommand it serves CSI (`serve`).
@main
struct Driver: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "secrets-store-csi-driver",
        abstract: "Secrets Store CSI driver: mounts secrets from Azure Key Vault and other providers into pods.",
        subcommands: [ServeCommand.self, ProviderCommand.self],
        defaultSubcommand: ServeCommand.self
    )

    /// Parses the command line after rewriting Go-style flags (see ``GoFlags``), then runs the command.
    static func main() async {
        let arguments = GoFlags.normalize(
            Array(CommandLine.arguments.dropFirst()),
            booleanFlags: ServeCommand.booleanFlagNames
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
