import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import SecretsStoreObservability
import ServiceLifecycle

/// The upstream Azure provider's HTTP health endpoint (`--healthz-port`, `--healthz-path`,
/// `--healthz-timeout`) for `provider azure`, as a `Service`.
///
/// Promises:
/// - `GET` or `HEAD` of ``path`` (query ignored) runs ``check`` (the caller's: a `grpc.health.v1.Health/Check`
///   on the provider's own socket within `--healthz-timeout`, as upstream's handler dials its socket) and answers
///   200 `ok`, or 503 with the check's error on one line; another method on the path gets 405 with
///   `Allow: GET, HEAD`, any other path 404;
/// - the limits are the production metrics listener's (``MetricsAndHealthListener/Limits``): a request head
///   over the byte or field limit gets 431, a request announcing a body 413, a malformed one 400, each answered
///   with `Connection: close`, then half-closed and closed after the close linger (so the client reads the answer
///   rather than a reset); a connection idle for the idle timeout is closed; at most
///   the connection limit are open, a new one beyond it closing the one idle the longest, so a fresh probe is
///   always served; requests on one connection are answered in order, one at a time, and nothing more is read
///   while one is answered.
///
/// Every connection lives on one event loop of `MultiThreadedEventLoopGroup.singleton`. ``run()`` binds, reports
/// the port through `onListening`, serves until graceful shutdown or cancellation, then closes the server and
/// every open connection.
package struct HealthzListener: Service {
    /// The answer of one health check: `nil` when healthy, else the reason (one line, no secret).
    package typealias Check = @Sendable () async -> String?

    /// Where it binds (parsed as `--metrics-addr` is: `host:port`, `[v6]:port` or `:port`).
    package let listenHost: MetricsAndHealthListener.ListenHost
    /// The port (0: an ephemeral one, reported through `onListening`).
    package let port: Int
    /// The health path, e.g. `/healthz`.
    package let path: String
    /// The limits in force.
    package let limits: MetricsAndHealthListener.Limits
    private let check: Check
    private let logger: Logger
    private let onListening: @Sendable (Int) -> Void

    /// A listener on `address` answering `path` with `check`.
    ///
    /// - Throws: ``MetricsAddressError`` when `address` is not `host:port` or `:port`;
    ///   ``HealthzPathError`` when `path` does not start with `/`.
    package init(
        address: String,
        path: String,
        limits: MetricsAndHealthListener.Limits = .init(),
        logger: Logger,
        check: @escaping Check,
        onListening: @escaping @Sendable (Int) -> Void = { _ in }
    ) throws {
        guard path.hasPrefix("/"), !path.contains(where: { $0 == " " || $0 == "?" || $0 == "#" }) else {
            throw HealthzPathError(path: path)
        }
        (listenHost, port) = try MetricsAndHealthListener.parse(address: address)
        self.path = path
        var sane = limits
        sane.maxRequestHeadBytes = max(1, limits.maxRequestHeadBytes)
        sane.maxHeaderFields = max(1, limits.maxHeaderFields)
        sane.maxConcurrentConnections = max(1, limits.maxConcurrentConnections)
        sane.idleTimeout = max(.milliseconds(1), limits.idleTimeout)
        sane.closeLinger = max(.milliseconds(1), limits.closeLinger)
        sane.listenBacklog = min(max(1, limits.listenBacklog), Int(Int32.max))
        self.limits = sane
        self.logger = logger
        self.check = check
        self.onListening = onListening
    }

    /// Binds, reports the port, serves until graceful shutdown or cancellation, then closes everything.
    ///
    /// - Throws: when the address cannot be bound; nothing after that.
    package func run() async throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let limits = self.limits
        let registry = try await loop.submit {
            NIOLoopBound(HealthzConnections(capacity: limits.maxConcurrentConnections), eventLoop: loop)
        }.get()
        let channel = try await bind(on: loop, registry: registry)
        let bound = channel.localAddress?.port ?? port
        logger.info("healthz listening", metadata: ["healthz.port": "\(bound)", "healthz.path": "\(path)"])
        onListening(bound)
        try? await gracefulShutdown()
        try? await channel.close().get()
        try? await loop.submit { registry.value.closeAll() }.get()
    }

    private func bind(on loop: any EventLoop, registry: NIOLoopBound<HealthzConnections>) async throws -> any Channel {
        switch listenHost {
        case .allInterfaces:
            do {
                return try await bootstrap(on: loop, registry: registry, dualStack: true)
                    .bind(to: try SocketAddress(ipAddress: "::", port: port)).get()
            } catch let error as IOError where [EAFNOSUPPORT, EADDRNOTAVAIL, EPROTONOSUPPORT].contains(error.errnoCode) {
                return try await bootstrap(on: loop, registry: registry, dualStack: false)
                    .bind(to: try SocketAddress(ipAddress: "0.0.0.0", port: port)).get()
            }
        case .host(let host):
            return try await bootstrap(on: loop, registry: registry, dualStack: false).bind(host: host, port: port).get()
        }
    }

    private func bootstrap(on loop: any EventLoop, registry: NIOLoopBound<HealthzConnections>, dualStack: Bool) -> ServerBootstrap {
        let limits = self.limits
        let path = self.path
        let check = self.check
        var bootstrap = ServerBootstrap(group: loop)
            .serverChannelOption(ChannelOptions.backlog, value: Int32(limits.listenBacklog))
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            // Reads are issued by the handler only when it wants input (one request answered at a time).
            .childChannelOption(ChannelOptions.autoRead, value: false)
            .childChannelOption(
                ChannelOptions.recvAllocator,
                value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 1024, maximum: 16 * 1024)
            )
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    var decoderLimits = NIOHTTPDecoderLimitConfiguration()
                    decoderLimits.maxHeaderFieldSize = limits.maxRequestHeadBytes
                    decoderLimits.maxHeaderListSize = limits.maxRequestHeadBytes
                    decoderLimits.maxHeaderFieldCount = limits.maxHeaderFields
                    let pipeline = channel.pipeline.syncOperations
                    try pipeline.configureHTTPServerPipeline(
                        withPipeliningAssistance: false,
                        withServerUpgrade: nil,
                        withErrorHandling: false,
                        withOutboundHeaderValidation: true,
                        withEncoderConfiguration: HTTPResponseEncoder.Configuration(),
                        withDecoderLimitConfiguration: decoderLimits
                    )
                    let budget = UnansweredBytes(limit: limits.maxRequestHeadBytes)
                    try pipeline.addHandler(InboundByteLimiter(budget: budget), position: .first)
                    try pipeline.addHandler(
                        HealthzHandler(
                            registry: registry.value,
                            budget: budget,
                            path: path,
                            idleTimeout: limits.idleTimeout,
                            closeLinger: limits.closeLinger,
                            check: check
                        )
                    )
                }
            }
        if dualStack {
            bootstrap = bootstrap.serverChannelOption(ChannelOptions.Types.SocketOption(level: .ipv6, name: .ipv6_v6only), value: 0)
        }
        return bootstrap
    }
}

/// `--healthz-path` is not an absolute path.
package struct HealthzPathError: Error, CustomStringConvertible {
    /// The rejected value.
    package var path: String
    /// `--healthz-path <path>: expected an absolute path such as /healthz`.
    package var description: String { "--healthz-path \(path): expected an absolute path such as /healthz" }
}

/// The open connections of one listener, on its single event loop (no lock needed).
private final class HealthzConnections {
    private var entries: [ObjectIdentifier: (channel: any Channel, idleSince: NIODeadline)] = [:]
    private let capacity: Int
    private var closed = false

    init(capacity: Int) {
        self.capacity = capacity
    }

    /// Admits `channel`, closing the longest-idle connections while full; `false` after ``closeAll()``.
    func admit(_ channel: any Channel) -> Bool {
        guard !closed else { return false }
        while entries.count >= capacity, let victim = entries.min(by: { $0.value.idleSince < $1.value.idleSince }) {
            entries.removeValue(forKey: victim.key)
            victim.value.channel.close(promise: nil)
        }
        entries[ObjectIdentifier(channel)] = (channel, .now())
        return true
    }

    /// `channel` finished a request now (or is busy: `distantFuture` keeps it from being evicted mid-check).
    func mark(_ channel: any Channel, idleSince: NIODeadline) {
        entries[ObjectIdentifier(channel)]?.idleSince = idleSince
    }

    func remove(_ channel: any Channel) {
        entries.removeValue(forKey: ObjectIdentifier(channel))
    }

    func closeAll() {
        closed = true
        let channels = entries.values.map(\.channel)
        entries.removeAll()
        for channel in channels { channel.close(promise: nil) }
    }
}

/// The bytes a connection sent that no answer has consumed yet. Bodies are refused, so every such byte belongs
/// to a request head; more than `limit` of them means a head over the limit (the request line included, which
/// the HTTP decoder's own limits do not bound). Shared by the two handlers of one connection, on its loop.
private final class UnansweredBytes {
    let limit: Int
    var count = 0
    init(limit: Int) {
        self.limit = limit
    }
}

/// First in the pipeline: counts unanswered bytes and, past the limit, drops all later input and tells the
/// health handler (which answers 431 and closes).
private final class InboundByteLimiter: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    /// User inbound event: more unanswered bytes than the limit.
    struct HeadTooLarge: Sendable {}

    private let budget: UnansweredBytes
    private var tripped = false

    init(budget: UnansweredBytes) {
        self.budget = budget
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !tripped else { return }
        budget.count += unwrapInboundIn(data).readableBytes
        guard budget.count <= budget.limit else {
            tripped = true
            context.fireUserInboundEventTriggered(HeadTooLarge())
            return
        }
        context.fireChannelRead(data)
    }
}

/// Answers the health path, refuses bodies, times idle connections out, and owns the connection's reads
/// (`autoRead` is off): a read is issued only while no request is being answered, and heads that arrived in the
/// same read wait their turn, so answers go out in order.
private final class HealthzHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let registry: HealthzConnections
    private let budget: UnansweredBytes
    private let path: String
    private let idleTimeout: Duration
    private let closeLinger: Duration
    private let check: HealthzListener.Check
    private var closing = false
    /// A request is being answered (its check runs).
    private var busy = false
    /// Heads received while busy, answered in order.
    private var waiting: [HTTPRequestHead] = []
    private var timer: Scheduled<Void>?

    init(
        registry: HealthzConnections,
        budget: UnansweredBytes,
        path: String,
        idleTimeout: Duration,
        closeLinger: Duration,
        check: @escaping HealthzListener.Check
    ) {
        self.registry = registry
        self.budget = budget
        self.path = path
        self.idleTimeout = idleTimeout
        self.closeLinger = closeLinger
        self.check = check
    }

    func channelActive(context: ChannelHandlerContext) {
        guard registry.admit(context.channel) else {
            closing = true
            context.close(promise: nil)
            return
        }
        arm(context: context)
        context.read()
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        closing = true
        timer?.cancel()
        timer = nil
        registry.remove(context.channel)
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing, case .head(let head) = unwrapInboundIn(data) else { return }
        if busy {
            waiting.append(head)
        } else {
            answer(head, context: context)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if !closing, !busy, waiting.isEmpty { context.read() }
        context.fireChannelReadComplete()
    }

    /// Answers one head; the check runs off the event loop and its answer is written back on it.
    private func answer(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        let version: HTTPVersion = head.version == .http1_0 ? .http1_0 : .http1_1
        if head.headers.contains(name: "transfer-encoding")
            || head.headers["content-length"].contains(where: { $0.trimmingCharacters(in: " \t") != "0" })
        {
            write(.payloadTooLarge, version: version, body: "payload too large\n", keepAlive: false, context: context)
            return
        }
        guard head.uri.prefix(while: { $0 != "?" }) == path else {
            write(.notFound, version: version, body: "not found\n", includeBody: head.method != .HEAD, keepAlive: head.isKeepAlive, context: context)
            return
        }
        guard head.method == .GET || head.method == .HEAD else {
            write(
                .methodNotAllowed, version: version, body: "method not allowed\n", extraHeaders: [("Allow", "GET, HEAD")],
                keepAlive: head.isKeepAlive, context: context
            )
            return
        }
        // Busy: not evicted, not timed out, nothing more read, while the check runs.
        busy = true
        timer?.cancel()
        timer = nil
        registry.mark(context.channel, idleSince: .distantFuture)
        let promise = context.eventLoop.makePromise(of: String?.self)
        let check = self.check
        promise.completeWithTask { await check() }
        let includeBody = head.method == .GET
        let keepAlive = head.isKeepAlive
        promise.futureResult.assumeIsolated().whenSuccess { [self] failure in
            busy = false
            guard !closing else { return }
            if let failure {
                write(.serviceUnavailable, version: version, body: failure.singleLine + "\n", includeBody: includeBody, keepAlive: keepAlive, context: context)
            } else {
                write(.ok, version: version, body: "ok", includeBody: includeBody, keepAlive: keepAlive, context: context)
            }
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is InboundByteLimiter.HeadTooLarge {
            write(.requestHeaderFieldsTooLarge, version: .http1_1, body: "request header fields too large\n", keepAlive: false, context: context)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        switch error as? HTTPParserError {
        case .headerOverflow?:
            write(.requestHeaderFieldsTooLarge, version: .http1_1, body: "request header fields too large\n", keepAlive: false, context: context)
        case .some:
            write(.badRequest, version: .http1_1, body: "bad request\n", keepAlive: false, context: context)
        case nil:
            closing = true
            context.close(promise: nil)
        }
    }

    /// Writes one whole answer. Kept alive, the connection goes on with the next waiting head or a read; else
    /// it half-closes once the answer is out and closes after the linger, so a client still sending (an
    /// oversized head) reads the answer instead of a reset.
    private func write(
        _ status: HTTPResponseStatus,
        version: HTTPVersion,
        body: String,
        includeBody: Bool = true,
        extraHeaders: [(String, String)] = [],
        keepAlive: Bool,
        context: ChannelHandlerContext
    ) {
        guard !closing else { return }
        let bytes = context.channel.allocator.buffer(string: body)
        var headers = HTTPHeaders([("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", String(bytes.readableBytes))])
        headers.add(contentsOf: extraHeaders)
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: status, headers: headers))), promise: nil)
        if includeBody, bytes.readableBytes > 0 { context.write(wrapOutboundOut(.body(.byteBuffer(bytes))), promise: nil) }
        let written = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if keepAlive {
            registry.mark(context.channel, idleSince: .now())
            arm(context: context)
            if waiting.isEmpty {
                // Every byte read so far is answered: the next request starts a fresh budget.
                budget.count = 0
                context.read()
            } else {
                answer(waiting.removeFirst(), context: context)
            }
            return
        }
        closing = true
        waiting = []
        timer?.cancel()
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(closeLinger)) { [weak self] in
            self?.timer = nil
            context.close(promise: nil)
        }
        written.assumeIsolated().whenComplete { result in
            switch result {
            case .success: context.close(mode: .output, promise: nil)
            case .failure: context.close(promise: nil)
            }
        }
    }

    /// Closes the connection after the idle timeout unless a request completes first.
    private func arm(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(idleTimeout)) { [weak self] in
            self?.timer = nil
            self?.closing = true
            context.close(promise: nil)
        }
    }
}

extension String {
    /// The text with line breaks turned into spaces (a 503 body is one line).
    fileprivate var singleLine: String {
        String(map { $0 == "\n" || $0 == "\r" ? " " : $0 })
    }
}

extension Substring {
    /// Without leading and trailing characters of `set`.
    fileprivate func trimmingCharacters(in set: String) -> Substring {
        let trimmed = drop { set.contains($0) }
        return trimmed[..<(trimmed.lastIndex { !set.contains($0) }.map(trimmed.index(after:)) ?? trimmed.startIndex)]
    }
}

extension String {
    /// Without leading and trailing characters of `set`.
    fileprivate func trimmingCharacters(in set: String) -> Substring {
        Substring(self).trimmingCharacters(in: set)
    }
}
