import SecretsStoreCommandLine
import Foundation
import Logging
import SecretsStoreCore
import SecretsStoreCoreTesting
import SecretsStoreApplication
import Testing

/// The repository root, from this file's path.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

/// `render --dry-run`: the checks (schema, driver, built-in Azure provider, credential rule) and the plan,
/// offline.
@Suite("render --dry-run", .timeLimit(.minutes(3)))
struct RenderDryRunTests {
    let logger = Logger(label: "render-test")

    func dryRun(
        _ manifest: String,
        namespace: String? = nil,
        azure: DriverConfiguration.BuiltInAzure = .init(),
        secrets: [String: String]? = nil
    ) async -> RenderOutcome {
        var options = RenderOptions()
        options.dryRun = true
        options.namespace = namespace
        options.secrets = secrets
        return await Render.run(
            manifest: manifest,
            source: "spc.yaml",
            options: options,
            environment: RenderEnvironment(builtInAzure: azure, providerDirectories: []),
            logger: logger
        )
    }

    // MARK: Valid classes

    @Test("every SecretProviderClass in examples/ is valid, with the files the provider writes")
    func examplesAreValid() async throws {
        let directory = repositoryRoot + "/examples"
        let names = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".yaml") }.sorted()
        var rendered = 0
        for name in names {
            let text = try String(contentsOfFile: directory + "/" + name, encoding: .utf8)
            guard text.contains("kind: SecretProviderClass") else { continue }
            rendered += 1
            let outcome = await dryRun(text)
            #expect(outcome.exitCode == 0, "\(name): \(outcome.text())")
            #expect(!outcome.reports.isEmpty && outcome.reports.allSatisfy { $0.problems.isEmpty && !$0.files.isEmpty })
        }
        #expect(rendered >= 1)

        let demo = await dryRun(try String(contentsOfFile: directory + "/secretproviderclass.yaml", encoding: .utf8))
        let report = try #require(demo.reports.first)
        #expect(report.files.map(\.path) == ["DB_PASSWORD", "web", "tls.crt", "signing", "api-key/0", "api-key/1"])
        #expect(report.files.map(\.source) == ["secret/db-pass", "secret/web", "cert/web", "key/signing", "secret/api-key/0", "secret/api-key/1"])
        #expect(report.files.allSatisfy { $0.mode == "0644" && $0.size == nil && $0.value == nil })
        #expect(report.files[5].condition != nil && report.files[0].condition == nil)
        #expect(report.objects.map(\.id) == ["secret/db-pass", "secret/web", "cert/web", "key/signing", "secret/api-key"])
        #expect(report.objects.map(\.version) == Array(repeating: "latest", count: 5))
        #expect(report.identity?.hasPrefix("workload identity, clientID 5f8b6a9e-demo-workload") == true)
        #expect(report.secretObjects == [.init(name: "app-db", type: "Opaque", data: ["password": "DB_PASSWORD"])])
        #expect(report.secretProviderClass == .init(namespace: "default", name: "azure-kvname-wi", provider: "azure"))
        let text = demo.text()
        #expect(text.contains("spc.yaml: SecretProviderClass default/azure-kvname-wi (provider azure): valid"))
        #expect(text.contains("0644  api-key/1"))
    }

    /// SecretProviderClasses in the shapes of the upstream documentation and of the other suites.
    static let upstreamShaped: [(String, String)] = [
        (
            "service principal (nodePublishSecretRef), upstream quickstart",
            """
            apiVersion: secrets-store.csi.x-k8s.io/v1
            kind: SecretProviderClass
            metadata:
              name: azure-kvname
            spec:
              provider: azure
              parameters:
                usePodIdentity: "false"
                keyvaultName: "kvname"
                cloudName: ""
                objects:  |
                  array:
                    - |
                      objectName: secret1
                      objectType: secret
                      objectVersion: ""
                    - |
                      objectName: key1
                      objectType: key
                      objectVersion: ""
                tenantId: "tid"
            """
        ),
        (
            "user-assigned managed identity",
            """
            apiVersion: secrets-store.csi.x-k8s.io/v1
            kind: SecretProviderClass
            metadata:
              name: azure-kvname-user-msi
            spec:
              provider: azure
              parameters:
                usePodIdentity: "false"
                useVMManagedIdentity: "true"
                userAssignedIdentityID: "00000000-0000-0000-0000-000000000000"
                keyvaultName: kvname
                cloudName: ""
                objects: |
                  array:
                    - |
                      objectName: secret1
                      objectType: secret
                      objectVersion: ""
                tenantId: "11111111-1111-1111-1111-111111111111"
            """
        ),
        (
            "workload identity with a synced TLS Secret, the chart test's example",
            """
            apiVersion: secrets-store.csi.x-k8s.io/v1
            kind: SecretProviderClass
            metadata: {name: azure-tls, namespace: apps}
            spec:
              provider: azure
              secretObjects:
                - secretName: ingress-tls-csi
                  type: kubernetes.io/tls
                  data:
                    - objectName: ingresscert
                      key: tls.key
                    - objectName: ingresscert
                      key: tls.crt
                - secretName: foosecret
                  type: Opaque
                  labels: {environment: test}
                  data:
                    - objectName: secret1
                      key: username
              parameters:
                usePodIdentity: "false"
                clientID: "00000000-0000-0000-0000-000000000000"
                keyvaultName: kvname
                objects: |
                  array:
                    - |
                      objectName: ingresscert
                      objectType: secret
                    - |
                      objectName: secret1
                      objectType: secret
                      filePermission: "0600"
                tenantId: "11111111-1111-1111-1111-111111111111"
            """
        ),
        (
            "v1alpha1, still served",
            """
            apiVersion: secrets-store.csi.x-k8s.io/v1alpha1
            kind: SecretProviderClass
            metadata: {name: old}
            spec:
              provider: azure
              parameters: {keyvaultName: kv1, tenantID: t, clientID: app, objects: "array:\\n  - |\\n    objectName: a\\n    objectType: secret\\n"}
            """
        ),
        (
            "a socket provider, as the end-to-end harness seeds it",
            """
            {"apiVersion": "secrets-store.csi.x-k8s.io/v1", "kind": "SecretProviderClass",
             "metadata": {"name": "spc", "namespace": "ns"},
             "spec": {"provider": "test", "parameters": {"keyvaultName": "kv", "objects": "array: []"}}}
            """
        ),
        (
            "the GCP and Vault providers' parameter names",
            """
            apiVersion: secrets-store.csi.x-k8s.io/v1
            kind: SecretProviderClass
            metadata: {name: others}
            spec:
              provider: vault
              parameters:
                roleName: app
                vaultAddress: https://vault.example:8200
                vaultTLSClientKeyPath: /etc/vault/client.key
                secrets: |
                  - resourceName: projects/p/secrets/s/versions/latest
                    path: s.txt
                objects: |
                  - objectName: password
                    secretPath: secret/data/db
                    secretKey: password
            """
        ),
    ]

    @Test("upstream-shaped classes are valid", arguments: upstreamShaped.indices)
    func upstreamShapedAreValid(index: Int) async {
        let (name, manifest) = Self.upstreamShaped[index]
        let outcome = await dryRun(manifest)
        #expect(outcome.exitCode == 0, "\(name): \(outcome.text())")
    }

    @Test("identity, a deprecated apiVersion and a socket provider are described")
    func describes() async throws {
        let sp = try #require(await dryRun(Self.upstreamShaped[0].1).reports.first)
        #expect(sp.identity?.hasPrefix("service principal: clientid and clientsecret from the pod's nodePublishSecretRef Secret") == true)
        #expect(sp.files.map(\.path) == ["secret1", "key1"])
        let msi = try #require(await dryRun(Self.upstreamShaped[1].1).reports.first)
        #expect(msi.identity?.hasPrefix("managed identity, user-assigned 00000000-0000-0000-0000-000000000000") == true)
        let tls = try #require(await dryRun(Self.upstreamShaped[2].1).reports.first)
        #expect(tls.files.map(\.mode) == ["0644", "0600"])
        #expect(tls.secretProviderClass?.namespace == "apps")
        let old = try #require(await dryRun(Self.upstreamShaped[3].1).reports.first)
        #expect(old.notes.contains { $0.contains("v1alpha1 is deprecated") })
        let socket = try #require(await dryRun(Self.upstreamShaped[4].1).reports.first)
        #expect(socket.files.isEmpty && socket.notes.contains { $0.contains("test.sock") })
    }

    // MARK: Invalid classes: every problem

    @Test("a broken class lists every problem, not just the first")
    func everySchemaProblem() async throws {
        let outcome = await dryRun(
            """
            apiVersion: secrets-store.csi.x-k8s.io/v2
            kind: SecretProviderClass
            metadata:
              name: Bad_Name
              namespace: team-a
            spec:
              parameter: {}
              parameters: {}
              refreshInterval: 1s
              sync:
                refreshInterval: soon
              secretObjects:
                - secretName: s1
                  data: []
                - secretName: s1
                  type: kubernetes.io/tls
                  data:
                    - {objectName: cert, key: ca.crt}
                    - {objectName: "", key: "bad key"}
            """,
            namespace: "team-b"
        )
        #expect(outcome.exitCode == 1)
        let report = try #require(outcome.reports.first)
        let fields = report.problems.map(\.field)
        for expected in [
            "apiVersion", "metadata.name", "metadata.namespace", "spec.parameter", "spec.provider", "spec.parameters",
            "spec.refreshInterval", "spec.sync.serviceAccountName", "spec.sync.refreshInterval",
            "spec.secretObjects[0].type", "spec.secretObjects[0].data", "spec.secretObjects[1].secretName",
            "spec.secretObjects[1].data[0].key", "spec.secretObjects[1].data[1].objectName", "spec.secretObjects[1].data[1].key",
        ] {
            #expect(fields.contains(expected), "missing \(expected) in \(fields)")
        }
        #expect(report.problems.first { $0.field == "spec.refreshInterval" }?.message.contains("shorter than the least interval, 5s") == true)
        #expect(report.problems.first { $0.field == "metadata.namespace" }?.message.contains("differs from --namespace team-b") == true)
        let text = outcome.text()
        #expect(text.contains("invalid, \(report.problems.count) problems"))
        #expect(text.contains("  - spec.provider: is required"))
    }

    @Test("an Azure class with many mistakes lists each, through the provider's own parser")
    func everyAzureProblem() async throws {
        let outcome = await dryRun(
            """
            apiVersion: secrets-store.csi.x-k8s.io/v1
            kind: SecretProviderClass
            metadata: {name: azure-broken}
            spec:
              provider: azure
              parameters:
                usePodIdentity: false
                useVMManagedIdentity: "maybe"
                keyvaultName: "a"
                cloudName: "Mars"
                objects: |
                  array:
                    - |
                      objectName: db-pass
                      objectType: secrets
                    - |
                      objectName: web
                      objectType: cert
                      filePermission: "999"
                    - |
                      objectName: ok
                      objectType: secret
                      objectAlias: OK
                    - |
                      objectName: other
                      objectType: secret
                      objectAlias: OK
              secretObjects:
                - secretName: app
                  type: Opaque
                  data:
                    - {objectName: ok, key: a}
                    - {objectName: missing, key: b}
            """
        )
        #expect(outcome.exitCode == 1)
        let report = try #require(outcome.reports.first)
        let text = report.problems.map(\.description)
        func has(_ field: String, _ fragment: String) -> Bool {
            report.problems.contains { $0.field == field && $0.message.contains(fragment) }
        }
        #expect(has("spec.parameters.usePodIdentity", "must be a string, not a boolean: quote the value"), "\(text)")
        #expect(has("spec.parameters", "failed to parse useVMManagedIdentity flag"), "\(text)")
        #expect(has("spec.parameters.keyvaultName", "Invalid vault name: \"a\", must be between 3 and 24 chars"), "\(text)")
        #expect(has("spec.parameters.tenantID", "tenantId is not provided"), "\(text)")
        #expect(has("spec.parameters.cloudName", "cloudName Mars is not valid"), "\(text)")
        #expect(has("spec.parameters.objects[0]", "Invalid vaultObjectTypes. Should be secret, key, or cert"), "\(text)")
        #expect(has("spec.parameters.objects[1]", "invalid filePermission: 999"), "\(text)")
        #expect(!report.problems.contains { $0.field == "spec.parameters.objects[2]" })
    }

    @Test("file name clashes and secretObjects references are checked against the planned files")
    func plannedFileProblems() async throws {
        let outcome = await dryRun(
            """
            apiVersion: secrets-store.csi.x-k8s.io/v1
            kind: SecretProviderClass
            metadata: {name: clashes}
            spec:
              provider: azure
              parameters:
                clientID: app
                keyvaultName: kv1
                tenantID: t
                objects: |
                  array:
                    - |
                      objectName: db-pass
                      objectType: secret
                      objectAlias: DB_PASSWORD
                    - |
                      objectName: other
                      objectType: secret
                      objectAlias: DB_PASSWORD
                    - |
                      objectName: api-key
                      objectType: secret
                      objectVersionHistory: 3
              secretObjects:
                - secretName: app
                  type: Opaque
                  data:
                    - {objectName: db-pass, key: a}
                    - {objectName: api-key, key: b}
                    - {objectName: nothing, key: c}
                    - {objectName: api-key/2, key: d}
            """
        )
        #expect(outcome.exitCode == 1)
        let report = try #require(outcome.reports.first)
        let messages = report.problems.map(\.description)
        #expect(messages.contains { $0.contains("secret/db-pass and secret/other are both written to DB_PASSWORD") }, "\(messages)")
        #expect(messages.contains("spec.secretObjects[0].data[0].objectName: db-pass is written as DB_PASSWORD (its objectAlias): use DB_PASSWORD"))
        #expect(messages.contains { $0.hasPrefix("spec.secretObjects[0].data[1].objectName: api-key keeps 3 versions") })
        #expect(messages.contains { $0.hasPrefix("spec.secretObjects[0].data[2].objectName: no object of spec.parameters.objects is written as nothing") })
        #expect(!messages.contains { $0.hasPrefix("spec.secretObjects[0].data[3]") })
        #expect(report.files.map(\.path) == ["DB_PASSWORD", "DB_PASSWORD", "api-key/0", "api-key/1", "api-key/2"])
    }

    @Test("a socket provider's parameters are not checked against Azure's rules")
    func nonAzureSkipsReferences() async {
        let outcome = await dryRun(
            """
            apiVersion: secrets-store.csi.x-k8s.io/v1
            kind: SecretProviderClass
            metadata: {name: aws}
            spec:
              provider: aws
              parameters:
                objects: |
                  - objectName: "MySecret"
                    objectType: "secretsmanager"
              secretObjects:
                - secretName: s
                  type: Opaque
                  data: [{objectName: anything, key: k}]
            """
        )
        #expect(outcome.exitCode == 0, "\(outcome.text())")
    }

    @Test("a manifest with other documents renders its SecretProviderClass; no class, or no YAML, fails")
    func documents() async throws {
        let outcome = await dryRun(
            """
            apiVersion: apps/v1
            kind: Deployment
            metadata: {name: app}
            ---
            \(Self.upstreamShaped[0].1)
            """
        )
        #expect(outcome.exitCode == 0)
        #expect(outcome.reports.count == 1)
        #expect(outcome.reports[0].notes.contains("1 other document(s) of spc.yaml skipped"))

        let none = await dryRun("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Secret\n")
        #expect(none.exitCode == 1)
        #expect(none.text().contains("spc.yaml holds no SecretProviderClass"))

        let broken = await dryRun("spec:\n  provider: [azure\n")
        #expect(broken.exitCode == 1)
        #expect(broken.text().contains("invalid YAML at line"))

        let wrongKind = await dryRun("apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClassPodStatus\nmetadata: {name: a}\n")
        #expect(wrongKind.reports.first?.problems.map(\.description).contains("kind: \"SecretProviderClassPodStatus\" is not SecretProviderClass") == true)
    }

    @Test("the JSON report decodes, and holds no values without --show-values")
    func json() async throws {
        let outcome = await dryRun(try String(contentsOfFile: repositoryRoot + "/examples/secretproviderclass.yaml", encoding: .utf8))
        struct Document: Decodable {
            var valid: Bool
            var secretProviderClasses: [RenderReport]
        }
        let document = try JSONDecoder().decode(Document.self, from: Data(outcome.json().utf8))
        #expect(document.valid)
        #expect(document.secretProviderClasses == outcome.reports)
        #expect(!outcome.json().contains("\"value\""))
    }

    // MARK: Credentials

    /// A JWT-shaped token: header `{"alg":"RS256","typ":"JWT"}`.
    static let jwt = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZGVmYXVsdDphcHAifQ.c2lnbmF0dXJlLVNFTlRJTkVM"
    static let privateKey = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBSENTINELSENTINELSENTINELSENTINEL\n-----END EC PRIVATE KEY-----\n"

    @Test("a class holding a credential is refused; the message names the parameter, never the value")
    func refusesCredentials() async throws {
        let outcome = await dryRun(
            """
            apiVersion: secrets-store.csi.x-k8s.io/v1
            kind: SecretProviderClass
            metadata: {name: leaky}
            spec:
              provider: azure
              parameters:
                clientID: app
                clientSecret: "pa55-SENTINEL-secret"
                db_password: "hunter2-SENTINEL"
                keyvaultName: kv1
                tenantID: t
                bootstrap: "Bearer \(Self.jwt)"
                signingKey: "\(Self.privateKey.replacing("\n", with: "\\n"))"
                objects: |
                  array:
                    - |
                      objectName: a
                      objectType: secret
            """
        )
        #expect(outcome.exitCode == 1)
        let report = try #require(outcome.reports.first)
        let credentialProblems = report.problems.filter { $0.message.hasPrefix("holds a credential") }
        #expect(credentialProblems.map(\.field) == [
            "spec.parameters.bootstrap", "spec.parameters.clientSecret", "spec.parameters.db_password", "spec.parameters.signingKey",
        ])
        #expect(credentialProblems[0].message.contains("its value contains a JWT"))
        #expect(credentialProblems[1].message.contains("its name ends in \"secret\""))
        #expect(credentialProblems[2].message.contains("its name ends in \"password\""))
        #expect(credentialProblems[3].message.contains("its value contains a PEM private key"))
        for rendered in [outcome.text(), outcome.json()] {
            #expect(!rendered.contains("SENTINEL"))
            #expect(!rendered.contains("eyJhbGci"))
            #expect(!rendered.contains("hunter2"))
        }
    }

    @Test(
        "the credential rule: name endings and values",
        arguments: [
            ("clientSecret", "x", true), ("client_secret", "x", true), ("CLIENT-SECRET", "x", true), ("password", "x", true),
            ("dbPassword", "x", true), ("accessToken", "x", true), ("csi.storage.k8s.io/serviceAccount.tokens", "{}", true),
            ("storageAccountKey", "x", true), ("apiKey", "x", true), ("connectionString", "x", true),
            ("clientSecret", "", false), ("clientSecret", "  ", false),
            ("secretObjects", "x", false), ("keyvaultName", "kv1", false), ("secretName", "db", false), ("secrets", "- a", false),
            ("tokenPath", "/var/run/token", false), ("passwordFile", "/etc/p", false), ("usePodIdentity", "false", false),
            ("useAzureTokenProxy", "false", false), ("objects", "array: []", false), ("clientID", "5f8b6a9e", false),
            ("tenantID", "72f988bf-86f1-41af-91ab-2d7cd011db47", false),
            ("caCert", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", false),
            ("publicKey", "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n", false),
            ("anything", "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n", true),
            ("anything", "-----BEGIN RSA PRIVATE KEY-----", true), ("anything", "-----BEGIN OPENSSH PRIVATE KEY-----", true),
            ("anything", "-----BEGIN ENCRYPTED PRIVATE KEY-----", true),
            ("anything", RenderDryRunTests.jwt, true), ("anything", "token=\(RenderDryRunTests.jwt);", true),
            ("anything", "a.b.c", false), ("anything", "www.example.com", false), ("anything", "1.2.3", false),
            ("anything", "eyJmb28iOiJiYXIifQ.eyJzdWIiOiJ4In0.sig", false),  // JSON header without "alg"
        ]
    )
    func credentialRule(name: String, value: String, refused: Bool) {
        #expect((CredentialCheck.finding(name: name, value: value) != nil) == refused, "\(name)")
    }
}
