import SecretsStoreCommandLine
import ArgumentParser
import Logging
import SecretsStoreCore
import SecretsStoreApplication

/// `render`: what a pod would see from a SecretProviderClass, without a cluster or a mount (see ``Render``).
/// Exit status 0 when every class in the file is valid (and was fetched, without `--dry-run`), 1 otherwise.
struct RenderCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "render",
        abstract: "Show the files a pod would get from a SecretProviderClass, without a cluster or a mount.",
        discussion: """
            With --dry-run nothing is fetched: the class is checked as the CRD schema, the driver and (for \
            provider azure) the built-in provider check it, and the objects and files a mount would hold are \
            listed; every problem is reported. Without --dry-run the provider is asked as a NodePublishVolume \
            would ask it and the files are listed with their sizes, modes and versions. Values are printed only \
            with --show-values. A class that holds a credential (a parameter named like a secret, password or \
            token, a PEM private key, a JWT) is refused: SecretProviderClasses belong in Git. See docs/render.md.
            """
    )

    /// Flags that take no value, for ``GoFlags``.
    static let booleanFlagNames: Set<String> = ["dry-run", "show-values"]

    @Option(name: [.customShort("f"), .customLong("filename")], help: "The SecretProviderClass manifest (YAML or JSON; - reads standard input).")
    var filename: String

    @Option(name: [.customShort("n"), .customLong("namespace")], help: "The pod's namespace (default: the class's metadata.namespace, else default).")
    var namespace: String?

    @Option(name: .customLong("service-account"), help: "The pod's service account.")
    var serviceAccount = "default"

    @Option(name: .customLong("pod"), help: "The pod's name.")
    var pod = "render"

    @Option(name: .customLong("secrets-file"), help: "YAML or JSON map (or a Secret manifest) used as the nodePublishSecretRef data.")
    var secretsFile: String?

    @Option(name: .customLong("token-file"), help: "The pod's service account token (workload identity: kubectl create token SA --audience api://AzureADTokenExchange).")
    var tokenFile: String?

    @Option(name: .customLong("token-audience"), help: "The audience the --token-file token is sent for.")
    var tokenAudience = "api://AzureADTokenExchange"

    @Flag(name: .customLong("dry-run"), help: "Check and list only; fetch nothing.")
    var dryRun = false

    @Option(name: .customLong("out"), help: "Write the files into this directory with the volume's ..data layout.")
    var out: String?

    @Option(name: [.customShort("o"), .customLong("output")], help: "Report format: text or json.")
    var output = "text"

    @Flag(name: .customLong("show-values"), help: "Print the files' contents.")
    var showValues = false

    @Option(name: .customLong("timeout"), help: "How long the provider may take (Go duration).")
    var timeout = GoDurationArgument(argument: "1m")

    @Option(name: .customLong("provider-volume"), help: "Directory of provider sockets, searched last.")
    var providerVolume = "/var/run/secrets-store-csi-providers"

    @Option(name: .customLong("additional-provider-volume-paths"), help: "Comma-separated directories of provider sockets, searched first.")
    var additionalProviderVolumePaths = "/etc/kubernetes/secrets-store-csi-providers"

    @Option(name: .customLong("max-call-recv-msg-size"), help: "Largest provider response accepted, in bytes.")
    var maxCallRecvMsgSize = 4_194_304

    @Option(name: .customLong("builtin-azure-provider"), help: "Serve provider azure in-process (true) or through azure.sock (false).")
    var builtinAzureProvider = true

    @OptionGroup var azure: AzureOptions

    @Option(name: [.customLong("v"), .customShort("v")], help: "Log verbosity (to standard error): 0 info, 4 debug, 5 and more trace.")
    var verbosity = 0

    func validate() throws {
        guard RenderOptions.Format(rawValue: output) != nil else {
            throw ValidationError("--output \(output): use text or json")
        }
        _ = try providerTimeout()
        guard maxCallRecvMsgSize > 0 else { throw ValidationError("--max-call-recv-msg-size must be positive") }
    }

    /// `--timeout`, greater than zero.
    private func providerTimeout() throws -> Duration {
        try timeout.positive("timeout", example: "30s or 2m")
    }

    func run() async throws {
        let logger = bootstrapLogging(verbosity: verbosity, json: false)
        var options = RenderOptions()
        options.namespace = namespace
        options.serviceAccount = serviceAccount
        options.podName = pod
        options.tokenAudience = tokenAudience
        options.dryRun = dryRun
        options.outputDirectory = out
        options.format = RenderOptions.Format(rawValue: output) ?? .text
        options.showValues = showValues
        options.timeout = try providerTimeout()
        do {
            if let secretsFile { options.secrets = try Render.secrets(fromFile: secretsFile) }
            if let tokenFile { options.serviceAccountToken = try Render.token(fromFile: tokenFile) }
        } catch {
            throw ValidationError(error.description)
        }
        let manifest: String
        if filename == "-" {
            var text = ""
            while let line = readLine(strippingNewline: false) { text += line }
            manifest = text
        } else {
            do {
                manifest = try Render.manifest(fromFile: filename)
            } catch {
                throw ValidationError(error.description)
            }
        }
        let environment = RenderEnvironment(
            builtInAzure: builtinAzureProvider ? try azure.builtInAzure() : nil,
            providerDirectories: additionalProviderVolumePaths.split(separator: ",").map { String($0).trimmingWhitespace() }
                .filter { !$0.isEmpty } + [providerVolume],
            maxReceiveMessageBytes: maxCallRecvMsgSize
        )
        if dryRun && out != nil { logger.notice("--out is ignored with --dry-run: nothing is fetched") }
        let outcome = await Render.run(
            manifest: manifest,
            source: filename == "-" ? "<stdin>" : filename,
            options: options,
            environment: environment,
            logger: logger
        )
        print(options.format == .json ? outcome.json() : outcome.text(), terminator: "")
        if outcome.exitCode != 0 { throw ExitCode(outcome.exitCode) }
    }
}
