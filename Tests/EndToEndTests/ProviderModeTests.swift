import CSIProtocol
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import KeyVaultEmulator
import Logging
import SecretsStoreAzure
import SecretsStoreCSI
import SecretsStoreCore
import SecretsStoreCoreTesting
import SecretsStoreHTTPServer
import SecretsStoreApplication
import SecretsStoreObservability
import SecretsStoreTesting
import ServiceLifecycle
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `provider azure` (``BuiltInProviderServer``) against the Key Vault emulator: `grpc.health.v1.Health` on its
/// socket, the upstream Azure provider's `/healthz` endpoint and its `keyvault_request` / `grpc_request`
/// metrics; and the health endpoint's answers and limits on their own.
@Suite("provider azure: gRPC health, /healthz and the upstream provider's metrics", .serialized, .timeLimit(.minutes(3)))
struct ProviderModeTests {
    static let tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
    static let objects = """
        array:
          - |
            objectName: db-pass
            objectType: secret
        """

    static func mountRequest(objects: String = objects) -> V1alpha1_MountRequest {
        let attributes = [
            "keyvaultName": "kv1", "tenantID": tenant, "objects": objects,
            "csi.storage.k8s.io/pod.name": "web-0", "csi.storage.k8s.io/pod.namespace": "ns",
        ]
        return try! ExternalProvider.mountRequest(
            for: ProviderRequest(
                attributes: attributes,
                secrets: ["clientid": "sp-app", "clientsecret": "sp-secret-SENTINEL"],
                targetPath: "/t",
                currentObjectVersions: []
            )
        )
    }

    /// Runs `provider azure` on `<root>/azure.sock` (health and metrics on free loopback ports) against a fresh
    /// emulator, and runs `body` once it listens (the server is passed so that the test can stop it gracefully).
    static func withProvider(
        healthzPath: String = "/healthz",
        _ body: (BuiltInProviderServer.Listening, PrometheusDriverMetrics, BuiltInProviderServer) async throws -> Void
    ) async throws {
        try await withTemporaryDirectory { root in
            let emulator = try await KeyVaultEmulator(
                seed: EmulatorSeed(
                    tenantID: tenant,
                    clients: [.init(clientID: "sp-app", secret: "sp-secret-SENTINEL")],
                    vaults: ["kv1": .init(secrets: ["db-pass": [.init(value: "s3cr3t-db-password")]])]
                )
            )
            let azure = DriverConfiguration.BuiltInAzure(
                overrides: AzureEndpointOverrides(
                    keyVaultURLTemplate: emulator.baseURL + "/{vault}",
                    authorityHost: emulator.baseURL + "/",
                    caBundlePEM: Array(emulator.certificates.caCertificatePEM.utf8)
                )
            )
            let metrics = PrometheusDriverMetrics(driverSeries: false)
            do {
                let server = try BuiltInProviderServer(
                    azure: azure,
                    socketPath: root + "/azure.sock",
                    options: .init(healthzAddress: "127.0.0.1:0", healthzPath: healthzPath, healthzTimeout: .seconds(5), metricsAddress: "127.0.0.1:0"),
                    metrics: metrics,
                    logger: Logger(label: "test")
                )
                try await server.withRunning { listening in try await body(listening, metrics, server) }
            } catch {
                try? await emulator.shutdown()
                throw error
            }
            try await emulator.shutdown()
        }
    }

    @Test("Health/Check answers SERVING for the server and the provider service; /healthz answers 200 ok")
    func healthOverGRPCAndHTTP() async throws {
        try await Self.withProvider { listening, _, _ in
            #expect(try await HealthCheckClient.check(socketPath: listening.socketPath, timeout: .seconds(5)) == .serving)
            #expect(
                try await HealthCheckClient.check(socketPath: listening.socketPath, service: BuiltInProviderServer.providerServiceName, timeout: .seconds(5))
                    == .serving
            )
            let port = try #require(listening.healthzPort)
            let answer = try RawHTTP.exchange(port: port, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            #expect(answer.status == 200)
            #expect(answer.body == "ok")
            #expect(try RawHTTP.exchange(port: port, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").status == 404)
        }
    }

    @Test("Mount calls become the upstream provider's keyvault_request and grpc_request histograms, with its labels")
    func upstreamMetrics() async throws {
        try await Self.withProvider { listening, _, _ in
            let response = try await withCSIProviderClient(socketPath: listening.socketPath) { provider in
                try await provider.mount(Self.mountRequest())
            }
            #expect(response.files.map(\.path) == ["db-pass"])
            let missing = Self.mountRequest(objects: "array:\n  - |\n    objectName: nope\n    objectType: secret\n")
            await #expect(throws: RPCError.self) {
                _ = try await withCSIProviderClient(socketPath: listening.socketPath) { try await $0.mount(missing) }
            }
            let port = try #require(listening.metricsPort)
            let text = try RawHTTP.exchange(port: port, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").body
            let common = "os_type=\"linux\",provider=\"azure\",service_name=\"csi-secrets-store-provider-azure\""
            #expect(text.contains("# TYPE keyvault_request histogram"))
            #expect(text.contains("keyvault_request_count{error=\"\",object_name=\"db-pass\",object_type=\"secret\",\(common)} 1"))
            #expect(text.contains("keyvault_request_count{error=\"HTTP 404\",object_name=\"nope\",object_type=\"secret\",\(common)} 1"))
            #expect(text.contains("keyvault_request_bucket{error=\"\",object_name=\"db-pass\",object_type=\"secret\",\(common),le=\"30.0\"} 1"))
            #expect(text.contains("# TYPE grpc_request histogram"))
            #expect(text.contains("grpc_request_count{grpc_code=\"OK\",grpc_message=\"\",grpc_method=\"/v1alpha1.CSIDriverProvider/Mount\",\(common)} 1"))
            #expect(text.contains("grpc_request_count{grpc_code=\"FailedPrecondition\","))
            #expect(!text.contains("node_unpublish_total"), "the driver's own series are not served by provider azure")
            #expect(!text.contains("s3cr3t-db-password") && !text.contains("sp-secret-SENTINEL"))
        }
    }

    @Test("a graceful stop turns Watch to NOT_SERVING and ends it before the socket server stops")
    func watchEndsOnShutdown() async throws {
        let seen = SeenStatuses()
        try await Self.withProvider { listening, _, group in
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask {
                    try await withGRPCClient(
                        transport: .http2NIOPosix(
                            target: .unixDomainSocket(path: listening.socketPath, authority: "localhost"),
                            transportSecurity: .plaintext
                        )
                    ) { client in
                        try await Grpc_Health_V1_Health.Client(wrapping: client).watch(Grpc_Health_V1_HealthCheckRequest()) { response in
                            for try await message in response.messages { seen.append(message.status) }
                        }
                    }
                }
                try await eventually("a first health status") { !seen.all.isEmpty }
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()  // the Watch ended: the stop was not held up by it
            }
        }
        #expect(seen.all == [.serving, .notServing])
    }

    @Test("the health endpoint: custom path, 503 with the check's reason, 405/404, HEAD, and the listener's limits")
    func healthzListener() async throws {
        let verdict = Mutex<String?>(nil)
        let (stream, continuation) = AsyncStream.makeStream(of: Int.self)
        let listener = try HTTPListener.providerHealth(
            address: "127.0.0.1:0",
            path: "/live",
            limits: .init(maxRequestHeadBytes: 1024, maxHeaderFields: 10),
            logger: Logger(label: "test"),
            check: { verdict.withLock { $0 } },
            onListening: { continuation.yield($0) }
        )
        let group = ServiceGroup(services: [listener], logger: Logger(label: "test"))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var iterator = stream.makeAsyncIterator()
            let port = try #require(await iterator.next())
            func send(_ request: String) throws -> RawHTTP.Answer { try RawHTTP.exchange(port: port, request) }

            #expect(try send("GET /live?probe=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").body == "ok")
            verdict.withLock { $0 = "health check of unix:///x.sock failed: unavailable\nsecond line" }
            let failing = try send("GET /live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            #expect(failing.status == 503)
            #expect(failing.body == "health check of unix:///x.sock failed: unavailable second line\n")
            let head = try send("HEAD /live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            #expect(head.status == 503 && head.body.isEmpty)
            let post = try send("POST /live HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            #expect(post.status == 405 && post.head.contains("Allow: GET, HEAD"))
            #expect(try send("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").status == 404)
            #expect(try send("GET /live HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello").status == 413)
            let longHead = "GET /live HTTP/1.1\r\nHost: x\r\nX-Pad: " + String(repeating: "a", count: 4096) + "\r\n\r\n"
            #expect(try send(longHead).status == 431)
            let longURI = "GET /live?" + String(repeating: "b", count: 4096) + " HTTP/1.1\r\nHost: x\r\n\r\n"
            #expect(try send(longURI).status == 431, "the request line counts too")
            let manyFields = "GET /live HTTP/1.1\r\n" + (0..<20).map { "X-\($0): y\r\n" }.joined() + "\r\n"
            #expect(try send(manyFields).status == 431)
            verdict.withLock { $0 = nil }
            // Keep-alive: two requests on one connection, answered in order.
            let twice = try send("GET /live HTTP/1.1\r\nHost: x\r\n\r\nGET /live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            #expect(twice.raw.components(separatedBy: "HTTP/1.1 200 OK").count == 3)
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        #expect(throws: HealthzPathError.self) {
            try HTTPListener.providerHealth(address: ":0", path: "healthz", logger: Logger(label: "test"), check: { nil })
        }
    }

    @Test("the process: upstream flags in Go form, /healthz on the custom path, /metrics, SIGTERM; bad flags refused")
    func providerProcess() async throws {
        try await withTemporaryDirectory { root in
            let socket = root + "/azure.sock"
            let (process, output) = try DriverProcessTests.start([
                "provider", "azure", "--endpoint=unix://" + socket, "--healthz-port=0", "--healthz-path=/live",
                "--healthz-timeout=2s", "--metrics-backend=prometheus", "--prometheus-port=0", "--log-format-json=true",
            ])
            var seen = ""
            var healthzPort: Int?
            var metricsPort: Int?
            for _ in 0..<200 where healthzPort == nil || metricsPort == nil {
                seen += String(decoding: output.fileHandleForReading.availableData, as: UTF8.self)
                healthzPort = Self.number(after: "\"healthz.port\":\"", in: seen)
                metricsPort = Self.number(after: "\"metrics.address\":\"[::]:", in: seen)
            }
            let healthz = try #require(healthzPort)
            let metrics = try #require(metricsPort)
            try await DriverProcessTests.waitForSocket(socket)
            let live = try DriverProcessTests.httpGet("http://127.0.0.1:\(healthz)/live")
            #expect(live.status == 200 && live.body == "ok")
            #expect(try DriverProcessTests.httpGet("http://127.0.0.1:\(healthz)/healthz").status == 404)
            let scrape = try DriverProcessTests.httpGet("http://127.0.0.1:\(metrics)/metrics")
            #expect(scrape.status == 200)
            #expect(scrape.body.contains("grpc_request_count{grpc_code=\"OK\",grpc_message=\"\",grpc_method=\"/grpc.health.v1.Health/Check\""))
            try await terminateAndWait(process)  // SIGTERM, bounded
            #expect(process.terminationReason == .exit && process.terminationStatus == 0)

            for (flag, message) in [
                ("--healthz-timeout=soon", "--healthz-timeout soon: not a positive duration"),
                ("--healthz-path=live", "--healthz-path live: expected an absolute path"),
                ("--healthz-port=70000", "--healthz-port 70000: not a port"),
                ("--metrics-backend=statsd", "--metrics-backend statsd: only Prometheus"),
            ] {
                let (bad, badOutput) = try DriverProcessTests.start(["provider", "azure", "--endpoint=unix://" + root + "/bad.sock", flag])
                try await onOwnThread { bad.waitUntilExit() }
                #expect(bad.terminationStatus != 0, "\(flag)")
                let text = String(decoding: badOutput.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                #expect(text.contains(message), "\(flag): \(text)")
            }
        }
    }

    /// The decimal number right after `prefix` in `text`, if any.
    static func number(after prefix: String, in text: String) -> Int? {
        guard let range = text.range(of: prefix) else { return nil }
        return Int(text[range.upperBound...].prefix { $0.isNumber })
    }

    @Test("/healthz against a socket nothing serves answers 503 naming the socket")
    func healthzOfDeadSocket() async throws {
        try await withTemporaryDirectory { root in
            let problem = await HealthCheckClient.problem(socketPath: root + "/none.sock", timeout: .seconds(2))
            #expect(problem?.hasPrefix("health check of unix://\(root)/none.sock failed:") == true, "\(problem ?? "nil")")
        }
    }
}

/// Statuses a Watch received.
private final class SeenStatuses: Sendable {
    private let state = Mutex<[Grpc_Health_V1_HealthCheckResponse.ServingStatus]>([])
    func append(_ status: Grpc_Health_V1_HealthCheckResponse.ServingStatus) { state.withLock { $0.append(status) } }
    var all: [Grpc_Health_V1_HealthCheckResponse.ServingStatus] { state.withLock { $0 } }
}

/// A v1alpha1 client on `socketPath`, as the driver connects.
private func withCSIProviderClient<T: Sendable>(
    socketPath: String,
    _ body: @Sendable (V1alpha1_CSIDriverProvider.Client<HTTP2ClientTransport.Posix>) async throws -> T
) async throws -> T {
    try await withGRPCClient(
        transport: .http2NIOPosix(target: .unixDomainSocket(path: socketPath, authority: "localhost"), transportSecurity: .plaintext)
    ) { client in
        try await body(V1alpha1_CSIDriverProvider.Client(wrapping: client))
    }
}

/// One raw HTTP/1.1 exchange on 127.0.0.1: the bytes as given, everything read until the server closes.
enum RawHTTP {
    struct Answer {
        var raw: String
        var status: Int { Int(raw.split(separator: " ").dropFirst().first ?? "") ?? 0 }
        var head: String { raw.components(separatedBy: "\r\n\r\n").first ?? "" }
        var body: String { raw.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n") }
    }

    struct ConnectError: Error {}

    static func exchange(port: Int, _ request: String) throws -> Answer {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(socket) }
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port)).bigEndian
        inet_pton(AF_INET, "127.0.0.1", &address.sin_addr)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw ConnectError() }
        let bytes = Array(request.utf8)
        _ = bytes.withUnsafeBytes { send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var response = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = recv(socket, &buffer, buffer.count, 0)
            if count <= 0 { break }
            response += buffer[0..<count]
        }
        return Answer(raw: String(decoding: response, as: UTF8.self))
    }
}
