import CSIProtocol
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import SecretsStoreCSI
import SecretsStoreCore
import SecretsStoreCoreTesting
import SecretsStoreTesting
import ServiceLifecycle
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `grpc.health.v1.Health` over a real socket, and `--provider-health-check` (``ProviderHealthService``) against
/// a provider that stops and comes back.
@Suite("Health: grpc.health.v1 service and the provider health check", .timeLimit(.minutes(3)))
struct ProviderHealthTests {
    // MARK: grpc.health.v1

    @Test("Check answers SERVING for the server and its services, NOT_FOUND naming an unknown one, NOT_SERVING after shutdown")
    func check() async throws {
        try await withTemporaryDirectory { root in
            let board = HealthStatusBoard(services: ["v1alpha1.CSIDriverProvider"])
            let server = try await Self.serveHealth(board, socketPath: root + "/h.sock")
            #expect(try await HealthCheckClient.check(socketPath: root + "/h.sock", timeout: .seconds(5)) == .serving)
            #expect(try await HealthCheckClient.check(socketPath: root + "/h.sock", service: "v1alpha1.CSIDriverProvider", timeout: .seconds(5)) == .serving)
            do {
                _ = try await HealthCheckClient.check(socketPath: root + "/h.sock", service: "nope.Service", timeout: .seconds(5))
                Issue.record("an unknown service was answered")
            } catch let error as RPCError {
                #expect(error.code == .notFound)
                #expect(error.message == "unknown service \"nope.Service\"")
            }
            #expect(await HealthCheckClient.problem(socketPath: root + "/h.sock", timeout: .seconds(5)) == nil)
            board.shutDown()
            #expect(try await HealthCheckClient.check(socketPath: root + "/h.sock", timeout: .seconds(5)) == .notServing)
            let problem = await HealthCheckClient.problem(socketPath: root + "/h.sock", timeout: .seconds(5))
            #expect(problem == "health check of unix://\(root)/h.sock answered notServing")
            server.beginGracefulShutdown()
        }
    }

    @Test("Watch streams the status now, each change, SERVICE_UNKNOWN for an unknown service, and ends with NOT_SERVING on shutdown")
    func watch() async throws {
        try await withTemporaryDirectory { root in
            let board = HealthStatusBoard(services: ["svc.A"])
            let server = try await Self.serveHealth(board, socketPath: root + "/h.sock")
            let seen = Statuses()
            let unknown = Statuses()
            try await withGRPCClient(
                transport: .http2NIOPosix(target: .unixDomainSocket(path: root + "/h.sock", authority: "localhost"), transportSecurity: .plaintext)
            ) { client in
                let health = Grpc_Health_V1_Health.Client(wrapping: client)
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        var request = Grpc_Health_V1_HealthCheckRequest()
                        request.service = "svc.A"
                        try await health.watch(request) { response in
                            for try await message in response.messages { seen.withLock { $0.append(message.status) } }
                        }
                    }
                    group.addTask {
                        var request = Grpc_Health_V1_HealthCheckRequest()
                        request.service = "svc.Missing"
                        try await health.watch(request) { response in
                            for try await message in response.messages { unknown.withLock { $0.append(message.status) } }
                        }
                    }
                    try await eventually("seen.withLock { $0 } == [.serving] && unknown.withLock { $0 } == [.serviceUnknown]") { seen.withLock { $0 } == [.serving] && unknown.withLock { $0 } == [.serviceUnknown] }
                    board.setStatus(.notServing, for: "svc.A")
                    try await eventually("seen.withLock { $0 }.last == .notServing") { seen.withLock { $0 }.last == .notServing }
                    board.setStatus(.serving, for: "svc.A")
                    try await eventually("seen.withLock { $0 }.last == .serving") { seen.withLock { $0 }.last == .serving }
                    board.setStatus(.serving, for: "svc.A")  // no change: nothing sent
                    board.shutDown()
                    try await group.waitForAll()  // both streams end
                }
            }
            #expect(seen.withLock { $0 } == [.serving, .notServing, .serving, .notServing])
            #expect(unknown.withLock { $0 } == [.serviceUnknown, .notServing])
            board.setStatus(.serving, for: "svc.A")
            #expect(board.status(of: "svc.A") == .notServing, "changes after shutdown are ignored")
            server.beginGracefulShutdown()
        }
    }

    // MARK: The provider health check

    @Test("a provider that stops and comes back: healthy, then one warning, then recovered; every round reported")
    func providerStopsAndComesBack() async throws {
        try await withTemporaryDirectory { root in
            mkdir(root + "/providers", 0o755)
            let path = root + "/providers/test.sock"
            let logs = LogCapture()
            let reports = Mutex<[String]>([])
            let service = ProviderHealthService(
                directories: [root + "/providers"],
                interval: .seconds(60),
                timeout: .seconds(5),
                logger: logs.logger(level: .info),
                report: { name, healthy in reports.withLock { $0.append("\(name)=\(healthy)") } }
            )
            var provider = try await TestProviderServer(socketPath: path, behaviour: .hang)
            var states = await service.checkRound(previous: [:])
            #expect(states == ["test": .init(socketPath: path, healthy: true)])
            #expect(logs.all.contains { $0.hasPrefix("INFO provider is healthy") && $0.contains("provider=test") && $0.contains("provider.runtime=test-provider") })

            provider.shutdown()
            try await eventually("(try? await ExternalProvider(name: \"test\", socketPath: path, maxReceiveMessageBytes: 1 << 20).version(timeout: .seconds(1))) == nil") { (try? await ExternalProvider(name: "test", socketPath: path, maxReceiveMessageBytes: 1 << 20).version(timeout: .seconds(1))) == nil }
            states = await service.checkRound(previous: states)
            #expect(states["test"]?.healthy == false)
            states = await service.checkRound(previous: states)
            #expect(states["test"]?.healthy == false)
            let warnings = logs.all.filter { $0.hasPrefix("WARNING provider health check failed") }
            #expect(warnings.count == 1, "one line when it becomes unhealthy, none while it stays so: \(warnings)")
            #expect(warnings.first?.contains("provider.socket=\(path)") == true)

            provider = try await TestProviderServer(socketPath: path, behaviour: .hang)
            states = await service.checkRound(previous: states)
            #expect(states["test"]?.healthy == true)
            #expect(logs.all.filter { $0.hasPrefix("INFO provider recovered") && $0.contains("provider=test") }.count == 1)
            #expect(reports.withLock { $0 } == ["test=true", "test=false", "test=false", "test=true"])
            provider.shutdown()
        }
    }

    @Test("a socket that disappears counts as unhealthy; built-in provider names are skipped")
    func goneAndSkipped() async throws {
        try await withTemporaryDirectory { root in
            let provider = try await TestProviderServer(socketPath: root + "/test.sock", behaviour: .hang)
            let azure = try await TestProviderServer(socketPath: root + "/azure.sock", behaviour: .hang)
            let logs = LogCapture()
            let service = ProviderHealthService(directories: [root], skipping: ["azure"], interval: .seconds(60), logger: logs.logger())
            var states = await service.checkRound(previous: [:])
            #expect(Set(states.keys) == ["test"])
            provider.shutdown()
            azure.shutdown()
            try await eventually("(try? await ExternalProvider(name: \"t\", socketPath: root + \"/test.sock\", maxReceiveMessageBytes: 1 << 20).version(timeout: .seconds(1))) == nil") { (try? await ExternalProvider(name: "t", socketPath: root + "/test.sock", maxReceiveMessageBytes: 1 << 20).version(timeout: .seconds(1))) == nil }
            unlink(root + "/test.sock")
            states = await service.checkRound(previous: states)
            #expect(states["test"] == .init(socketPath: root + "/test.sock", healthy: false))
            #expect(logs.all.contains { $0.contains("provider health check failed") && $0.contains("error=the socket is gone") })
        }
    }

    @Test("a round cut short by shutdown (cancelled) is neither reported nor logged")
    func cancelledRound() async throws {
        try await withTemporaryDirectory { root in
            // Listening but never accepting: the kernel completes the connect, the HTTP/2 handshake never comes,
            // so the Version call waits (up to its timeout) until it is cancelled.
            let descriptor = try Self.listenWithoutAccepting(at: root + "/stuck.sock")
            defer { close(descriptor) }
            let logs = LogCapture()
            let reports = Mutex(0)
            let service = ProviderHealthService(
                directories: [root],
                interval: .seconds(60),
                timeout: .seconds(30),
                logger: logs.logger(),
                report: { _, _ in reports.withLock { $0 += 1 } }
            )
            let previous = ["stuck": ProviderHealthService.ProviderState(socketPath: root + "/stuck.sock", healthy: true)]
            let round = Task { await service.checkRound(previous: previous) }
            // The round's Version call has connected (a connection waits in the backlog): it is under way.
            try await eventually("the round's connection waiting to be accepted") {
                var waiting = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
                return poll(&waiting, 1, 0) == 1
            }
            round.cancel()
            #expect(await round.value == previous)
            #expect(reports.withLock { $0 } == 0)
            #expect(!logs.all.contains { $0.contains("provider health check failed") })
        }
    }

    @Test("sockets are found as <dir>/<name>.sock, the first directory winning; files and lock files are not sockets")
    func socketDiscovery() async throws {
        try await withTemporaryDirectory { root in
            mkdir(root + "/a", 0o755)
            mkdir(root + "/b", 0o755)
            try ExternalProviderRetryTests.leaveStaleSocket(at: root + "/a/one.sock")
            try ExternalProviderRetryTests.leaveStaleSocket(at: root + "/b/one.sock")
            try ExternalProviderRetryTests.leaveStaleSocket(at: root + "/b/two.sock")
            close(open(root + "/b/file.sock", O_CREAT | O_WRONLY, 0o600))
            close(open(root + "/b/two.sock.lock", O_CREAT | O_WRONLY, 0o600))
            let found = ProviderHealthService.providerSockets(in: [root + "/a", root + "/missing", root + "/b"])
            #expect(found.map(\.name) == ["one", "two"])
            #expect(found.map(\.path) == [root + "/a/one.sock", root + "/b/two.sock"])
        }
    }

    @Test("as a Service: rounds after each interval until graceful shutdown")
    func runsAsService() async throws {
        try await withTemporaryDirectory { root in
            let provider = try await TestProviderServer(socketPath: root + "/test.sock", behaviour: .hang)
            let reports = Mutex(0)
            let service = ProviderHealthService(
                directories: [root],
                interval: .milliseconds(20),
                logger: Logger(label: "test"),
                report: { _, healthy in if healthy { reports.withLock { $0 += 1 } } }
            )
            let group = ServiceGroup(services: [service], logger: Logger(label: "test"))
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                try await eventually("reports.withLock { $0 } >= 2") { reports.withLock { $0 } >= 2 }
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
            }
            provider.shutdown()
        }
    }

    // MARK: Helpers

    /// Statuses a Watch received, shared with the task reading them.
    final class Statuses: Sendable {
        private let state = Mutex<[HealthStatusBoard.Status]>([])
        func withLock<T>(_ body: (inout [HealthStatusBoard.Status]) -> T) -> T { state.withLock { body(&$0) } }
    }

    /// Serves `board` on `socketPath`; returns once it accepts connections.
    static func serveHealth(_ board: HealthStatusBoard, socketPath: String) async throws -> GRPCServer<HTTP2ServerTransport.Posix> {
        let server = GRPCServer(
            transport: .http2NIOPosix(address: .unixDomainSocket(path: socketPath), transportSecurity: .plaintext),
            services: [HealthService(board: board)]
        )
        Task { try? await server.serve() }
        _ = try await server.listeningAddress
        return server
    }

    /// A Unix socket at `path` that listens but never accepts; the caller closes the descriptor.
    static func listenWithoutAccepting(at path: String) throws -> Int32 {
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard descriptor >= 0, bound == 0, listen(descriptor, 8) == 0 else { throw ExternalProviderRetryTests.StaleSocketError() }
        return descriptor
    }

}
