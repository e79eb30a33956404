import SecretsStoreCommandLine
import Foundation
import KeyVaultEmulator
import Logging
import SecretsStoreCore
import Testing

/// `render` with the fields of issue 24 (selectors, JSON fields, templates): the dry run checks them and plans
/// their files; a fetch against the Key Vault emulator shows what a pod would get, values only with
/// `--show-values`.
@Suite("render: selectors, JSON fields and templates", .serialized, .timeLimit(.minutes(3)))
struct RenderSelectAndTemplateTests {
    static let selectExample = RenderEndToEndTests.root + "/examples/secretproviderclass-select.yaml"
    static let templateExample = RenderEndToEndTests.root + "/examples/secretproviderclass-template.yaml"
    let logger = Logger(label: "render-select-template")

    /// The start of an `azure` class of the demo's vault and identity, up to `objects: |` and `array:`: the
    /// caller's text goes on with the entries, indented as the class's other parameters are.
    static func azureClass(named name: String) -> String {
        """
        apiVersion: secrets-store.csi.x-k8s.io/v1
        kind: SecretProviderClass
        metadata: {name: \(name), namespace: default}
        spec:
          provider: azure
          parameters:
            clientID: "5f8b6a9e-demo-workload"
            keyvaultName: kv1
            tenantId: 72f988bf-86f1-41af-91ab-2d7cd011db47
            objects: |
              array:

        """
    }

    func render(_ manifest: String, options: RenderOptions, environment: RenderEnvironment) async -> RenderOutcome {
        await Render.run(manifest: manifest, source: "spc.yaml", options: options, environment: environment, logger: logger)
    }

    @Test("the selecting example writes each enabled match and the JSON fields; values only with --show-values")
    func selectExampleFetches() async throws {
        let (emulator, _) = try await RenderEndToEndTests.emulator()
        let environment = RenderEnvironment(builtInAzure: RenderEndToEndTests.azure(emulator), providerDirectories: [])
        let manifest = try String(contentsOfFile: Self.selectExample, encoding: .utf8)

        let outcome = await render(manifest, options: RenderEndToEndTests.options(), environment: environment)
        #expect(outcome.exitCode == 0, "\(outcome.text())")
        let report = try #require(outcome.reports.first)
        // ^feature- with env=prod: checkout and search; beta is env=dev, legacy is disabled.
        #expect(report.files.map(\.path).sorted() == ["db-pass", "feature-checkout", "feature-search", "host", "username"])
        #expect(report.files.first { $0.path == "feature-checkout" }?.mode == "0440")
        #expect(report.files.first { $0.path == "username" }?.mode == "0644")
        #expect(Set(report.objects.map(\.id)) == ["secret/feature-checkout", "secret/feature-search", "secret/db-creds"])
        for text in [outcome.text(), outcome.json()] {
            #expect(!text.contains("app-db-password"))
            #expect(!text.contains("db.internal"))
        }

        let shown = await render(manifest, options: RenderEndToEndTests.options(showValues: true), environment: environment)
        let files = try #require(shown.reports.first?.files)
        #expect(files.first { $0.path == "db-pass" }?.value == "app-db-password")
        #expect(files.first { $0.path == "feature-search" }?.value == "off")
    }

    @Test("the template example composes a file and Secret keys; the outputs only with --show-values")
    func templateExampleFetches() async throws {
        let (emulator, _) = try await RenderEndToEndTests.emulator()
        let environment = RenderEnvironment(builtInAzure: RenderEndToEndTests.azure(emulator), providerDirectories: [])
        let manifest = try String(contentsOfFile: Self.templateExample, encoding: .utf8)
        let url = "postgres://app:app-db-password@db.internal:5432/app"

        let outcome = await render(manifest, options: RenderEndToEndTests.options(), environment: environment)
        #expect(outcome.exitCode == 0, "\(outcome.text())")
        let report = try #require(outcome.reports.first)
        let composed = try #require(report.files.first { $0.path == "database.env" })
        #expect(composed.source == "fileTemplates" && composed.mode == "0644")
        #expect(composed.size == "DATABASE_URL=\(url)\n".utf8.count)
        #expect(report.secretObjects.first?.data["DATABASE_URL"] == "template: username, db-pass, host")
        #expect(report.secretObjectValues == nil)
        for text in [outcome.text(), outcome.json()] {
            #expect(!text.contains("app-db-password"))
            #expect(!text.contains(url))
        }

        let shown = await render(manifest, options: RenderEndToEndTests.options(showValues: true), environment: environment)
        let shownReport = try #require(shown.reports.first)
        #expect(shownReport.files.first { $0.path == "database.env" }?.value == "DATABASE_URL=\(url)\n")
        #expect(shownReport.secretObjectValues?["db"]?["DATABASE_URL"] == url)
        #expect(shownReport.secretObjectValues?["db"]?["DATABASE_USER"] == "APP")
        #expect(shown.text().contains("--- Secret db key DATABASE_URL (template)"))
    }

    @Test("a template naming a file the vault does not give fails the fetch, naming the key and the file")
    func unknownFileAtFetch() async throws {
        let (emulator, _) = try await RenderEndToEndTests.emulator()
        let environment = RenderEnvironment(builtInAzure: RenderEndToEndTests.azure(emulator), providerDirectories: [])
        // With a selector, a name outside the plan may be a match: the dry run lets it through, the fetch decides.
        let manifest = try String(contentsOfFile: Self.selectExample, encoding: .utf8) + """
              secretObjects:
                - secretName: flags
                  type: Opaque
                  data:
                    - key: checkout
                      template: "{{feature-checkout}}/{{feature-nonexistent}}"
            """
        var dryRun = RenderEndToEndTests.options()
        dryRun.dryRun = true
        let planned = await render(manifest, options: dryRun, environment: environment)
        #expect(planned.exitCode == 0, "\(planned.text())")

        let fetched = await render(manifest, options: RenderEndToEndTests.options(), environment: environment)
        #expect(fetched.exitCode == 1)
        let problems = try #require(fetched.reports.first?.problems)
        #expect(problems.map(\.field) == ["spec.secretObjects[flags].data[checkout]"])
        #expect(problems.first?.message.contains("feature-nonexistent") == true)
        #expect(!fetched.text().contains("\"on\"") && !fetched.json().contains("app-db-password"))
    }

    @Test("a dry run lists every mistake in selectors, JSON fields and templates, each at its field, no value")
    func dryRunListsEveryMistake() async throws {
        let manifest = Self.azureClass(named: "broken") + """
                    - |
                      objectType: secret
                      objectNameRegex: "^db-("
                    - |
                      objectType: secret
                      objectTags: "env"
                    - |
                      objectType: secret
                      objectNameRegex: "^app-"
                      objectAlias: app
                    - |
                      objectName: db-creds
                      objectType: secret
                      objectJSONFields: "user..name"
                    - |
                      objectName: api-key
                      objectType: secret
                fileTemplates: |
                  dsn: "postgres://{{api-key}:s3cr3t-literal"
              secretObjects:
                - secretName: app
                  type: Opaque
                  data:
                    - key: both
                      objectName: api-key
                      template: "{{api-key}}"
                    - key: neither
                    - key: unknown
                      template: "{{nowhere}}"
            """
        var options = RenderOptions()
        options.dryRun = true
        let outcome = await render(manifest, options: options, environment: RenderEnvironment(providerDirectories: []))
        #expect(outcome.exitCode == 1)
        let report = try #require(outcome.reports.first)
        let fields = Set(report.problems.map(\.field))
        for expected in [
            "spec.parameters.objects[0]", "spec.parameters.objects[1]", "spec.parameters.objects[2]", "spec.parameters.objects[3]",
            "spec.parameters.fileTemplates[dsn]", "spec.secretObjects[0].data[0]", "spec.secretObjects[0].data[1].objectName",
        ] {
            #expect(fields.contains(expected), "\(expected) not in \(fields.sorted())")
        }
        // A selector makes the files unknown until the vault is listed; without one, unknown names are problems.
        #expect(!outcome.text().contains("s3cr3t-literal"))
    }

    @Test("without a selector, a template naming a file the class does not write is a dry-run problem")
    func unknownFileInDryRun() async throws {
        let manifest = Self.azureClass(named: "unknown") + """
                    - |
                      objectName: db-creds
                      objectType: secret
                      objectJSONFields: "username,password:db-pass"
                fileTemplates: |
                  dsn: "{{username}}:{{password}}"
              secretObjects:
                - secretName: app
                  type: Opaque
                  data:
                    - key: dsn
                      objectName: dsn
                    - key: url
                      template: "{{db-creds}}"
            """
        var options = RenderOptions()
        options.dryRun = true
        let outcome = await render(manifest, options: options, environment: RenderEnvironment(providerDirectories: []))
        #expect(outcome.exitCode == 1)
        let problems = try #require(outcome.reports.first?.problems)
        // `password` is written as db-pass; the whole db-creds is not written (no objectAlias); dsn is composed.
        #expect(problems.map(\.field).sorted() == ["spec.parameters.fileTemplates[dsn]", "spec.secretObjects[app].data[url]"])
        #expect(problems.contains { $0.message.contains("password") })
        #expect(problems.contains { $0.message.contains("db-creds") })
    }
}
