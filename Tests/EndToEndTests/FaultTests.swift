import CSIProtocol
import GRPCCore
import KeyVaultEmulator
import SecretsStoreAzure
import SecretsStoreCore
import SecretsStoreCoreTesting
import SecretsStoreLinux
import SecretsStoreTesting
import Testing

/// Every failure kubelet can meet on NodePublishVolume, through the whole driver: the gRPC code it gets (final
/// or "try again"), no mount and no file left at the target, no pod status recorded, and a log line that names
/// the cause. Deterministic: faults are injected, never timed.
@Suite("Faults: the right code, nothing left behind, a log line that names the cause", .serialized, .timeLimit(.minutes(3)))
struct FaultTests {
    /// Publishes `request` (the harness's default when nil), expects `code` and a message containing `message`
    /// (not checked when nil), and checks what the failure left.
    static func expectFault(
        _ driver: DriverHarness,
        _ request: Csi_V1_NodePublishVolumeRequest? = nil,
        code: RPCError.Code,
        message: String?,
        logged: String,
        timeout: Duration? = nil,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        var options = CallOptions.defaults
        options.timeout = timeout
        let request = request ?? driver.publishRequest()
        do {
            _ = try await driver.node.nodePublishVolume(request, options: options)
            Issue.record("publish succeeded", sourceLocation: sourceLocation)
        } catch let error as RPCError {
            #expect(error.code == code, sourceLocation: sourceLocation)
            if let message {
                #expect(error.message.contains(message), "\(error.message)", sourceLocation: sourceLocation)
            }
        }
        // After a client-side deadline the server finishes its compensation on its own; wait for the log line
        // that marks the end of the attempt rather than for a fixed time.
        try await eventually("a 'publish failed' log line") { driver.logs.all.contains { $0.contains("publish failed") } }
        let line = try #require(driver.logs.all.first { $0.contains("publish failed") }, sourceLocation: sourceLocation)
        #expect(line.contains(logged), "\(line)", sourceLocation: sourceLocation)
        let target = request.targetPath
        #expect(try await !driver.isMounted(target), "stray mount at the target", sourceLocation: sourceLocation)
        let fileSystem = PosixFileSystem()
        if try fileSystem.kind(of: target) != nil {
            #expect(try fileSystem.contentsOfDirectory(at: target).isEmpty, "stray files", sourceLocation: sourceLocation)
        }
        #expect(driver.api.object(at: DriverHarness.statusPath + "/web-0-ns-spc") == nil, "pod status recorded", sourceLocation: sourceLocation)
    }

    // MARK: Provider faults

    @Test func providerSocketMissing() async throws {
        try await withDriver { driver in
            driver.seedSecretProviderClass(provider: "vault")
            try await Self.expectFault(
                driver,
                code: .failedPrecondition,
                message: "error connecting to provider \"vault\": provider not found",
                logged: "provider not found"
            )
        }
    }

    @Test func providerHangingPastTheDeadline() async throws {
        try await withDriver(providerBehaviour: .hang) { driver in
            driver.seedSecretProviderClass()
            try await Self.expectFault(
                driver,
                code: .deadlineExceeded,
                message: nil,  // the client's own deadline: grpc-swift words it
                logged: "deadline",
                // Long enough for the publish to reach the provider on a loaded 2-core machine running every
                // suite at once (the SPC read and the mount come first); the provider then hangs past it.
                timeout: .seconds(4)
            )
            #expect(driver.provider.requests.count == 1)
        }
    }

    @Test func providerReturningATraversalPath() async throws {
        let answer = TestProviderServer.response(files: [("ok", "x"), ("../../etc/passwd", "root::0:0::/:/bin/sh")])
        try await withDriver(providerBehaviour: .respond(answer)) { driver in
            driver.seedSecretProviderClass()
            try await Self.expectFault(driver, code: .failedPrecondition, message: "../../etc/passwd", logged: "../../etc/passwd")
            #expect(try PosixFileSystem().kind(of: driver.root + "/pods/uid-1/volumes/etc/passwd") == nil)
        }
    }

    @Test("a provider answer of 5 MiB, over the default 4 MiB receive limit")
    func providerReturningFiveMebibytes() async throws {
        let big = String(repeating: "x", count: 5 << 20)
        try await withDriver(providerBehaviour: .respond(TestProviderServer.response(files: [("big", big)]))) { driver in
            driver.seedSecretProviderClass()
            try await Self.expectFault(
                driver,
                code: .failedPrecondition,
                message: "--max-call-recv-msg-size",
                logged: "--max-call-recv-msg-size"
            )
        }
    }

    @Test("a tmpfs that fills up (size option): INTERNAL naming the disk, the half-written volume unmounted",
          .enabled(if: runningAsRoot, "needs real tmpfs mounts"))
    func diskFull() async throws {
        let big = String(repeating: "z", count: 256 * 1024)
        try await withDriver(
            tmpfsOptions: "size=64k,mode=0755",
            providerBehaviour: .respond(TestProviderServer.response(files: [("small", "s"), ("big", big)]))
        ) { driver in
            driver.seedSecretProviderClass()
            try await Self.expectFault(driver, code: .internalError, message: "No space left on device", logged: "No space left on device")
        }
    }

    // MARK: Key Vault and Entra ID faults (built-in Azure provider against the emulator)

    static let tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"

    /// The driver with the built-in Azure provider reading `kv1` (secret `s1`) through the emulator, with an SPC
    /// named `spc` that authenticates with the service principal from nodePublishSecretRef.
    static func withAzureDriver(_ body: (DriverHarness, KeyVaultEmulator) async throws -> Void) async throws {
        let seed = EmulatorSeed(
            tenantID: tenant,
            clients: [.init(clientID: "sp", secret: "SP-SECRET-SENTINEL")],
            vaults: ["kv1": .init(secrets: ["s1": [.init(value: "VALUE-SENTINEL")]])]
        )
        try await withKeyVaultEmulator(seed: seed) { emulator, http in
            try await withDriver(builtIn: ["azure": emulator.azureProvider(http: http)]) { driver in
                driver.seedSecretProviderClass(
                    provider: "azure",
                    parameters: ["keyvaultName": "kv1", "tenantId": tenant, "objects": "array:\n  - |\n    objectName: s1\n    objectType: secret\n"]
                )
                try await body(driver, emulator)
            }
        }
    }

    static func servicePrincipal(_ driver: DriverHarness, secret: String = "SP-SECRET-SENTINEL", client: String = "sp") -> Csi_V1_NodePublishVolumeRequest {
        driver.publishRequest(secrets: ["clientid": client, "clientsecret": secret])
    }

    @Test("a Key Vault 429 storm: RESOURCE_EXHAUSTED within the deadline, no stray mount")
    func keyVaultThrottlingStorm() async throws {
        try await Self.withAzureDriver { driver, emulator in
            var faults = KeyVaultEmulator.Faults()
            faults.throttleLimit = 0
            faults.retryAfterSeconds = 30
            emulator.setFaults(faults)
            try await Self.expectFault(
                driver,
                Self.servicePrincipal(driver),
                code: .resourceExhausted,
                message: "429",
                logged: "429",
                timeout: .seconds(5)
            )
            #expect(emulator.keyVaultRequestCount >= 1)
        }
    }

    @Test("Key Vault answering 5xx until the deadline: a retryable code, no stray mount")
    func keyVaultServerErrors() async throws {
        try await Self.withAzureDriver { driver, emulator in
            var faults = KeyVaultEmulator.Faults()
            faults.failNext = (status: 503, count: 1000)
            emulator.setFaults(faults)
            try await Self.expectFault(
                driver,
                Self.servicePrincipal(driver),
                code: .unavailable,
                message: "503",
                logged: "503",
                timeout: .seconds(3)
            )
            #expect(emulator.keyVaultRequestCount >= 2, "5xx is retried")
        }
    }

    @Test("Entra ID refusing the client secret or the application: PERMISSION_DENIED with the AADSTS code")
    func entraErrors() async throws {
        try await Self.withAzureDriver { driver, emulator in
            try await Self.expectFault(
                driver,
                Self.servicePrincipal(driver, secret: "WRONG-SECRET-SENTINEL"),
                code: .permissionDenied,
                message: "AADSTS7000215",
                logged: "AADSTS7000215"
            )
            #expect(emulator.keyVaultRequestCount == 0)
        }
        try await Self.withAzureDriver { driver, _ in
            try await Self.expectFault(
                driver,
                Self.servicePrincipal(driver, client: "nobody"),
                code: .permissionDenied,
                message: "AADSTS700016",
                logged: "AADSTS700016"
            )
            for line in driver.logs.all { #expect(!line.contains("SECRET-SENTINEL")) }
        }
    }

    // MARK: Kubernetes API faults

    @Test("the API server answering 500 while the SecretProviderClass is read: UNAVAILABLE")
    func kubernetesServerError() async throws {
        try await withDriver { driver in
            driver.seedSecretProviderClass()
            driver.api.injectFailure(status: 500, forPathContaining: "secretproviderclasses/spc")
            try await Self.expectFault(driver, code: .unavailable, message: "HTTP 500", logged: "HTTP 500")
            #expect(driver.provider.requests.isEmpty)
        }
    }

    @Test("conflicts on the first writes of the pod status: the publish answers, the write is retried until it lands")
    func kubernetesConflict() async throws {
        try await withDriver { driver in
            driver.seedSecretProviderClass()
            for _ in 0..<3 { driver.api.injectFailure(status: 409, forPathContaining: "secretproviderclasspodstatuses") }
            _ = try await driver.node.nodePublishVolume(driver.publishRequest())
            #expect(try await driver.isMounted(driver.targetPath()))
            #expect(driver.provider.requests.count == 1)
            let status = try #require(try await driver.podStatus("web-0-ns-spc"))
            #expect((status["status"] as? [String: Any])?["mounted"] as? Bool == true)
            let retries = driver.logs.all.filter { $0.contains("failed to write pod status; retrying") }
            #expect(retries.first?.contains("conflict") == true, "\(retries)")
            // The line follows the write that landed; it may come a moment after the fake server has the object.
            try await eventually("the 'pod status written after retries' line") {
                driver.logs.all.contains { $0.contains("pod status written after retries") }
            }
        }
    }

    @Test("the API server unreachable: UNAVAILABLE, nothing mounted")
    func kubernetesUnreachable() async throws {
        try await withDriver { driver in
            driver.seedSecretProviderClass()
            try await driver.api.shutdown()
            try await Self.expectFault(driver, code: .unavailable, message: "kubernetes API unavailable", logged: "kubernetes API unavailable")
            #expect(driver.provider.requests.isEmpty)
        }
    }
}
