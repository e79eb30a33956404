import AsyncHTTPClient
import KeyVaultEmulator
import Logging
import NIOCore
import NIOHTTP1
import SecretsStoreCoreTesting
import SecretsStoreHTTPClient
import SecretsStoreHTTPServer
import SecretsStoreObservability
import SecretsStoreTesting
import Synchronization
import Testing

/// What the listener does beyond the metrics listener's routes: the catch-all responder of the test doubles with
/// request bodies, TLS, streamed and deferred answers; and the provider's health endpoint.
@Suite(.timeLimit(.minutes(2)))
struct HTTPListenerTestDoubleTests {
    /// A listener on 127.0.0.1 that echoes each request's body (with its method and path in a header) and
    /// counts the requests that reached it.
    static func withEchoListener<T: Sendable>(
        maxRequestBodyBytes: Int,
        _ body: (Int, Calls) async throws -> T
    ) async throws -> T {
        let calls = Calls()
        return try await withRunning(
            { onListening in
                try HTTPListener(
                    address: "127.0.0.1:0",
                    responder: { request in
                        calls.count.withLock { $0 += 1 }
                        return .init(status: 200, headers: [("X-Request", "\(request.method) \(request.path)?\(request.query)")], body: request.body)
                    },
                    limits: .init(maxRequestBodyBytes: maxRequestBodyBytes),
                    name: "echo",
                    logger: Logger(label: "echo-test"),
                    onListening: onListening
                )
            },
            { _, port in try await body(port, calls) }
        )
    }

    @Test("a body within maxRequestBodyBytes reaches the responder, with Content-Length or chunked; any method")
    func bodyWithinTheLimitReachesTheResponder() async throws {
        try await Self.withEchoListener(maxRequestBodyBytes: 16) { port, calls in
            let responses = try await blocking {
                let socket = try LoopbackSocket(port: port)
                try socket.send("PUT /objects/a?x=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 16\r\n\r\n0123456789abcdef")
                let exact = try socket.readResponse()
                try socket.send("POST /chunks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
                let chunked = try socket.readResponse()
                try socket.send("DELETE /objects/a HTTP/1.1\r\nHost: x\r\n\r\n")
                return [exact, chunked, try socket.readResponse()]
            }
            #expect(responses.map(\.status) == [200, 200, 200])
            #expect(responses.map(\.text) == ["0123456789abcdef", "hello world", ""])
            #expect(responses.map { $0.headers["x-request"] } == ["PUT /objects/a?x=1", "POST /chunks?", "DELETE /objects/a?"])
            #expect(responses.allSatisfy { $0.headers["connection"] == nil }, "kept alive")
            #expect(calls.count.withLock { $0 } == 3)
        }
    }

    @Test("a body over maxRequestBodyBytes gets 413 and the connection closes; the responder never sees it", arguments: [
        "POST /objects HTTP/1.1\r\nHost: x\r\nContent-Length: 17\r\n\r\n0123456789abcdefg",
        "POST /objects HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n9\r\n123456789\r\n9\r\n123456789\r\n0\r\n\r\n",
        "POST /objects HTTP/1.1\r\nHost: x\r\nContent-Length: 4000000000\r\n\r\n",
    ])
    func bodyOverTheLimitIsRefused(request: String) async throws {
        try await Self.withEchoListener(maxRequestBodyBytes: 16) { port, calls in
            let (response, closed) = try await blocking {
                let socket = try LoopbackSocket(port: port)
                try socket.send(request)
                return (try socket.readResponse(), socket.closedByPeer(within: .seconds(10)))
            }
            #expect(response.status == 413)
            #expect(response.headers["connection"] == "close")
            #expect(closed)
            #expect(calls.count.withLock { $0 } == 0)
        }
    }

    @Test("with the default limit (0), a responder's listener refuses every body with 413, as production does")
    func defaultLimitRefusesBodies() async throws {
        try await Self.withEchoListener(maxRequestBodyBytes: 0) { port, calls in
            let (response, closed) = try await blocking {
                let socket = try LoopbackSocket(port: port)
                try socket.send("POST /objects HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx")
                return (try socket.readResponse(), socket.closedByPeer(within: .seconds(10)))
            }
            #expect(response.status == 413 && closed)
            #expect(calls.count.withLock { $0 } == 0)
        }
    }

    @Test("over TLS: an HTTPS client that trusts the CA gets the responder's answer; plaintext HTTP gets no answer")
    func servesTLS() async throws {
        let certificates = try EmulatorCertificates.generate()
        let server = try await RunningHTTPListener(tls: try certificates.serverContext()) { request in
            .init(status: 200, headers: [("Content-Type", "text/plain")], body: Array("secure \(request.method) \(request.body.count)".utf8))
        }
        let client = try HTTPClient.make(
            tls: HTTPSClientTLS(trustRoots: .only(pem: Array(certificates.caCertificatePEM.utf8))),
            timeouts: HTTPSClientTimeouts(connect: .seconds(5), read: .seconds(5))
        )
        var request = HTTPClientRequest(url: "https://127.0.0.1:\(server.port)/anything")
        request.method = .POST
        request.body = .bytes(ByteBuffer(string: "12345"))
        let answer: (status: UInt, text: String)
        do {
            let response = try await client.execute(request, timeout: TimeAmount.seconds(10))
            let body = try await response.body.collect(upTo: 1 << 20)
            answer = (response.status.code, String(buffer: body))
        } catch {
            try? await client.shutdown()
            try? await server.shutdown()
            throw error
        }
        let plaintext = try await blocking {
            let socket = try LoopbackSocket(port: server.port, timeout: .seconds(2))
            try socket.send("GET /anything HTTP/1.1\r\nHost: x\r\n\r\n")
            return try? socket.readResponse()
        }
        try await client.shutdown()
        try await server.shutdown()
        #expect(answer.status == 200 && answer.text == "secure POST 5")
        #expect(plaintext == nil, "a plaintext request is not answered in HTTP")
    }

    @Test("a streamed answer goes out in chunks as written, ends with finish(), and the connection serves on; a client that leaves ends the stream")
    func streamedAnswer() async throws {
        let streams = Mutex<[ResponseStream]>([])
        let terminated = Mutex(0)
        let server = try await RunningHTTPListener { request in
            guard request.path == "/watch" else { return .init(status: 200, body: Array("plain".utf8)) }
            return .streaming(status: 200, headers: [("Content-Type", "application/json")]) { stream in
                stream.onTermination { terminated.withLock { $0 += 1 } }
                stream.write(Array("one\n".utf8))
                streams.withLock { $0.append(stream) }
            }
        }
        let socket = try await blocking {
            let socket = try LoopbackSocket(port: server.port)
            try socket.send("GET /watch HTTP/1.1\r\nHost: x\r\n\r\n")
            return socket.sendable
        }
        var received: [UInt8] = []
        try await eventually("the first chunk") {
            if case .data(let bytes) = socket.value.receiveNow() { received += bytes }
            return String(decoding: received, as: UTF8.self).hasSuffix("4\r\none\n\r\n")
        }
        let stream = try #require(streams.withLock { $0.first })
        stream.write(Array("two\n".utf8))
        stream.finish()
        try await eventually("the last chunk") {
            if case .data(let bytes) = socket.value.receiveNow() { received += bytes }
            return String(decoding: received, as: UTF8.self).hasSuffix("0\r\n\r\n")
        }
        let text = String(decoding: received, as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(text.lowercased().contains("transfer-encoding: chunked\r\n"))
        #expect(text.hasSuffix("\r\n\r\n4\r\none\n\r\n4\r\ntwo\n\r\n0\r\n\r\n"), "\(text)")
        #expect(!stream.isOpen && terminated.withLock { $0 } == 1)
        let next = try await blocking {
            try socket.value.send("GET /plain HTTP/1.1\r\nHost: x\r\n\r\n")
            return try socket.value.readResponse()
        }
        #expect(next.status == 200 && next.text == "plain", "the connection serves on after the stream")
        // A second watch whose client goes away: the stream ends and says so.
        try await blocking {
            let leaving = try LoopbackSocket(port: server.port)
            try leaving.send("GET /watch HTTP/1.1\r\nHost: x\r\n\r\n")
            _ = leaving.closedByPeer(within: .milliseconds(200))
        }
        try await eventually("the stream of the client that left ends") { terminated.withLock { $0 } == 2 }
        #expect(streams.withLock { $0.count } == 2 && !(streams.withLock { $0.last })!.isOpen)
        try await server.shutdown()
    }

    @Test("a deferred answer holds the connection's later requests, which are answered after it, in order")
    func deferredAnswerKeepsOrder() async throws {
        let server = try await RunningHTTPListener { request in
            guard request.path == "/slow" else { return .init(status: 200, body: Array("fast".utf8)) }
            return .deferred {
                try? await Task.sleep(for: .milliseconds(200))
                return .init(status: 202, body: Array("slow".utf8))
            }
        }
        let answers = try await blocking {
            let socket = try LoopbackSocket(port: server.port)
            try socket.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /fast HTTP/1.1\r\nHost: x\r\n\r\nGET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            return try (0..<3).map { _ in try socket.readResponse() }
        }
        try await server.shutdown()
        #expect(answers.map(\.status) == [202, 200, 202])
        #expect(answers.map(\.text) == ["slow", "fast", "slow"])
    }

    @Test("the provider health endpoint: its one path runs the check (200, or 503 on one line), in order behind a slow check; other paths 404")
    func providerHealthRoute() async throws {
        let verdict = Mutex<String?>(nil)
        try await withRunning(
            { onListening in
                try HTTPListener.providerHealth(
                    address: "127.0.0.1:0",
                    path: "/live",
                    logger: Logger(label: "test"),
                    check: {
                        try? await Task.sleep(for: .milliseconds(100))
                        return verdict.withLock { $0 }
                    },
                    onListening: onListening
                )
            },
            { _, port in
                let healthy = try await blocking {
                    let socket = try LoopbackSocket(port: port)
                    try socket.send("GET /live HTTP/1.1\r\n\r\nGET /healthz HTTP/1.1\r\n\r\nHEAD /live?x HTTP/1.1\r\n\r\n")
                    return [try socket.readResponse(), try socket.readResponse(), try socket.readResponse(forHEAD: true)]
                }
                #expect(healthy.map(\.status) == [200, 404, 200])
                #expect(healthy[0].text == "ok" && healthy[0].headers["content-type"] == "text/plain; charset=utf-8")
                #expect(healthy[2].body.isEmpty && healthy[2].headers["content-length"] == "2")
                verdict.withLock { $0 = "health check of unix:///p.sock failed:\r\ndeadline exceeded" }
                let failing = try await blocking { try fetch("/live", port: port) }
                #expect(failing.status == 503 && failing.text == "health check of unix:///p.sock failed:  deadline exceeded\n")
            }
        )
        for bad in ["live", "/live?x", "/a b", "/a#b", ""] {
            #expect {
                try HTTPListener.providerHealth(address: ":0", path: bad, logger: Logger(label: "test"), check: { nil })
            } throws: { error in
                "\(error)" == "--healthz-path \(bad): expected an absolute path such as /healthz"
            }
        }
    }
}

/// How many requests reached a responder.
final class Calls: Sendable {
    /// The count.
    let count = Mutex(0)
}
