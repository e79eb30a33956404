import CSIProtocol
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import SecretsStoreCSI
import SecretsStoreCore
import SecretsStoreCoreTesting
import Synchronization
import Testing

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// ``ExternalProvider`` against providers that are slow to start: UNAVAILABLE (a socket nobody accepts on, or a
/// provider answering UNAVAILABLE) is retried with back-off within the deadline; other failures, and a missing
/// socket, fail at once.
@Suite("External provider: UNAVAILABLE retried with back-off, everything else final", .timeLimit(.minutes(3)))
struct ExternalProviderRetryTests {
    static let request = ProviderRequest(attributes: ["a": "b"], secrets: [:], targetPath: "/t", currentObjectVersions: [])

    @Test("a provider that answers UNAVAILABLE twice, then files, is survived within one fetch")
    func unavailableTwiceThenOK() async throws {
        try await withTemporaryDirectory { root in
            let service = ScriptedProvider(failures: [.unavailable, .unavailable])
            let server = try await ScriptedProvider.serve(service, socketPath: root + "/flaky.sock")
            let logs = LogCapture()
            let provider = ExternalProvider(name: "flaky", socketPath: root + "/flaky.sock", maxReceiveMessageBytes: 1 << 20)
            let response = try await provider.fetch(Self.request, logger: logs.logger())
            server.beginGracefulShutdown()
            #expect(response.files.map(\.path) == ["f"])
            #expect(service.calls == 3)
            #expect(logs.all.filter { $0.contains("provider unavailable, retrying") && $0.contains("provider=flaky") }.count == 2)
        }
    }

    @Test("a socket that is there but not served until after a failed attempt (a restarting provider) is waited for")
    func lateServer() async throws {
        try await withTemporaryDirectory { root in
            let path = root + "/late.sock"
            try Self.leaveStaleSocket(at: path)
            let provider = ExternalProvider(name: "late", socketPath: path, maxReceiveMessageBytes: 1 << 20)
            let service = ScriptedProvider(failures: [])
            let logs = LogCapture()
            let fetch = Task { try await provider.fetch(Self.request, logger: logs.logger()) }
            // The server starts only once an attempt found the socket unserved and the fetch is waiting to retry.
            try await eventually("a failed attempt") { logs.all.contains { $0.contains("provider unavailable, retrying") } }
            let server = try await ScriptedProvider.serve(service, socketPath: path)
            let response = try await fetch.value
            server.beginGracefulShutdown()
            #expect(response.files.map(\.path) == ["f"])
            #expect(service.calls == 1, "the attempts before the server started never reached it")
        }
    }

    @Test("a socket nobody ever serves fails UNAVAILABLE once the retries run out, saying how many attempts were made")
    func deadSocket() async throws {
        try await withTemporaryDirectory { root in
            let path = root + "/dead.sock"
            try Self.leaveStaleSocket(at: path)
            let provider = ExternalProvider(
                name: "dead",
                socketPath: path,
                maxReceiveMessageBytes: 1 << 20,
                retryPolicy: RetryPolicy(maxAttempts: 3, backoff: .doubling(first: .milliseconds(20)))
            )
            let failure = await #expect(throws: ProviderFailure.self) { _ = try await provider.fetch(Self.request, logger: Logger(label: "test")) }
            guard case .unavailable(let message, _)? = failure else {
                Issue.record("expected unavailable, got \(String(describing: failure))")
                return
            }
            #expect(message.hasSuffix("(3 attempts)"), "\(message)")
            #expect(RPCError.code(for: failure!) == .unavailable)
        }
    }

    @Test("the deadline bounds the retries: a wait that would pass it is not taken")
    func deadlineBoundsRetries() async throws {
        try await withTemporaryDirectory { root in
            let path = root + "/dead.sock"
            try Self.leaveStaleSocket(at: path)
            let provider = ExternalProvider(
                name: "dead",
                socketPath: path,
                maxReceiveMessageBytes: 1 << 20,
                retryPolicy: RetryPolicy(maxAttempts: 1000, backoff: .doubling(first: .milliseconds(50)))
            )
            var request = Self.request
            request.deadline = .now + .milliseconds(400)
            let failure = await #expect(throws: ProviderFailure.self) { _ = try await provider.fetch(request, logger: Logger(label: "test")) }
            switch failure {
            case .unavailable?, .deadlineExceeded?: break
            default: Issue.record("expected unavailable or deadline exceeded, got \(String(describing: failure))")
            }
        }
    }

    @Test("other gRPC failures are final at once: one call")
    func otherFailuresAreNotRetried() async throws {
        try await withTemporaryDirectory { root in
            let service = ScriptedProvider(failures: [.permissionDenied, .permissionDenied])
            let server = try await ScriptedProvider.serve(service, socketPath: root + "/p.sock")
            let provider = ExternalProvider(name: "p", socketPath: root + "/p.sock", maxReceiveMessageBytes: 1 << 20)
            let failure = await #expect(throws: ProviderFailure.self) { _ = try await provider.fetch(Self.request, logger: Logger(label: "test")) }
            server.beginGracefulShutdown()
            #expect(failure == .rpc(code: RPCError.Code.permissionDenied.rawValue, message: "scripted permissionDenied"))
            #expect(service.calls == 1)
        }
    }

    @Test("a missing socket still fails at once, naming every directory searched")
    func missingSocket() async throws {
        try await withTemporaryDirectory { root in
            let directories = [root + "/etc-providers", root + "/run-providers"]
            let lookup = ProviderSocketDirectory(directories: directories, maxReceiveMessageBytes: 1 << 20)
            let error = #expect(throws: PublishError.self) { _ = try lookup.provider(named: "vault") }
            #expect(error == .providerNotFound(name: "vault", searched: directories))
            #expect(error.map { "\($0)" }?.contains("\(root)/etc-providers, \(root)/run-providers") == true)
        }
    }

    /// Leaves a Unix socket file at `path` that nothing listens on (bound, then closed): connecting to it is
    /// refused, as with a provider that is restarting.
    static func leaveStaleSocket(at path: String) throws {
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw StaleSocketError() }
        defer { close(descriptor) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw StaleSocketError() }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0 else { throw StaleSocketError() }
    }

    struct StaleSocketError: Error {}
}

/// A v1alpha1 provider whose Mount fails with the given codes in turn, then answers one file `f`.
final class ScriptedProvider: V1alpha1_CSIDriverProvider.SimpleServiceProtocol, Sendable {
    private let state: Mutex<(failures: [RPCError.Code], calls: Int)>

    init(failures: [RPCError.Code]) {
        state = Mutex((failures, 0))
    }

    /// Mount calls received.
    var calls: Int { state.withLock { $0.calls } }

    func version(request: V1alpha1_VersionRequest, context: ServerContext) async throws -> V1alpha1_VersionResponse {
        var response = V1alpha1_VersionResponse()
        response.version = "v1alpha1"
        response.runtimeName = "scripted"
        return response
    }

    func mount(request: V1alpha1_MountRequest, context: ServerContext) async throws -> V1alpha1_MountResponse {
        let failure = state.withLock { state -> RPCError.Code? in
            state.calls += 1
            return state.failures.isEmpty ? nil : state.failures.removeFirst()
        }
        if let failure { throw RPCError(code: failure, message: "scripted \(failure)") }
        var file = V1alpha1_File()
        file.path = "f"
        file.mode = 0o644
        file.contents = Data("x".utf8)
        var version = V1alpha1_ObjectVersion()
        version.id = "f"
        version.version = "1"
        var response = V1alpha1_MountResponse()
        response.files = [file]
        response.objectVersion = [version]
        return response
    }

    /// Serves `service` on `socketPath`; returns once it accepts connections.
    static func serve(_ service: ScriptedProvider, socketPath: String) async throws -> GRPCServer<HTTP2ServerTransport.Posix> {
        let server = GRPCServer(
            transport: .http2NIOPosix(address: .unixDomainSocket(path: socketPath), transportSecurity: .plaintext),
            services: [service]
        )
        Task { try? await server.serve() }
        _ = try await server.listeningAddress
        return server
    }
}
