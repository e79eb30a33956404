import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

/// A small HTTP/1.1 server on a loopback port, plain or TLS, that hands each complete request to a handler.
/// Test doubles of HTTP services (the Key Vault emulator, the fake Kubernetes API server) are built on it.
package final class LoopbackHTTPServer: Sendable {
    /// One complete request.
    package struct Request: Sendable {
        /// `GET`, `POST`…
        package var method: String
        /// The path without the query.
        package var path: String
        /// The raw query string (without `?`).
        package var query: String
        /// The request headers.
        package var headers: HTTPHeaders
        /// The whole request body.
        package var body: [UInt8]
    }

    /// The answer to a request, sent after `delay` when set.
    package struct Response: Sendable {
        /// The HTTP status code.
        package var status: Int
        /// Headers to send; `Content-Length` is set from the body.
        package var headers: [(String, String)]
        /// The response body.
        package var body: [UInt8]
        /// How long to wait before answering; `nil` answers at once.
        package var delay: Duration?
        /// When set, the response is streamed: the head goes out with `Transfer-Encoding: chunked` (`body` is
        /// ignored) and this closure is called once, on the connection's event loop, with the stream to write.
        package var stream: (@Sendable (ResponseStream) -> Void)?

        /// A response; no headers, empty body and no delay unless given.
        package init(status: Int, headers: [(String, String)] = [], body: [UInt8] = [], delay: Duration? = nil) {
            self.status = status
            self.headers = headers
            self.body = body
            self.delay = delay
            self.stream = nil
        }

        /// A streamed response: `start` gets the open stream once the head is sent.
        package static func streaming(
            status: Int,
            headers: [(String, String)] = [],
            start: @escaping @Sendable (ResponseStream) -> Void
        ) -> Response {
            var response = Response(status: status, headers: headers)
            response.stream = start
            return response
        }
    }

    private let channel: any Channel
    /// The connections accepted and still open, closed by ``shutdown()``.
    private let connections: OpenConnections
    /// The bound port.
    package let port: Int

    /// Binds `host:port` (0 for an ephemeral port) and serves `handler`.
    package init(
        host: String = "127.0.0.1",
        port: Int = 0,
        tls: NIOSSLContext? = nil,
        handler: @escaping @Sendable (Request) -> Response
    ) async throws {
        let connections = OpenConnections()
        self.connections = connections
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                connections.add(channel)
                return channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls))
                    }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(RequestCollector(handler: handler))
                }
            }
        channel = try await bootstrap.bind(host: host, port: port).get()
        self.port = channel.localAddress?.port ?? port
    }

    /// Closes the listening socket and every open connection: the server is unreachable afterwards, also
    /// for clients that keep connections alive.
    package func shutdown() async throws {
        try await channel.close()
        for connection in connections.removeAll() {
            try? await connection.close()
        }
    }
}

/// The open connections of a ``LoopbackHTTPServer``; each removes itself when it closes.
private final class OpenConnections: Sendable {
    private let open = Mutex<[ObjectIdentifier: any Channel]>([:])

    func add(_ channel: any Channel) {
        let id = ObjectIdentifier(channel)
        open.withLock { $0[id] = channel }
        channel.closeFuture.whenComplete { [self] _ in _ = open.withLock { $0.removeValue(forKey: id) } }
    }

    func removeAll() -> [any Channel] {
        open.withLock { open in
            defer { open.removeAll() }
            return Array(open.values)
        }
    }
}

/// Gathers head and body, calls the handler, writes the response.
private final class RequestCollector: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let handler: @Sendable (LoopbackHTTPServer.Request) -> LoopbackHTTPServer.Response
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    /// The streamed response in progress, told when the connection goes away.
    private var openStream: ResponseStream?

    init(handler: @escaping @Sendable (LoopbackHTTPServer.Request) -> LoopbackHTTPServer.Response) {
        self.handler = handler
    }

    func channelInactive(context: ChannelHandlerContext) {
        openStream?.connectionClosed()
        openStream = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body = []
        case .body(var buffer):
            body += buffer.readBytes(length: buffer.readableBytes) ?? []
        case .end:
            guard let head else { return }
            self.head = nil
            let question = head.uri.firstIndex(of: "?")
            let request = LoopbackHTTPServer.Request(
                method: head.method.rawValue,
                path: String(head.uri[..<(question ?? head.uri.endIndex)]),
                query: question.map { String(head.uri[head.uri.index(after: $0)...]) } ?? "",
                headers: head.headers,
                body: body
            )
            let response = handler(request)
            if let start = response.stream {
                var headers = HTTPHeaders(response.headers)
                headers.remove(name: "Content-Length")
                headers.replaceOrAdd(name: "Transfer-Encoding", value: "chunked")
                let responseHead = HTTPResponseHead(version: head.version, status: .init(statusCode: response.status), headers: headers)
                context.writeAndFlush(wrapOutboundOut(.head(responseHead)), promise: nil)
                let stream = ResponseStream(context: context, closeAfter: !head.isKeepAlive)
                openStream = stream
                start(stream)
                return
            }
            var headers = HTTPHeaders(response.headers)
            headers.replaceOrAdd(name: "Content-Length", value: String(response.body.count))
            let responseHead = HTTPResponseHead(version: head.version, status: .init(statusCode: response.status), headers: headers)
            let close = !head.isKeepAlive
            let write = { [self] in
                context.write(self.wrapOutboundOut(.head(responseHead)), promise: nil)
                context.write(self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: response.body)))), promise: nil)
                if close {
                    context.writeAndFlush(self.wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
                        context.close(promise: nil)
                    }
                } else {
                    context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
                }
            }
            if let delay = response.delay {
                context.eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(delay)) { write() }
            } else {
                write()
            }
        }
    }
}

/// The body of a streamed response (chunked transfer encoding). Safe to use from any thread: every write hops to
/// the connection's event loop, in call order. After ``finish()`` or once the client disconnects, writes are
/// dropped and the termination handler has run (once).
package final class ResponseStream: Sendable {
    private struct State {
        var open = true
        var onTermination: (@Sendable () -> Void)?
    }

    private let context: NIOLoopBound<ChannelHandlerContext>
    private let eventLoop: any EventLoop
    private let closeAfter: Bool
    private let state = Mutex(State())

    init(context: ChannelHandlerContext, closeAfter: Bool) {
        self.context = NIOLoopBound(context, eventLoop: context.eventLoop)
        self.eventLoop = context.eventLoop
        self.closeAfter = closeAfter
    }

    /// Whether the stream still accepts writes.
    package var isOpen: Bool { state.withLock { $0.open } }

    /// Runs `handler` once when the stream ends (``finish()`` or the client went away); at once if it has.
    package func onTermination(_ handler: @escaping @Sendable () -> Void) {
        let runNow = state.withLock { state -> Bool in
            guard state.open else { return true }
            state.onTermination = handler
            return false
        }
        if runNow { handler() }
    }

    /// Sends `bytes` as one chunk.
    package func write(_ bytes: [UInt8]) {
        guard isOpen, !bytes.isEmpty else { return }
        let context = self.context
        eventLoop.execute {
            context.value.writeAndFlush(NIOAny(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(bytes: bytes)))), promise: nil)
        }
    }

    /// Ends the response (the terminating chunk); the connection stays open for keep-alive clients.
    package func finish() {
        guard let handler = terminate() else { return }
        let context = self.context
        let closeAfter = self.closeAfter
        eventLoop.execute {
            let future = context.value.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil)))
            if closeAfter {
                future.whenComplete { _ in context.value.close(promise: nil) }
            }
        }
        handler()
    }

    /// The client closed the connection.
    func connectionClosed() {
        terminate()?()
    }

    /// Marks the stream ended; the termination handler to run, `nil` when it had already ended.
    private func terminate() -> (@Sendable () -> Void)? {
        state.withLock { state in
            guard state.open else { return nil }
            state.open = false
            defer { state.onTermination = nil }
            return state.onTermination ?? {}
        }
    }
}
