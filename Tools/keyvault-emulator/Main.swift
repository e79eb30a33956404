import ArgumentParser
import Foundation
import KeyVaultEmulator

/// `keyvault-emulator`: Key Vault, Entra ID and IMDS on one HTTPS port on loopback, seeded from a file.
@main
struct EmulatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keyvault-emulator",
        abstract: "Serve an Azure Key Vault, Entra ID and IMDS emulator over HTTPS on 127.0.0.1."
    )

    @Option(help: "Port on 127.0.0.1 (0 picks a free one).")
    var port = 8443

    @Option(help: "Seed file (YAML or JSON): vaults, objects, clients, managed identities, trusted token issuers.")
    var seed: String?

    @Option(name: .customLong("ca-out"), help: "Write the generated CA certificate (PEM) here for clients to trust.")
    var caOut = "keyvault-emulator-ca.pem"

    @Option(
        name: .customLong("trust-issuer"),
        help: ArgumentHelp(
            "Accept service account tokens from ISSUER signed by a key in PEMFILE (PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE PEM, or the private key: what the API server's --service-account-key-file holds; RS256) as client assertions; repeatable. Adds to the seed's issuers; with either, the built-in test issuer is no longer trusted.",
            valueName: "ISSUER=PEMFILE"
        )
    )
    var trustIssuer: [String] = []

    @Option(name: .customLong("throttle"), help: "Answer 429 past this many Key Vault requests per 10 s.")
    var throttle: Int?

    @Option(name: .customLong("latency-ms"), help: "Delay every Key Vault answer by this many milliseconds.")
    var latencyMilliseconds: Int?

    func run() async throws {
        var seedValue = try seed.map { try EmulatorSeed.load(path: $0) } ?? EmulatorSeed()
        for value in trustIssuer {
            guard let equals = value.firstIndex(of: "="), equals != value.startIndex, value.index(after: equals) != value.endIndex else {
                throw ValidationError("--trust-issuer wants ISSUER=PEMFILE, got '\(value)'")
            }
            let issuer = EmulatorSeed.Issuer(issuer: String(value[..<equals]), publicKeyFile: String(value[value.index(after: equals)...]))
            seedValue.issuers = (seedValue.issuers ?? []) + [issuer]
        }
        let emulator = try await KeyVaultEmulator(seed: seedValue, port: port)
        try emulator.certificates.caCertificatePEM.write(toFile: caOut, atomically: true, encoding: .utf8)
        var faults = KeyVaultEmulator.Faults()
        faults.throttleLimit = throttle
        faults.latency = latencyMilliseconds.map { .milliseconds($0) }
        emulator.setFaults(faults)
        let banner = """
            keyvault-emulator listening on \(emulator.baseURL)
              vaults:  \(emulator.baseURL)/<vault>/secrets/<name>   (driver: --azure-keyvault-url-template=\(emulator.baseURL)/{vault})
              entra:   \(emulator.baseURL)/<tenant>/oauth2/v2.0/token   (--azure-authority-host=\(emulator.baseURL)/)
              imds:    \(emulator.baseURL)/metadata/identity/oauth2/token   (--azure-imds-endpoint=\(emulator.baseURL))
              CA:      \(caOut)   (--azure-ca-bundle=\(caOut))
              issuers: \(emulator.trustedIssuers.joined(separator: ", "))   (service account tokens accepted as client assertions)

            """
        FileHandle.standardOutput.write(Data(banner.utf8))
        while !Task.isCancelled {
            try await Task.sleep(for: .seconds(3600))
        }
    }
}
