import KeyVaultEmulator
import Logging
import SecretsStoreAzure
import SecretsStoreCore

import Foundation

/// The Azure provider pointed at a running emulator over HTTPS, trusting the emulator's CA.
struct AzureHarness {
    static let tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
    static let wiClient = "wi-app"
    static let spClient = "sp-app"
    static let subject = "system:serviceaccount:ns:workload"

    let emulator: KeyVaultEmulator
    let provider: AzureKeyVaultProvider
    let http: AzureHTTP
    let chain: TestCertificateChain
    let signingJWK: [String: String]

    static func serviceAccountToken(subject: String = subject, expiresIn: TimeInterval = 3600) -> String {
        ServiceAccountToken.make(subject: subject, expiresIn: expiresIn)
    }

    static func tokensJSON(_ token: String) -> String {
        ServiceAccountToken.volumeContextValue(token)
    }

    /// The seed behind the reference's worked example (§4.8) plus objects for error paths.
    static func seed(chain: TestCertificateChain, rsa: [String: String]) throws -> EmulatorSeed {
        let pfx = try chain.pkcs12Base64(certificates: [chain.leaf, chain.root, chain.intermediate])
        return EmulatorSeed(
            tenantID: tenant,
            clients: [
                .init(clientID: wiClient, secret: nil, federated: [.init(subject: subject, audience: "api://AzureADTokenExchange", issuer: nil)]),
                .init(clientID: spClient, secret: "sp-secret-value", federated: nil),
            ],
            managedIdentities: ["system", "uami-1"],
            vaults: [
                "kv1": .init(
                    secrets: [
                        "db-pass": [.init(value: "s3cr3t-db-password")],
                        "api-key": [.init(value: "key-v1"), .init(value: "key-v2"), .init(value: "key-v3")],
                        "encoded": [.init(value: "aGVsbG8=")],
                        "hexed": [.init(value: "68656c6c6f")],
                    ],
                    keys: ["signing": [.init(jwk: rsa, enabled: true)]],
                    certificates: ["web": [.init(pkcs12: pfx, pem: nil, enabled: true)]],
                    allowedClients: nil
                ),
                "locked": .init(secrets: ["s": [.init(value: "x")]], keys: nil, certificates: nil, allowedClients: ["someone-else"]),
            ]
        )
    }

    /// The harness over ``seed(chain:rsa:)``, changed by `adjustSeed`, with the provider's two file-layout flags
    /// as given (upstream's defaults unless a test says otherwise).
    static func withHarness(
        constructPEMChain: Bool = true,
        writeCertAndKeyInSeparateFiles: Bool = false,
        adjustSeed: (inout EmulatorSeed, TestCertificateChain) throws -> Void = { _, _ in },
        _ body: (AzureHarness) async throws -> Void
    ) async throws {
        let chain = try TestCertificateChain.make()
        let rsa = try TestRSAKey.jwk()
        var emulatorSeed = try seed(chain: chain, rsa: rsa)
        try adjustSeed(&emulatorSeed, chain)
        let emulator = try await KeyVaultEmulator(seed: emulatorSeed)
        let overrides = AzureEndpointOverrides(
            keyVaultURLTemplate: emulator.baseURL + "/{vault}",
            authorityHost: emulator.baseURL + "/",
            imdsEndpoint: emulator.baseURL,
            caBundlePEM: Array(emulator.certificates.caCertificatePEM.utf8),
            constructPEMChain: constructPEMChain,
            writeCertAndKeyInSeparateFiles: writeCertAndKeyInSeparateFiles
        )
        let http = try AzureHTTP(extraCABundlePEM: overrides.caBundlePEM)
        let harness = AzureHarness(
            emulator: emulator,
            provider: AzureKeyVaultProvider(http: http, overrides: overrides),
            http: http,
            chain: chain,
            signingJWK: rsa
        )
        do {
            try await body(harness)
        } catch {
            try? await http.shutdown()
            try? await emulator.shutdown()
            throw error
        }
        try await http.shutdown()
        try await emulator.shutdown()
    }

    static let workedExampleObjects = WorkedExample.objects

    func request(
        objects: String = AzureHarness.workedExampleObjects,
        vault: String = "kv1",
        extra: [String: String] = [:],
        secrets: [String: String] = [:],
        deadline: ContinuousClock.Instant? = nil
    ) -> ProviderRequest {
        var attributes = [
            "keyvaultName": vault, "tenantID": Self.tenant, "objects": objects, "clientID": Self.wiClient,
            "csi.storage.k8s.io/pod.name": "web-0", "csi.storage.k8s.io/pod.namespace": "ns",
            "csi.storage.k8s.io/serviceAccount.tokens": Self.tokensJSON(Self.serviceAccountToken()),
        ]
        attributes.merge(extra) { _, new in new }
        return ProviderRequest(
            attributes: attributes,
            secrets: secrets,
            targetPath: "/t",
            currentObjectVersions: [],
            deadline: deadline
        )
    }

    func fetch(_ request: ProviderRequest) async throws(ProviderFailure) -> ProviderResponse {
        try await provider.fetch(request, logger: Logger(label: "test"))
    }
}
