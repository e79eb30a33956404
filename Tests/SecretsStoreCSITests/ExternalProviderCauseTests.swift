import GRPCCore
import Logging
import SecretsStoreCSI
import SecretsStoreCore
import SecretsStoreCoreTesting
import Testing

/// ``ExternalProvider`` keeps the gRPC error behind an unreachable provider as the failure's ``ErrorCause``,
/// through its retries, and names it in the retry log line.
@Suite("External provider: the cause of UNAVAILABLE is kept", .timeLimit(.minutes(1)))
struct ExternalProviderCauseTests {
    @Test("a refused connection on the provider's socket is UNAVAILABLE caused by gRPC's UNAVAILABLE, after every attempt")
    func refusedConnectionKeepsItsCause() async throws {
        try await withTemporaryDirectory { root in
            let path = root + "/refusing.sock"
            try ExternalProviderRetryTests.leaveStaleSocket(at: path)
            let provider = ExternalProvider(
                name: "refusing",
                socketPath: path,
                maxReceiveMessageBytes: 1 << 20,
                retryPolicy: RetryPolicy(maxAttempts: 2, backoff: .doubling(first: .milliseconds(10)))
            )
            let logs = LogCapture()
            let failure = await #expect(throws: ProviderFailure.self) {
                _ = try await provider.fetch(ExternalProviderRetryTests.request, logger: logs.logger())
            }
            guard case .unavailable(let message, let cause)? = failure else {
                Issue.record("expected unavailable, got \(String(describing: failure))")
                return
            }
            #expect(message.hasSuffix("(2 attempts)"), "\(message)")
            let rpc = try #require(cause?.error as? RPCError, "cause: \(String(describing: cause))")
            #expect(rpc.code == .unavailable)
            let retry = try #require(logs.all.first { $0.contains("provider unavailable, retrying") })
            #expect(retry.contains("error.cause.type=GRPCCore.RPCError"), "\(retry)")

            let health = await #expect(throws: ProviderFailure.self) { _ = try await provider.version(timeout: .seconds(5)) }
            guard case .unavailable(_, let versionCause)? = health else {
                Issue.record("expected unavailable, got \(String(describing: health))")
                return
            }
            #expect(versionCause?.matches(RPCError.self) == true, "\(String(describing: versionCause))")
        }
    }
}
