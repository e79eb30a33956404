import GRPCCore
import KeyVaultEmulator
import Logging
import SecretsStoreAzure
import SecretsStoreCSI
import SecretsStoreCore
import Testing

/// How Key Vault's statuses become provider failures: 400 is the request's fault (INVALID_ARGUMENT), never a
/// permission problem.
@Suite("Key Vault statuses against the emulator", .serialized, .timeLimit(.minutes(3)))
struct KeyVaultStatusTests {
    static func objects(name: String, version: String? = nil) -> String {
        "array:\n  - |\n    objectName: \(name)\n    objectType: secret\n" + (version.map { "    objectVersion: \($0)\n" } ?? "")
    }

    @Test(
        "400 BadParameter for an invalid name or version is .rejected with Key Vault's code and message, not retried",
        arguments: [
            ("db_pass", nil, "The request URI contains an invalid name: db_pass"),
            ("db-pass", "not-a-version", "The request URI contains an invalid version: not-a-version"),
        ] as [(String, String?, String)]
    )
    func badRequestIsRejected(name: String, version: String?, text: String) async throws {
        try await AzureHarness.withHarness { (harness: AzureHarness) async throws in
            let failure = await #expect(throws: ProviderFailure.self) {
                try await harness.fetch(harness.request(objects: Self.objects(name: name, version: version)))
            }
            guard case .rejected(let message) = failure else {
                Issue.record("expected .rejected, got \(String(describing: failure))")
                return
            }
            #expect(message.contains("RESPONSE 400"))
            #expect(message.contains("ERROR CODE: BadParameter"))
            #expect(message.contains(text))
            #expect(message.hasPrefix("failed to mount objects, error: failed to get objectType:secret, objectName:\(name), objectVersion:\(version ?? ""): "))
            // The request's own fault: one Key Vault request, no retry, and no token in the text.
            #expect(harness.emulator.keyVaultRequestCount == 1)
            #expect(!harness.emulator.issuedAccessTokens.contains { message.contains($0) })
            // The CSI layer answers INVALID_ARGUMENT, not PERMISSION_DENIED.
            #expect(RPCError.code(for: PublishError.provider(name: "azure", failure!)) == .invalidArgument)
        }
    }

    @Test("403 stays permission denied and 404 stays not found")
    func forbiddenAndNotFoundKeepTheirMapping() async throws {
        try await AzureHarness.withHarness { (harness: AzureHarness) async throws in
            let forbidden = await #expect(throws: ProviderFailure.self) {
                try await harness.fetch(harness.request(objects: Self.objects(name: "s"), vault: "locked"))
            }
            guard case .permissionDenied = forbidden else { Issue.record("got \(String(describing: forbidden))"); return }
            let missing = await #expect(throws: ProviderFailure.self) {
                try await harness.fetch(harness.request(objects: Self.objects(name: "db-pass", version: String(repeating: "0", count: 32))))
            }
            guard case .objectNotFound(let message) = missing else { Issue.record("got \(String(describing: missing))"); return }
            #expect(message.contains("SecretNotFound"))
        }
    }

    @Test("another 4xx (405) is .rejected too, never permission denied")
    func otherClientErrorsAreRejected() async throws {
        try await AzureHarness.withHarness { (harness: AzureHarness) async throws in
            var faults = KeyVaultEmulator.Faults()
            faults.failNext = (405, 1)
            harness.emulator.setFaults(faults)
            let failure = await #expect(throws: ProviderFailure.self) {
                try await harness.fetch(harness.request(objects: Self.objects(name: "db-pass")))
            }
            guard case .rejected(let message) = failure else { Issue.record("got \(String(describing: failure))"); return }
            #expect(message.contains("RESPONSE 405"))
            #expect(harness.emulator.keyVaultRequestCount == 1)
        }
    }
}
