import SecretsStoreCommandLine
import CSIProtocol
import Foundation
import KeyVaultEmulator
import Logging
import SecretsStoreAzure
import SecretsStoreCore
import SecretsStoreCoreTesting
import SecretsStoreApplication
import SecretsStoreKubernetes
import SecretsStoreLinux
import SecretsStoreTesting
import Testing

/// `render` without `--dry-run`: the built-in Azure provider against the Key Vault emulator (as the demo runs
/// it), a socket provider, `--out` with the volume's layout, and the binary itself with its flags.
@Suite("render against the Key Vault emulator and providers", .serialized, .timeLimit(.minutes(3)))
struct RenderEndToEndTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static let example = root + "/examples/secretproviderclass.yaml"
    let logger = Logger(label: "render-e2e")

    /// The demo's vault: examples/emulator-seed.yaml plus a certificate `web` (PFX order leaf, root, intermediate).
    static func emulator() async throws -> (KeyVaultEmulator, TestCertificateChain) {
        var seed = try EmulatorSeed.load(path: root + "/examples/emulator-seed.yaml")
        let chain = try TestCertificateChain.make(commonName: "render.contoso.com")
        seed.vaults?["kv1"]?.certificates = ["web": [.init(pkcs12: try chain.pkcs12Base64(certificates: [chain.leaf, chain.root, chain.intermediate]))]]
        return (try await KeyVaultEmulator(seed: seed), chain)
    }

    static func azure(_ emulator: KeyVaultEmulator, separateFiles: Bool = false) -> DriverConfiguration.BuiltInAzure {
        .init(
            overrides: AzureEndpointOverrides(
                keyVaultURLTemplate: emulator.baseURL + "/{vault}",
                authorityHost: emulator.baseURL + "/",
                caBundlePEM: Array(emulator.certificates.caCertificatePEM.utf8),
                writeCertAndKeyInSeparateFiles: separateFiles
            )
        )
    }

    /// The example's workload identity: the token kubelet would request for the pod's service account `demo`.
    static func options(showValues: Bool = false, out: String? = nil) -> RenderOptions {
        var options = RenderOptions()
        options.serviceAccount = "demo"
        options.serviceAccountToken = ServiceAccountToken.make(subject: "system:serviceaccount:default:demo")
        options.showValues = showValues
        options.outputDirectory = out
        return options
    }

    func render(_ manifest: String, options: RenderOptions, environment: RenderEnvironment) async -> RenderOutcome {
        await Render.run(manifest: manifest, source: "spc.yaml", options: options, environment: environment, logger: logger)
    }

    @Test("the example fetches six files with sizes, modes and versions; values only with --show-values")
    func fetchesTheExample() async throws {
        let (emulator, chain) = try await Self.emulator()
        let manifest = try String(contentsOfFile: Self.example, encoding: .utf8)
        let environment = RenderEnvironment(builtInAzure: Self.azure(emulator), providerDirectories: [])
        let outcome = await render(manifest, options: Self.options(), environment: environment)
        #expect(outcome.exitCode == 0, "\(outcome.text())")
        let report = try #require(outcome.reports.first)
        #expect(report.mode == "fetch")
        #expect(report.files.map(\.path) == ["DB_PASSWORD", "web", "tls.crt", "signing", "api-key/0", "api-key/1"])
        #expect(report.files.allSatisfy { $0.mode == "0644" && $0.value == nil && ($0.version ?? "").count == 32 })
        #expect(report.files[0].size == "first-password".utf8.count)
        #expect(report.files[1].source == "secret/web")
        #expect(report.files[5].source == "secret/api-key/1")
        #expect(report.objects.count == 6)
        #expect(emulator.keyVaultRequestCount == 7)
        for text in [outcome.text(), outcome.json()] {
            #expect(!text.contains("first-password"))
            #expect(!text.contains("PRIVATE KEY"))
            #expect(!text.contains("key-v3"))
        }
        #expect(outcome.text().contains("fetched 6 files from 6 object versions"))

        let shown = await render(manifest, options: Self.options(showValues: true), environment: environment)
        let files = try #require(shown.reports.first?.files)
        #expect(files[0].value == "first-password" && files[0].valueEncoding == "utf-8")
        #expect(files[2].value == PEM.encode(type: "CERTIFICATE", der: chain.leaf))
        #expect(files[4].value == "key-v3" && files[5].value == "key-v2")
        #expect(shown.text().contains("  --- DB_PASSWORD\n  first-password"))
        try await emulator.shutdown()
    }

    @Test("--out writes the volume's layout: a timestamped directory, ..data and top-level links")
    func writesTheLayout() async throws {
        let (emulator, _) = try await Self.emulator()
        let manifest = try String(contentsOfFile: Self.example, encoding: .utf8)
        try await withTemporaryDirectory { (directory: String) async throws in
            let out = directory + "/volume"
            let environment = RenderEnvironment(builtInAzure: Self.azure(emulator), providerDirectories: [], wallClockSeconds: { 1_795_919_943 })
            let outcome = await render(manifest, options: Self.options(out: out), environment: environment)
            #expect(outcome.exitCode == 0, "\(outcome.text())")
            let report = try #require(outcome.reports.first)
            let fileSystem = PosixFileSystem()
            let data = try #require(try fileSystem.symbolicLinkDestination(at: out + "/..data"))
            #expect(data.hasPrefix("..2026_11_29_02_39_03."))
            #expect(report.outputDirectory == out && report.dataDirectory == data)
            #expect(try fileSystem.kind(of: out + "/" + data) == .directory)
            for name in ["DB_PASSWORD", "web", "tls.crt", "signing", "api-key"] {
                #expect(try fileSystem.symbolicLinkDestination(at: out + "/" + name) == "..data/" + name)
            }
            #expect(try fileSystem.readFile(at: out + "/DB_PASSWORD") == Array("first-password".utf8))
            #expect(try fileSystem.readFile(at: out + "/api-key/1") == Array("key-v2".utf8))
            #expect(try fileSystem.permissions(of: out + "/" + data + "/DB_PASSWORD") == 0o644)
            #expect(outcome.text().contains("written to \(out) (..data -> \(data))"))

            // The same content again: nothing is rewritten, as on a republish.
            let again = await render(manifest, options: Self.options(out: out), environment: environment)
            #expect(again.reports.first?.dataDirectory == data)
        }
        try await emulator.shutdown()
    }

    static let servicePrincipal = """
        apiVersion: secrets-store.csi.x-k8s.io/v1
        kind: SecretProviderClass
        metadata: {name: sp}
        spec:
          provider: azure
          parameters:
            keyvaultName: kv1
            tenantId: 72f988bf-86f1-41af-91ab-2d7cd011db47
            objects: |
              array:
                - |
                  objectName: db-pass
                  objectType: secret
        """

    @Test("--secrets-file is the nodePublishSecretRef data: a map or a Secret manifest; never printed")
    func servicePrincipal() async throws {
        let (emulator, _) = try await Self.emulator()
        try await withTemporaryDirectory { (directory: String) async throws in
            let environment = RenderEnvironment(builtInAzure: Self.azure(emulator), providerDirectories: [])
            try "clientid: demo-sp\nclientsecret: demo-sp-secret\n".write(toFile: directory + "/creds.yaml", atomically: true, encoding: .utf8)
            try """
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
             "data": {"clientid": "\(Data("demo-sp".utf8).base64EncodedString())"}, "stringData": {"clientsecret": "demo-sp-secret"}}
            """.write(toFile: directory + "/secret.json", atomically: true, encoding: .utf8)
            for file in ["creds.yaml", "secret.json"] {
                var options = RenderOptions()
                options.secrets = try Render.secrets(fromFile: directory + "/" + file)
                #expect(options.secrets == ["clientid": "demo-sp", "clientsecret": "demo-sp-secret"])
                let outcome = await render(Self.servicePrincipal, options: options, environment: environment)
                #expect(outcome.exitCode == 0, "\(outcome.text())")
                #expect(outcome.reports.first?.identity == "service principal, clientid demo-sp (from --secrets-file)")
                #expect(!outcome.text().contains("demo-sp-secret") && !outcome.json().contains("demo-sp-secret"))
            }

            // Without it: the provider's message, with what to pass.
            let missing = await render(Self.servicePrincipal, options: RenderOptions(), environment: environment)
            #expect(missing.exitCode == 1)
            #expect(missing.reports.first?.problems.contains { $0.message.contains("nodePublishSecretRef secret is not set; pass --secrets-file") } == true)

            try "clientsecret: [not, a, string]\n".write(toFile: directory + "/bad.yaml", atomically: true, encoding: .utf8)
            #expect(throws: RenderInputError(description: "--secrets-file \(directory)/bad.yaml: clientsecret is not a string")) {
                try Render.secrets(fromFile: directory + "/bad.yaml")
            }
        }
        try await emulator.shutdown()
    }

    @Test("no token for workload identity, a missing object, a credential: exit 1, and nothing fetched when refused")
    func failures() async throws {
        let (emulator, _) = try await Self.emulator()
        let manifest = try String(contentsOfFile: Self.example, encoding: .utf8)
        let environment = RenderEnvironment(builtInAzure: Self.azure(emulator), providerDirectories: [])

        let noToken = await render(manifest, options: RenderOptions(), environment: environment)
        #expect(noToken.exitCode == 1)
        #expect(noToken.reports.first?.problems.contains { $0.field == "service account token (--token-file)" && $0.message.contains("kubectl create token") } == true)
        #expect(emulator.keyVaultRequestCount == 0 && emulator.tokenRequestCount == 0)

        let missingObject = manifest.replacing("objectName: signing", with: "objectName: not-there")
        let notFound = await render(missingObject, options: Self.options(), environment: environment)
        #expect(notFound.exitCode == 1)
        let message = try #require(notFound.reports.first?.problems.first?.message)
        #expect(message.hasPrefix("failed to mount secrets store objects, provider \"azure\": object not found: failed to mount objects, error: failed to get objectType:key, objectName:not-there"))
        #expect(notFound.reports.first?.files == [])

        emulator.resetCounters()
        let leaky = manifest.replacing("keyvaultName: kv1", with: "keyvaultName: kv1\n    clientSecret: demo-sp-secret")
        let refused = await render(leaky, options: Self.options(), environment: environment)
        #expect(refused.exitCode == 1)
        #expect(refused.reports.first?.problems.map(\.field) == ["spec.parameters.clientSecret"])
        #expect(emulator.keyVaultRequestCount == 0 && emulator.tokenRequestCount == 0)
        #expect(!refused.text().contains("demo-sp-secret"))
        try await emulator.shutdown()
    }

    @Test("a socket provider in --provider-volume is asked as a publish asks it")
    func socketProvider() async throws {
        try await withTemporaryDirectory { (directory: String) async throws in
            try PosixFileSystem().createDirectories(at: directory + "/providers", permissions: 0o755)
            let provider = try await TestProviderServer(
                socketPath: directory + "/providers/test.sock",
                behaviour: .respond(TestProviderServer.response(files: [("username", "admin"), ("dir/password", "p@ss-SENTINEL")], mode: 0o600))
            )
            let manifest = """
                apiVersion: secrets-store.csi.x-k8s.io/v1
                kind: SecretProviderClass
                metadata: {name: spc, namespace: ns}
                spec:
                  provider: test
                  parameters: {role: app}
                """
            var options = RenderOptions()
            options.podName = "web-0"
            options.secrets = ["user": "u"]
            let environment = RenderEnvironment(builtInAzure: nil, providerDirectories: [directory + "/etc", directory + "/providers"])
            let outcome = await render(manifest, options: options, environment: environment)
            provider.shutdown()
            #expect(outcome.exitCode == 0, "\(outcome.text())")
            let report = try #require(outcome.reports.first)
            #expect(report.files.map(\.path) == ["username", "dir/password"])
            #expect(report.files.map(\.mode) == ["0600", "0600"])
            #expect(report.files.map(\.size) == [5, 13])
            #expect(report.files.map(\.version) == ["v1", "v1"])
            #expect(!outcome.text().contains("SENTINEL"))

            let request = try #require(provider.requests.first)
            let attributes = try JSONDecoder().decode([String: String].self, from: Data(request.attributes.utf8))
            #expect(attributes["role"] == "app")
            #expect(attributes["secretProviderClass"] == "spc")
            #expect(attributes["csi.storage.k8s.io/pod.name"] == "web-0")
            #expect(attributes["csi.storage.k8s.io/pod.namespace"] == "ns")
            #expect(attributes["csi.storage.k8s.io/serviceAccount.name"] == "default")
            #expect(try JSONDecoder().decode([String: String].self, from: Data(request.secrets.utf8)) == ["user": "u"])

            let unknown = await render(manifest.replacing("provider: test", with: "provider: gone"), options: options, environment: environment)
            #expect(unknown.exitCode == 1)
            #expect(unknown.reports.first?.problems.first?.message.hasPrefix("error connecting to provider \"gone\": provider not found") == true)
        }
    }

    @Test("dry run: --write-cert-and-key-in-separate-files plans .crt and .key before each secret's file; vault-qualified and optional objects")
    func separateFilesPlan() async throws {
        var options = RenderOptions()
        options.dryRun = true
        let manifest = """
            apiVersion: secrets-store.csi.x-k8s.io/v1
            kind: SecretProviderClass
            metadata: {name: plan}
            spec:
              provider: azure
              parameters:
                clientID: app
                keyvaultName: kv1
                tenantID: t
                objects: |
                  array:
                    - |
                      objectName: web
                      objectType: secret
                    - |
                      objectName: signing
                      objectType: key
                      keyvaultName: kv2
                      optional: true
            """
        var azure = DriverConfiguration.BuiltInAzure()
        azure.overrides.writeCertAndKeyInSeparateFiles = true
        let outcome = await render(manifest, options: options, environment: RenderEnvironment(builtInAzure: azure, providerDirectories: []))
        #expect(outcome.exitCode == 0, "\(outcome.text())")
        let report = try #require(outcome.reports.first)
        #expect(report.files.map(\.path) == ["web.crt", "web.key", "web", "signing"])
        #expect(report.files[0].condition == "if the secret is certificate-backed")
        #expect(report.files[3].source == "kv2/key/signing")
        #expect(report.files[3].condition == "if Key Vault has it (optional)")
        #expect(report.objects.map(\.id) == ["secret/web", "kv2/key/signing"])
    }

    // MARK: The binary

    static func run(_ arguments: [String]) async throws -> (status: Int32, stdout: String, stderr: String) {
        try await onOwnThread { try runToEnd(arguments) }
    }

    /// Runs the driver binary with `arguments` to its end, blocking the calling thread.
    static func runToEnd(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: DriverProcessTests.binary)
        process.arguments = arguments
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        let out = stdout.fileHandleForReading.readDataToEndOfFile()
        let err = stderr.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
    }

    @Test("the binary: render with the --azure-* and provider flags, --out and JSON; a broken class exits 1")
    func binaryRender() async throws {
        let (emulator, chain) = try await Self.emulator()
        try await withTemporaryDirectory { (directory: String) async throws in
            try emulator.certificates.caCertificatePEM.write(toFile: directory + "/ca.pem", atomically: true, encoding: .utf8)
            try ServiceAccountToken.make(subject: "system:serviceaccount:default:demo")
                .write(toFile: directory + "/token", atomically: true, encoding: .utf8)
            let result = try await Self.run([
                "render", "-f", Self.example, "--token-file", directory + "/token", "--service-account=demo",
                "--azure-keyvault-url-template=" + emulator.baseURL + "/{vault}", "--azure-authority-host", emulator.baseURL + "/",
                "--azure-ca-bundle", directory + "/ca.pem", "--write-cert-and-key-in-separate-files=true",
                "--construct-pem-chain=false", "--custom-user-agent=aks-addon/1.0", "--out", directory + "/out", "-o", "json",
            ])
            #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
            struct Document: Decodable {
                var valid: Bool
                var secretProviderClasses: [RenderReport]
            }
            let document = try JSONDecoder().decode(Document.self, from: Data(result.stdout.utf8))
            #expect(document.valid)
            let paths = document.secretProviderClasses.first?.files.map(\.path) ?? []
            #expect(paths.contains("DB_PASSWORD") && paths.contains("api-key/1"))
            #expect(try PosixFileSystem().symbolicLinkDestination(at: directory + "/out/..data") != nil)
            // --construct-pem-chain=false keeps the PFX's order (leaf, root, intermediate); separate files are written.
            #expect(paths.starts(with: ["DB_PASSWORD", "web.crt", "web.key", "web"]))
            let web = String(decoding: try PosixFileSystem().readFile(at: directory + "/out/web"), as: UTF8.self)
            #expect(
                web == PEM.encode(type: "PRIVATE KEY", der: chain.leafKeyPKCS8) + PEM.encode(type: "CERTIFICATE", der: chain.leaf)
                    + PEM.encode(type: "CERTIFICATE", der: chain.root) + PEM.encode(type: "CERTIFICATE", der: chain.intermediate)
            )
            #expect(!result.stdout.contains("first-password") && !result.stderr.contains("first-password"))

            let dryRun = try await Self.run(["render", "-f", Self.example, "--dry-run", "--write-cert-and-key-in-separate-files"])
            #expect(dryRun.status == 0, "\(dryRun.stdout)\(dryRun.stderr)")
            #expect(dryRun.stdout.contains("0644  web.crt") && dryRun.stdout.contains("0644  web.key"))

            try "apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\nmetadata: {name: x}\nspec:\n  provider: azure\n  parameters: {password: hunter2}\n"
                .write(toFile: directory + "/bad.yaml", atomically: true, encoding: .utf8)
            let invalid = try await Self.run(["render", "-f", directory + "/bad.yaml", "--dry-run=true"])
            #expect(invalid.status == 1)
            #expect(invalid.stdout.contains("spec.parameters.password: holds a credential"))
            #expect(invalid.stdout.contains("spec.parameters.keyvaultName: keyvaultName is not provided"))
            #expect(!invalid.stdout.contains("hunter2") && !invalid.stderr.contains("hunter2"))

            let unreadable = try await Self.run(["render", "-f", directory + "/nothing.yaml"])
            #expect(unreadable.status != 0)
            #expect(unreadable.stderr.contains("-f \(directory)/nothing.yaml"))
        }
        try await emulator.shutdown()
    }

    @Test("the binary: crds apply against the fake API server, and its failure")
    func binaryCRDsApply() async throws {
        try await withTemporaryDirectory { (directory: String) async throws in
            let api = try await FakeKubernetesAPIServer(requiredToken: "driver-token")
            let kubeconfig = try DriverProcessTests.kubeconfig(server: api.url, in: directory)
            let names = ["secretproviderclasses.secrets-store.csi.x-k8s.io", "secretproviderclasspodstatuses.secrets-store.csi.x-k8s.io"]
            for name in names { api.injectFailure(status: 200, forPathContaining: "/customresourcedefinitions/" + name) }
            let applied = try await Self.run(["crds", "apply", "--kubeconfig", kubeconfig])
            #expect(applied.status == 0, "\(applied.stdout)\(applied.stderr)")
            #expect(applied.stdout == names.map { "customresourcedefinition.apiextensions.k8s.io/\($0) serverside-applied\n" }.joined())
            #expect(api.requests.map(\.contentType) == ["application/apply-patch+yaml", "application/apply-patch+yaml"])

            api.injectFailure(status: 403, forPathContaining: "/customresourcedefinitions/" + names[0])
            api.injectFailure(status: 403, forPathContaining: "/customresourcedefinitions/" + names[1])
            let refused = try await Self.run(["crds", "apply", "-kubeconfig=" + kubeconfig])
            #expect(refused.status == 1)
            #expect(refused.stderr.contains("failed to apply CustomResourceDefinition \(names[0]): the API server refused the service account"))
            #expect(!refused.stderr.contains("driver-token"))
            try await api.shutdown()
        }
    }
}
