import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The driver's `/metrics` (Prometheus text) and `/healthz` listener on `--metrics-addr`, as a `Service`.
///
/// Promises, whatever the peer sends:
/// - only `GET` and `HEAD` of `/metrics` and `/healthz` are answered with 200 (query string ignored); another
///   method on those paths gets 405 with `Allow: GET, HEAD`, another path 404;
/// - with a ``HealthCheck``, `/healthz` answers 200 only when the check passes, else 503 with its reason; no
///   further request of that connection is read until the check has answered;
/// - a request head longer than ``Limits/maxRequestHeadBytes`` gets 431 and the connection is closed;
/// - a request that announces a body (`Content-Length` > 0 or any `Transfer-Encoding`) gets 413 and the connection
///   is closed without reading the body: no socket read is issued after that head (`autoRead` is off), so at most
///   the rest of the read that carried the head (≤ 16 KiB) is ever taken from the socket, and it is discarded;
/// - a connection that completes no request for ``Limits/idleTimeout`` is closed (a slow or partial head does not
///   count as activity);
/// - at most ``Limits/maxConcurrentConnections`` connections are open; a new connection beyond that evicts the
///   one idle the longest, so a fresh `/healthz` probe is always served;
/// - a client that sends requests faster than it reads the answers is disconnected once unread answers exceed
///   the channel's write-buffer high-water mark, so unread output stays bounded too.
///
/// Every connection lives on one event loop of `MultiThreadedEventLoopGroup.singleton`, so the connection table
/// needs no lock. ``run()`` binds, reports the port through `onListening`, serves until graceful shutdown (or
/// cancellation), then closes the server channel and every open connection. Call ``run()`` once per value.
package struct MetricsAndHealthListener: Service {
    /// The bounds that make the listener safe to expose to untrusted clients. Values below 1 are raised to 1.
    package struct Limits: Sendable, Hashable {
        /// Most bytes a request head (request line, headers, terminating blank line) may take; beyond → 431.
        package var maxRequestHeadBytes: Int
        /// Most header fields a request head may carry; beyond → 431.
        package var maxHeaderFields: Int
        /// Most connections open at once; a new connection beyond it evicts the one idle the longest.
        package var maxConcurrentConnections: Int
        /// How long a connection may go without completing a request before it is closed.
        package var idleTimeout: Duration
        /// How long a connection answered with an error (413, 431, 400) or `Connection: close` stays half-closed
        /// (our side sent FIN, nothing more is read) before it is closed, so the client can read the answer
        /// before a reset.
        package var closeLinger: Duration
        /// The listen backlog of the server socket.
        package var listenBacklog: Int

        /// Defaults sized for a Prometheus scraper plus kubelet probes: 8 KiB heads, 100 header fields,
        /// 128 connections, 30 s idle timeout, 1 s close linger, backlog 256.
        package init(
            maxRequestHeadBytes: Int = 8 * 1024,
            maxHeaderFields: Int = 100,
            maxConcurrentConnections: Int = 128,
            idleTimeout: Duration = .seconds(30),
            closeLinger: Duration = .seconds(1),
            listenBacklog: Int = 256
        ) {
            self.maxRequestHeadBytes = maxRequestHeadBytes
            self.maxHeaderFields = maxHeaderFields
            self.maxConcurrentConnections = maxConcurrentConnections
            self.idleTimeout = idleTimeout
            self.closeLinger = closeLinger
            self.listenBacklog = listenBacklog
        }

        /// The same limits with every value raised to its minimum (1 byte, 1 field, 1 connection, 1 ms).
        fileprivate var sanitized: Limits {
            var limits = self
            limits.maxRequestHeadBytes = max(1, maxRequestHeadBytes)
            limits.maxHeaderFields = max(1, maxHeaderFields)
            limits.maxConcurrentConnections = max(1, maxConcurrentConnections)
            limits.idleTimeout = max(.milliseconds(1), idleTimeout)
            limits.closeLinger = max(.milliseconds(1), closeLinger)
            limits.listenBacklog = min(max(1, listenBacklog), Int(Int32.max))
            return limits
        }
    }

    /// Where the listener binds, as parsed from `--metrics-addr`.
    package enum ListenHost: Sendable, Hashable {
        /// `:port`: every interface, IPv6 `::` dual-stack when the host has IPv6, else `0.0.0.0`.
        case allInterfaces
        /// `host:port` or `[v6]:port`: an IP literal, or a name resolved once at start (IPv4 preferred, as Go's
        /// `net.Listen`).
        case host(String)
    }

    /// The host part of `--metrics-addr`.
    package let listenHost: ListenHost
    /// The port of `--metrics-addr` (0: an ephemeral port, reported through `onListening`).
    package let port: Int
    /// The limits in force (already sanitized).
    package let limits: Limits
    /// The series served on `/metrics`.
    private let metrics: PrometheusDriverMetrics
    /// What `/healthz` asks; `nil` answers 200 as long as the process serves.
    private let healthCheck: HealthCheck?
    /// Where the listener logs its address and, at debug level, refused connections.
    private let logger: Logger
    /// Called once with the bound port, before any request is served.
    private let onListening: @Sendable (Int) -> Void
    /// Live connection counts, shared with the event loop that updates them.
    private let counts = ConnectionCounts()

    /// Validates `address` (upstream's `--metrics-addr`: `host:port`, `[v6]:port` or `:port`, port 0–65535).
    ///
    /// - Throws: ``MetricsAddressError`` if `address` is not of that form. Names are resolved by ``run()``.
    package init(
        address: String,
        metrics: PrometheusDriverMetrics,
        logger: Logger,
        limits: Limits = Limits(),
        healthCheck: HealthCheck? = nil,
        onListening: @escaping @Sendable (Int) -> Void = { _ in }
    ) throws {
        (self.listenHost, self.port) = try Self.parse(address: address)
        self.limits = limits.sanitized
        self.metrics = metrics
        self.healthCheck = healthCheck
        self.logger = logger
        self.onListening = onListening
    }

    /// Connections open right now (accepted and not yet closed); never above ``Limits/maxConcurrentConnections``.
    package var openConnections: Int { counts.snapshot.open }
    /// The most connections that were ever open at once.
    package var peakOpenConnections: Int { counts.snapshot.peak }
    /// How many connections were closed to make room for a newer one.
    package var evictedConnections: Int { counts.snapshot.evicted }

    /// Splits `address` the way Go's `net.SplitHostPort` does (an IPv6 host must be bracketed), port numeric.
    ///
    /// - Throws: ``MetricsAddressError`` when there is no port, the port is not 0–65535, or the host is malformed.
    package static func parse(address: String) throws(MetricsAddressError) -> (ListenHost, Int) {
        let error = MetricsAddressError(address: address)
        guard let colon = address.lastIndex(of: ":") else { throw error }
        let portText = address[address.index(after: colon)...]
        guard (1...5).contains(portText.count), portText.allSatisfy({ $0.isASCII && $0.isNumber }),
              let port = Int(portText), (0...65535).contains(port)
        else { throw error }
        let hostText = address[..<colon]
        if hostText.isEmpty { return (.allInterfaces, port) }
        if hostText.first == "[" {
            guard hostText.count > 2, hostText.last == "]" else { throw error }
            let inner = hostText.dropFirst().dropLast()
            guard inner.contains(":"), !inner.contains("["), !inner.contains("]") else { throw error }
            return (.host(String(inner)), port)
        }
        guard !hostText.contains(":"), !hostText.contains("["), !hostText.contains("]") else { throw error }
        return (.host(String(hostText)), port)
    }

    /// What `/healthz` checks beyond the process answering HTTP.
    package struct HealthCheck: Sendable {
        /// `nil` when healthy, otherwise why not (served as the 503 body and logged: never secret data).
        package var check: @Sendable () async -> String?

        /// A check that runs `check` for every `/healthz` request (it should share work between callers).
        package init(_ check: @escaping @Sendable () async -> String?) {
            self.check = check
        }
    }

    /// Binds, reports the port, serves until graceful shutdown or cancellation, then closes the server channel
    /// and every open connection before returning.
    ///
    /// - Throws: when the address cannot be resolved or bound; nothing after that.
    package func run() async throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let limits = self.limits
        let counts = self.counts
        let registry = try await loop.submit {
            NIOLoopBound(ConnectionRegistry(capacity: limits.maxConcurrentConnections, counts: counts), eventLoop: loop)
        }.get()
        let serverChannel = try await bind(on: loop, registry: registry)
        let bound = serverChannel.localAddress
        let port = bound?.port ?? self.port
        logger.info("metrics listening", metadata: ["metrics.address": "\(Self.display(bound, port: port))"])
        onListening(port)
        try? await gracefulShutdown()
        try? await serverChannel.close().get()
        try? await loop.submit { registry.value.closeAll() }.get()
        logger.debug("metrics listener stopped")
    }

    /// Binds the server channel where ``listenHost`` says.
    private func bind(on loop: any EventLoop, registry: NIOLoopBound<ConnectionRegistry>) async throws -> any Channel {
        switch listenHost {
        case .allInterfaces:
            do {
                let any6 = try SocketAddress(ipAddress: "::", port: port)
                return try await bootstrap(on: loop, registry: registry, dualStack: true).bind(to: any6).get()
            } catch let error as IOError where Self.ipv6Unavailable.contains(error.errnoCode) {
                logger.debug("no IPv6, metrics listener falls back to 0.0.0.0", metadata: ["error": "\(error)"])
                let any4 = try SocketAddress(ipAddress: "0.0.0.0", port: port)
                return try await bootstrap(on: loop, registry: registry, dualStack: false).bind(to: any4).get()
            }
        case .host(let host):
            let address: SocketAddress
            if let literal = try? SocketAddress(ipAddress: host, port: port) {
                address = literal
            } else {
                let port = self.port
                address = try await NIOThreadPool.singleton.runIfActive { try Self.resolve(host: host, port: port) }
            }
            return try await bootstrap(on: loop, registry: registry, dualStack: false).bind(to: address).get()
        }
    }

    /// `errno` values meaning "this host has no usable IPv6", for the `:port` fallback to `0.0.0.0`.
    private static let ipv6Unavailable: Set<CInt> = [EAFNOSUPPORT, EADDRNOTAVAIL, EPROTONOSUPPORT]

    /// A server bootstrap whose every child runs the bounded HTTP/1.1 pipeline on `loop`.
    private func bootstrap(on loop: any EventLoop, registry: NIOLoopBound<ConnectionRegistry>, dualStack: Bool) -> ServerBootstrap {
        let limits = self.limits
        let metrics = self.metrics
        let healthCheck = self.healthCheck
        let logger = self.logger
        var bootstrap = ServerBootstrap(group: loop)
            .serverChannelOption(ChannelOptions.backlog, value: Int32(limits.listenBacklog))
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            // Reads are issued by `MetricsHTTPHandler` only when it wants more input: never after a refused head.
            .childChannelOption(ChannelOptions.autoRead, value: false)
            .childChannelOption(
                ChannelOptions.recvAllocator,
                value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 1024, maximum: 16 * 1024)
            )
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let decoderLimits = {
                        var decoderLimits = NIOHTTPDecoderLimitConfiguration()
                        decoderLimits.maxHeaderFieldSize = limits.maxRequestHeadBytes
                        decoderLimits.maxHeaderListSize = limits.maxRequestHeadBytes
                        decoderLimits.maxHeaderFieldCount = limits.maxHeaderFields
                        return decoderLimits
                    }()
                    let pipeline = channel.pipeline.syncOperations
                    try pipeline.configureHTTPServerPipeline(
                        withPipeliningAssistance: false,
                        withServerUpgrade: nil,
                        withErrorHandling: false,
                        withOutboundHeaderValidation: true,
                        withEncoderConfiguration: HTTPResponseEncoder.Configuration(),
                        withDecoderLimitConfiguration: decoderLimits
                    )
                    try pipeline.addHandler(RequestHeadLimiter(limit: limits.maxRequestHeadBytes), position: .first)
                    try pipeline.addHandler(
                        MetricsHTTPHandler(
                            registry: registry.value,
                            metrics: metrics,
                            healthCheck: healthCheck,
                            limits: limits,
                            logger: logger
                        )
                    )
                }
            }
        if dualStack {
            bootstrap = bootstrap.serverChannelOption(
                ChannelOptions.Types.SocketOption(level: .ipv6, name: .ipv6_v6only),
                value: 0
            )
        }
        return bootstrap
    }

    /// Resolves `host` (blocking `getaddrinfo`; run off the event loops), preferring the first IPv4 address, else the
    /// first IPv6 one.
    ///
    /// - Throws: ``MetricsAddressResolutionError`` when the name has no address.
    private static func resolve(host: String, port: Int) throws -> SocketAddress {
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, nil, nil, &list)
        guard status == 0, let first = list else { throw MetricsAddressResolutionError(host: host, status: status) }
        defer { freeaddrinfo(first) }
        var ipv4: SocketAddress?
        var ipv6: SocketAddress?
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let info = cursor, ipv4 == nil {
            cursor = info.pointee.ai_next
            guard let raw = info.pointee.ai_addr else { continue }
            switch info.pointee.ai_family {
            case AF_INET where Int(info.pointee.ai_addrlen) >= MemoryLayout<sockaddr_in>.size:
                var address = SocketAddress(UnsafeRawPointer(raw).loadUnaligned(as: sockaddr_in.self), host: host)
                address.port = port
                ipv4 = address
            case AF_INET6 where ipv6 == nil && Int(info.pointee.ai_addrlen) >= MemoryLayout<sockaddr_in6>.size:
                var address = SocketAddress(UnsafeRawPointer(raw).loadUnaligned(as: sockaddr_in6.self), host: host)
                address.port = port
                ipv6 = address
            default:
                continue
            }
        }
        guard let address = ipv4 ?? ipv6 else { throw MetricsAddressResolutionError(host: host, status: status) }
        return address
    }

    /// `ip:port`, `[ip6]:port`, for the log line (the end-to-end tests read `127.0.0.1:<port>` from it).
    private static func display(_ address: SocketAddress?, port: Int) -> String {
        switch address {
        case .v4?: "\(address?.ipAddress ?? "0.0.0.0"):\(port)"
        case .v6?: "[\(address?.ipAddress ?? "::")]:\(port)"
        default: ":\(port)"
        }
    }
}

/// `--metrics-addr` is not `host:port`.
package struct MetricsAddressError: Error, CustomStringConvertible {
    /// The rejected flag value.
    package var address: String
    /// `--metrics-addr <addr>: expected host:port or :port`.
    package var description: String { "--metrics-addr \(address): expected host:port or :port" }
}

/// The host of `--metrics-addr` is a name that does not resolve to any IPv4 or IPv6 address.
package struct MetricsAddressResolutionError: Error, CustomStringConvertible {
    /// The name that did not resolve.
    package var host: String
    /// `getaddrinfo`'s status (0 when it answered but with no usable address).
    package var status: CInt
    /// `--metrics-addr: cannot resolve <host>: <reason>`.
    package var description: String {
        let reason = status == 0 ? "no IPv4 or IPv6 address" : String(cString: gai_strerror(status))
        return "--metrics-addr: cannot resolve \(host): \(reason)"
    }
}

/// Connection counts readable from any thread, written by the listener's event loop.
private final class ConnectionCounts: Sendable {
    /// One consistent reading of the counts.
    struct Snapshot {
        /// Connections open now.
        var open = 0
        /// The most ever open at once.
        var peak = 0
        /// Connections closed to make room for a newer one.
        var evicted = 0
    }

    /// The counts, behind a lock (read by tests and metrics from other threads).
    private let state = Mutex(Snapshot())

    /// A copy of the current counts.
    var snapshot: Snapshot { state.withLock { $0 } }

    /// Records the open count after an admission or a close, and the peak.
    func setOpen(_ open: Int) {
        state.withLock { counts in
            counts.open = open
            counts.peak = max(counts.peak, open)
        }
    }

    /// Records one eviction.
    func evicted() {
        state.withLock { $0.evicted += 1 }
    }
}

/// The open connections of one listener. Lives on the listener's single event loop (wrapped in `NIOLoopBound`
/// wherever a `Sendable` closure carries it), so it needs no lock.
private final class ConnectionRegistry {
    /// One open connection and the time it last became idle (accepted, or finished answering a request).
    private struct Entry {
        /// The connection.
        let channel: any Channel
        /// When it last became idle; `distantPast` once it is closing, so it is evicted first.
        var idleSince: NIODeadline
    }

    /// Open connections by ID; at most `capacity` entries.
    private var entries: [UInt64: Entry] = [:]
    /// The next connection ID.
    private var nextID: UInt64 = 0
    /// The cap on open connections (at least 1).
    private let capacity: Int
    /// Where the counts are published.
    private let counts: ConnectionCounts
    /// Set by `closeAll()`: later connections are refused.
    private var closed = false

    /// A registry for at most `capacity` connections, publishing its counts to `counts`.
    init(capacity: Int, counts: ConnectionCounts) {
        self.capacity = max(1, capacity)
        self.counts = counts
    }

    /// Admits `channel`, first evicting the connections idle the longest while the table is full.
    ///
    /// - Returns: the connection's ID, or `nil` after `closeAll()` (the caller closes the channel). O(capacity)
    ///   when the table is full.
    func admit(_ channel: any Channel) -> UInt64? {
        guard !closed else { return nil }
        while entries.count >= capacity, let victim = entries.min(by: { $0.value.idleSince < $1.value.idleSince }) {
            entries.removeValue(forKey: victim.key)
            counts.evicted()
            victim.value.channel.close(promise: nil)
        }
        let id = nextID
        nextID &+= 1
        entries[id] = Entry(channel: channel, idleSince: .now())
        counts.setOpen(entries.count)
        return id
    }

    /// Records that connection `id` finished a request now.
    func markIdle(_ id: UInt64) {
        entries[id]?.idleSince = .now()
    }

    /// Records that connection `id` is closing: it becomes the first to evict.
    func markClosing(_ id: UInt64) {
        entries[id]?.idleSince = .distantPast
    }

    /// Forgets connection `id` (closed). Unknown IDs (already evicted) are ignored.
    func remove(_ id: UInt64) {
        if entries.removeValue(forKey: id) != nil {
            counts.setOpen(entries.count)
        }
    }

    /// Closes every connection and refuses later ones.
    func closeAll() {
        closed = true
        let channels = entries.values.map(\.channel)
        entries.removeAll()
        counts.setOpen(0)
        for channel in channels { channel.close(promise: nil) }
    }
}

/// Sits first in the pipeline and counts the bytes of each request head up to its blank line (`LF LF` or
/// `LF CR LF`). When a head passes `limit` bytes it forwards only the heads completed before it, drops everything
/// after, and fires ``HeadTooLarge`` to the HTTP handler. Holds no bytes itself: only a counter and a 3-state
/// scanner.
private final class RequestHeadLimiter: ChannelInboundHandler, RemovableChannelHandler {
    /// Raw bytes from the socket.
    typealias InboundIn = ByteBuffer
    /// The same bytes, minus any after an oversized head.
    typealias InboundOut = ByteBuffer

    /// User inbound event: a request head exceeded the limit.
    struct HeadTooLarge: Sendable, Hashable {}

    /// Where the scanner is relative to the blank line that ends a head.
    private enum Scan {
        /// Inside a line.
        case inLine
        /// Just after a line feed.
        case afterLineFeed
        /// Just after a line feed and a carriage return.
        case afterLineFeedReturn
    }

    /// The most bytes a head may take.
    private let limit: Int
    /// Bytes of the current head seen so far.
    private var headBytes = 0
    /// The scanner's state.
    private var scan = Scan.inLine
    /// Set once a head was too large: all later input is dropped.
    private var tripped = false

    /// A limiter of heads to `limit` bytes.
    init(limit: Int) {
        self.limit = limit
    }

    /// Scans `data`; forwards it, or on overflow forwards the completed heads and fires ``HeadTooLarge``.
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !tripped else { return }
        let buffer = unwrapInboundIn(data)
        // Offset just past the last head that ended in this buffer, and whether a head overflowed.
        let (lastHeadEnd, overflowed) = buffer.withUnsafeReadableBytes { bytes -> (Int, Bool) in
            var lastHeadEnd = 0
            for (offset, byte) in bytes.enumerated() {
                headBytes += 1
                if headBytes > limit { return (lastHeadEnd, true) }
                switch (scan, byte) {
                case (.afterLineFeed, UInt8(ascii: "\n")), (.afterLineFeedReturn, UInt8(ascii: "\n")):
                    headBytes = 0
                    scan = .inLine
                    lastHeadEnd = offset + 1
                case (.afterLineFeed, UInt8(ascii: "\r")):
                    scan = .afterLineFeedReturn
                case (_, UInt8(ascii: "\n")):
                    scan = .afterLineFeed
                default:
                    scan = .inLine
                }
            }
            return (lastHeadEnd, false)
        }
        guard overflowed else {
            context.fireChannelRead(data)
            return
        }
        tripped = true
        if lastHeadEnd > 0, let completed = buffer.getSlice(at: buffer.readerIndex, length: lastHeadEnd) {
            context.fireChannelRead(wrapInboundOut(completed))
        }
        context.fireUserInboundEventTriggered(HeadTooLarge())
    }
}

/// Answers `/metrics` and `/healthz`, enforces the body refusal, idle timeout and back-pressure rules, and owns
/// the connection's reads (`autoRead` is off) and its registry entry.
private final class MetricsHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    /// Decoded request parts.
    typealias InboundIn = HTTPServerRequestPart
    /// Response parts for `HTTPResponseEncoder`.
    typealias OutboundOut = HTTPServerResponsePart

    /// The connection's life.
    private enum State {
        /// Reading and answering requests.
        case open
        /// Waiting for the health check of a `/healthz` request; nothing is read meanwhile.
        case checkingHealth
        /// Answered for the last time; nothing more is read or answered.
        case closing
    }

    /// The listener's connection table (same event loop).
    private let registry: ConnectionRegistry
    /// The series served on `/metrics`.
    private let metrics: PrometheusDriverMetrics
    /// What `/healthz` asks, if anything.
    private let healthCheck: MetricsAndHealthListener.HealthCheck?
    /// Idle timeout and linger.
    private let limits: MetricsAndHealthListener.Limits
    /// For debug lines about refused requests.
    private let logger: Logger
    /// The connection's state.
    private var state = State.open
    /// Request heads that arrived while a health check was running, answered in order after it.
    private var queuedHeads: [HTTPRequestHead] = []
    /// This connection's registry ID, once active.
    private var id: UInt64?
    /// The pending idle-timeout or linger close.
    private var timer: Scheduled<Void>?

    /// A handler for one connection of the listener that owns `registry`.
    init(
        registry: ConnectionRegistry,
        metrics: PrometheusDriverMetrics,
        healthCheck: MetricsAndHealthListener.HealthCheck?,
        limits: MetricsAndHealthListener.Limits,
        logger: Logger
    ) {
        self.registry = registry
        self.metrics = metrics
        self.healthCheck = healthCheck
        self.limits = limits
        self.logger = logger
    }

    /// Admits the connection (evicting the longest-idle one if full), arms the idle timer, issues the first read.
    func channelActive(context: ChannelHandlerContext) {
        guard let id = registry.admit(context.channel) else {
            state = .closing
            context.close(promise: nil)
            return
        }
        self.id = id
        arm(context: context, after: limits.idleTimeout)
        context.read()
        context.fireChannelActive()
    }

    /// Forgets the connection and its timer.
    func channelInactive(context: ChannelHandlerContext) {
        state = .closing
        timer?.cancel()
        timer = nil
        if let id { registry.remove(id) }
        id = nil
        context.fireChannelInactive()
    }

    /// Cancels the timer if the handler leaves a live pipeline.
    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    /// Answers each request head; body parts never reach an open connection (their head closed it).
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let head) = unwrapInboundIn(data) else { return }
        switch state {
        case .open: answer(head, context: context)
        // Pipelined behind a /healthz still being checked: answered in order once it is (at most one read's worth).
        case .checkingHealth: queuedHeads.append(head)
        case .closing: break
        }
    }

    /// Asks for more input while the connection is open and the peer keeps up with our answers.
    func channelReadComplete(context: ChannelHandlerContext) {
        if case .open = state, context.channel.isWritable { context.read() }
        context.fireChannelReadComplete()
    }

    /// Resumes reading once the peer has drained our answers.
    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if case .open = state, context.channel.isWritable { context.read() }
        context.fireChannelWritabilityChanged()
    }

    /// 431 for an oversized head reported by ``RequestHeadLimiter``.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is RequestHeadLimiter.HeadTooLarge {
            refuse(.requestHeaderFieldsTooLarge, version: .http1_1, context: context, reason: "request head too large")
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    /// 431 for the decoder's header limits, 400 for any other parse error, close for anything else.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        switch error as? HTTPParserError {
        case .headerOverflow?:
            refuse(.requestHeaderFieldsTooLarge, version: .http1_1, context: context, reason: "request head too large")
        case .some:
            refuse(.badRequest, version: .http1_1, context: context, reason: "malformed request")
        case nil:
            state = .closing
            context.close(promise: nil)
        }
    }

    /// Routes one request head and writes the whole answer.
    private func answer(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        let version: HTTPVersion = head.version == .http1_0 ? .http1_0 : .http1_1
        if head.headers.contains(name: "transfer-encoding")
            || head.headers["content-length"].contains(where: { $0.trimmingASCIISpaces != "0" }) {
            refuse(.payloadTooLarge, version: version, context: context, reason: "request has a body")
            return
        }
        guard context.channel.isWritable else {
            // The peer pipelines requests without reading the answers: stop rather than queue output.
            logger.debug("metrics client does not read its answers; closing")
            close(context: context)
            return
        }
        let path = head.uri.prefix { $0 != "?" }
        let body: String
        let contentType: String
        switch path {
        case "/metrics":
            contentType = "text/plain; version=0.0.4"
            body = head.method == .GET || head.method == .HEAD ? metrics.render() : ""
        case "/healthz":
            if let healthCheck, head.method == .GET || head.method == .HEAD {
                checkHealth(healthCheck, head: head, version: version, context: context)
                return
            }
            contentType = "text/plain"
            body = "ok"
        default:
            write(.notFound, version: version, body: "not found\n", includeBody: head.method != .HEAD, keepAlive: head.isKeepAlive, context: context)
            return
        }
        guard head.method == .GET || head.method == .HEAD else {
            write(.methodNotAllowed, version: version, body: "method not allowed\n", extraHeaders: [("Allow", "GET, HEAD")], keepAlive: head.isKeepAlive, context: context)
            return
        }
        write(.ok, version: version, contentType: contentType, body: body, includeBody: head.method == .GET, keepAlive: head.isKeepAlive, context: context)
    }

    /// Runs `healthCheck` off the event loop, then answers 200 `ok` or 503 with the reason, and reads on.
    private func checkHealth(
        _ healthCheck: MetricsAndHealthListener.HealthCheck,
        head: HTTPRequestHead,
        version: HTTPVersion,
        context: ChannelHandlerContext
    ) {
        state = .checkingHealth
        let includeBody = head.method == .GET
        let keepAlive = head.isKeepAlive
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
        Task {
            let failure = await healthCheck.check()
            bound.eventLoop.execute {
                let (handler, context) = bound.value
                handler.answerHealth(failure, version: version, includeBody: includeBody, keepAlive: keepAlive, context: context)
            }
        }
    }

    /// Writes the health answer unless the connection closed meanwhile, then resumes reading.
    private func answerHealth(_ failure: String?, version: HTTPVersion, includeBody: Bool, keepAlive: Bool, context: ChannelHandlerContext) {
        guard case .checkingHealth = state else { return }
        state = .open
        if let failure {
            logger.warning("health check failed", metadata: ["reason": "\(failure)"])
            write(.serviceUnavailable, version: version, body: failure + "\n", includeBody: includeBody, keepAlive: keepAlive, context: context)
        } else {
            write(.ok, version: version, body: "ok", includeBody: includeBody, keepAlive: keepAlive, context: context)
        }
        while case .open = state, !queuedHeads.isEmpty {
            answer(queuedHeads.removeFirst(), context: context)
        }
        if case .open = state, context.channel.isWritable { context.read() }
    }

    /// Answers `status` with `Connection: close`, then closes without reading anything more.
    private func refuse(_ status: HTTPResponseStatus, version: HTTPVersion, context: ChannelHandlerContext, reason: String) {
        if case .closing = state { return }
        logger.debug("metrics request refused", metadata: ["status": "\(status.code)", "reason": "\(reason)"])
        write(status, version: version, body: "\(status.reasonPhrase.lowercased())\n", keepAlive: false, context: context)
    }

    /// Writes one complete response. With `keepAlive` the connection is idle again afterwards; without, it half-closes
    /// once the answer is written and closes after ``MetricsAndHealthListener/Limits/closeLinger``.
    private func write(
        _ status: HTTPResponseStatus,
        version: HTTPVersion,
        contentType: String = "text/plain",
        body: String,
        includeBody: Bool = true,
        extraHeaders: [(String, String)] = [],
        keepAlive: Bool,
        context: ChannelHandlerContext
    ) {
        let bytes = context.channel.allocator.buffer(string: body)
        var headers = HTTPHeaders([("Content-Type", contentType), ("Content-Length", String(bytes.readableBytes))])
        headers.add(contentsOf: extraHeaders)
        if !keepAlive {
            headers.add(name: "Connection", value: "close")
        } else if version == .http1_0 {
            headers.add(name: "Connection", value: "keep-alive")
        }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: status, headers: headers))), promise: nil)
        if includeBody, bytes.readableBytes > 0 {
            context.write(wrapOutboundOut(.body(.byteBuffer(bytes))), promise: nil)
        }
        let written = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if keepAlive {
            if let id { registry.markIdle(id) }
            arm(context: context, after: limits.idleTimeout)
            return
        }
        state = .closing
        if let id { registry.markClosing(id) }
        arm(context: context, after: limits.closeLinger)
        written.assumeIsolated().whenComplete { result in
            switch result {
            case .success:
                context.close(mode: .output, promise: nil)
            case .failure:
                context.close(promise: nil)
            }
        }
    }

    /// Closes now, reading nothing more.
    private func close(context: ChannelHandlerContext) {
        state = .closing
        if let id { registry.markClosing(id) }
        context.close(promise: nil)
    }

    /// (Re)arms the single timer that closes the connection after `delay`.
    private func arm(context: ChannelHandlerContext, after delay: Duration) {
        timer?.cancel()
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(delay)) { [weak self] in
            self?.timer = nil
            self?.state = .closing
            context.close(promise: nil)
        }
    }
}

/// Header-value trimming for the `Content-Length` check.
extension String {
    /// The string without leading and trailing ASCII spaces and tabs.
    fileprivate var trimmingASCIISpaces: Substring {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        let head = drop(while: isSpace)
        return head[..<(head.lastIndex(where: { !isSpace($0) }).map(head.index(after:)) ?? head.startIndex)]
    }
}
