import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The one HTTP/1.1 listener of the program, as a `Service`: the driver's and the controller's `/metrics` +
/// `/healthz` on `--metrics-addr`, the provider's `--healthz-port`, and the test doubles of HTTP services (the
/// Key Vault emulator, the fake Kubernetes API server). What it serves is what it routes.
///
/// Promises, whatever the peer sends:
/// - a request for a path in ``routes`` is answered by its ``Route`` for `GET` and `HEAD` (query string ignored;
///   `HEAD` gets the headers without the body); another method on that path gets 405 with `Allow: GET, HEAD`;
///   any other path goes to the catch-all ``Responder`` when there is one, else gets 404;
/// - requests on one connection are answered in order, one at a time: while an answer is in progress (a health
///   check, a deferred or streamed response) nothing more is read from the connection, and requests that arrived
///   in the same read wait their turn;
/// - while ``Limits/maxRequestBodyBytes`` is 0 (every production listener), a request that announces a body
///   (`Content-Length` > 0 or any `Transfer-Encoding`) gets 413 and the connection is closed without reading the
///   body: no socket read is issued after that head (`autoRead` is off), so at most the rest of the read that
///   carried the head (≤ 16 KiB) is ever taken from the socket, and it is discarded. With a larger limit, a body
///   up to it reaches the responder; one announced or found to be over it gets 413 the same way;
/// - a request head longer than ``Limits/maxRequestHeadBytes`` (request line included) or with more than
///   ``Limits/maxHeaderFields`` fields gets 431, a malformed request 400; each refusal is answered with
///   `Connection: close`, then the connection is half-closed and closed after ``Limits/closeLinger`` (so the
///   client reads the answer rather than a reset). When bodies are allowed the raw head counter is off (body
///   bytes are not head bytes): the decoder still bounds the header fields, and a request line over the limit
///   is refused once decoded;
/// - a connection that completes no request for ``Limits/idleTimeout`` is closed (a slow or partial head does not
///   count as activity; a connection whose answer is in progress is not idle);
/// - at most ``Limits/maxConcurrentConnections`` connections are open; a new connection beyond that evicts the
///   one idle the longest, so a fresh probe is always served;
/// - a client that sends requests faster than it reads the answers is disconnected once unread answers exceed
///   the channel's write-buffer high-water mark, so unread output stays bounded too.
///
/// ``run()`` binds, reports the port through `onListening`, serves until graceful shutdown (or cancellation),
/// then closes the server channel and every open connection before returning. Call it once per value.
package struct HTTPListener: Service {
    /// The bounds that make the listener safe to expose to untrusted clients. Values below their minimum are
    /// raised to it (1, or 1 ms; 0 for the body limit).
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
        /// Most bytes a request body may take; 0 (the default) refuses every request that announces one.
        package var maxRequestBodyBytes: Int

        /// Defaults sized for a Prometheus scraper plus kubelet probes: 8 KiB heads, 100 header fields,
        /// 128 connections, 30 s idle timeout, 1 s close linger, backlog 256, no request bodies.
        package init(
            maxRequestHeadBytes: Int = 8 * 1024,
            maxHeaderFields: Int = 100,
            maxConcurrentConnections: Int = 128,
            idleTimeout: Duration = .seconds(30),
            closeLinger: Duration = .seconds(1),
            listenBacklog: Int = 256,
            maxRequestBodyBytes: Int = 0
        ) {
            self.maxRequestHeadBytes = maxRequestHeadBytes
            self.maxHeaderFields = maxHeaderFields
            self.maxConcurrentConnections = maxConcurrentConnections
            self.idleTimeout = idleTimeout
            self.closeLinger = closeLinger
            self.listenBacklog = listenBacklog
            self.maxRequestBodyBytes = maxRequestBodyBytes
        }

        /// The same limits with every value raised to its minimum (1 byte, 1 field, 1 connection, 1 ms, 0 body).
        var sanitized: Limits {
            var limits = self
            limits.maxRequestHeadBytes = max(1, maxRequestHeadBytes)
            limits.maxHeaderFields = max(1, maxHeaderFields)
            limits.maxConcurrentConnections = max(1, maxConcurrentConnections)
            limits.idleTimeout = max(.milliseconds(1), idleTimeout)
            limits.closeLinger = max(.milliseconds(1), closeLinger)
            limits.listenBacklog = min(max(1, listenBacklog), Int(Int32.max))
            limits.maxRequestBodyBytes = max(0, maxRequestBodyBytes)
            return limits
        }
    }

    /// Where the listener binds, as parsed from an address such as `--metrics-addr`.
    package enum ListenHost: Sendable, Hashable {
        /// `:port`: every interface, IPv6 `::` dual-stack when the host has IPv6, else `0.0.0.0`.
        case allInterfaces
        /// `host:port` or `[v6]:port`: an IP literal, or a name resolved once at start, off the event loops
        /// (IPv4 preferred, as Go's `net.Listen`).
        case host(String)
    }

    /// What a routed path answers to `GET` and `HEAD`.
    package enum Route: Sendable {
        /// 200 with `render()`'s text, rendered for each request (`HEAD` too, for its `Content-Length`).
        case document(contentType: String, render: @Sendable () -> String)
        /// 200 `ok` when the check passes, else 503 with its reason on one line. Nothing more is read from the
        /// connection while the check runs.
        case health(contentType: String, check: HealthCheck)
    }

    /// A health check beyond the process answering HTTP.
    package struct HealthCheck: Sendable {
        /// `nil` when healthy, otherwise why not (served as the 503 body: never secret data).
        package var check: @Sendable () async -> String?

        /// A check that runs `check` for every request of its route (it should share work between callers).
        package init(_ check: @escaping @Sendable () async -> String?) {
            self.check = check
        }
    }

    /// One complete request, as the catch-all ``Responder`` gets it.
    package struct Request: Sendable {
        /// `GET`, `POST`…
        package var method: String
        /// The path without the query.
        package var path: String
        /// The raw query string (without `?`).
        package var query: String
        /// The request headers.
        package var headers: HTTPHeaders
        /// The whole request body (at most ``Limits/maxRequestBodyBytes``).
        package var body: [UInt8]
    }

    /// The catch-all's answer: complete, streamed, or produced later by async work.
    package struct Response: Sendable {
        /// How the answer is produced.
        enum Kind: Sendable {
            /// ``Response/body`` with a `Content-Length`.
            case complete
            /// A chunked body written through a ``ResponseStream``.
            case streamed(@Sendable (ResponseStream) -> Void)
            /// Another response, once this async work returns.
            case deferred(@Sendable () async -> Response)
        }

        /// The HTTP status code.
        package var status: Int
        /// Headers to send; `Content-Length` is set from the body.
        package var headers: [(String, String)]
        /// The response body.
        package var body: [UInt8]
        /// How the answer is produced.
        let kind: Kind

        /// A complete response; no headers and an empty body unless given.
        package init(status: Int, headers: [(String, String)] = [], body: [UInt8] = []) {
            self.init(status: status, headers: headers, body: body, kind: .complete)
        }

        private init(status: Int, headers: [(String, String)], body: [UInt8], kind: Kind) {
            self.status = status
            self.headers = headers
            self.body = body
            self.kind = kind
        }

        /// A streamed response: the head goes out with `Transfer-Encoding: chunked`, then `start` is called once,
        /// on the connection's event loop, with the stream to write; the answer ends with ``ResponseStream/finish()``.
        package static func streaming(
            status: Int,
            headers: [(String, String)] = [],
            start: @escaping @Sendable (ResponseStream) -> Void
        ) -> Response {
            Response(status: status, headers: headers, body: [], kind: .streamed(start))
        }

        /// The response `produce` returns, off the event loop (a delay, a slow upstream); the connection reads
        /// nothing more meanwhile. `produce` is cancelled if the connection closes first.
        package static func deferred(_ produce: @escaping @Sendable () async -> Response) -> Response {
            Response(status: 0, headers: [], body: [], kind: .deferred(produce))
        }
    }

    /// Answers every request whose path has no ``Route``, any method, on the connection's event loop: keep it
    /// quick, and return ``Response/deferred(_:)`` for anything that waits.
    package typealias Responder = @Sendable (Request) -> Response

    /// The host part of the address.
    package let listenHost: ListenHost
    /// The port of the address (0: an ephemeral port, reported through `onListening`).
    package let port: Int
    /// The limits in force (already sanitized).
    package let limits: Limits
    /// The routed paths.
    package let routes: [String: Route]
    /// What answers the other paths; `nil`: 404.
    private let responder: Responder?
    /// The server side of TLS, when the listener speaks HTTPS.
    private let tls: NIOSSLContext?
    /// Names the listener in its log lines (`<name> listening`, metadata `<name>.address`, `<name>.port`).
    private let name: String
    /// Extra metadata of the `listening` line.
    private let listeningMetadata: Logger.Metadata
    /// Where the listener logs its address and, at debug level, refused requests.
    private let logger: Logger
    /// Called once with the bound port, before any request is served.
    private let onListening: @Sendable (Int) -> Void
    /// The open connections, shared with the event loops that serve them.
    private let connections: ConnectionRegistry

    /// A listener on `address` (`host:port`, `[v6]:port` or `:port`, port 0–65535).
    ///
    /// - Parameters:
    ///   - routes: paths answered for `GET` and `HEAD` (exact match, query ignored).
    ///   - responder: answers every other path and method; `nil` answers 404.
    ///   - tls: serve HTTPS with this context.
    ///   - name: names the listener in its log lines.
    ///   - listeningMetadata: extra metadata of its `listening` line.
    /// - Throws: ``ListenAddressError`` if `address` is not of that form. Names are resolved by ``run()``.
    package init(
        address: String,
        routes: [String: Route] = [:],
        responder: Responder? = nil,
        limits: Limits = Limits(),
        tls: NIOSSLContext? = nil,
        name: String,
        listeningMetadata: Logger.Metadata = [:],
        logger: Logger,
        onListening: @escaping @Sendable (Int) -> Void = { _ in }
    ) throws(ListenAddressError) {
        (self.listenHost, self.port) = try Self.parse(address: address)
        self.routes = routes
        self.responder = responder
        self.limits = limits.sanitized
        self.tls = tls
        self.name = name
        self.listeningMetadata = listeningMetadata
        self.logger = logger
        self.onListening = onListening
        self.connections = ConnectionRegistry(capacity: self.limits.maxConcurrentConnections)
    }

    /// Connections open right now (accepted and not yet closed); never above ``Limits/maxConcurrentConnections``.
    package var openConnections: Int { connections.counts.open }
    /// The most connections that were ever open at once.
    package var peakOpenConnections: Int { connections.counts.peak }
    /// How many connections were closed to make room for a newer one.
    package var evictedConnections: Int { connections.counts.evicted }

    /// Splits `address` the way Go's `net.SplitHostPort` does (an IPv6 host must be bracketed), port numeric.
    ///
    /// - Throws: ``ListenAddressError`` when there is no port, the port is not 0–65535, or the host is malformed.
    package static func parse(address: String) throws(ListenAddressError) -> (ListenHost, Int) {
        let error = ListenAddressError(address: address)
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

    /// Binds, reports the port, serves until graceful shutdown or cancellation, then closes the server channel
    /// and every open connection before returning.
    ///
    /// - Throws: when the address cannot be resolved or bound; nothing after that.
    package func run() async throws {
        let serverChannel = try await bind()
        let bound = serverChannel.localAddress
        let port = bound?.port ?? self.port
        var metadata = listeningMetadata
        metadata["\(name).address"] = "\(Self.display(bound, port: port))"
        metadata["\(name).port"] = "\(port)"
        logger.info("\(name) listening", metadata: metadata)
        onListening(port)
        try? await gracefulShutdown()
        try? await serverChannel.close().get()
        for connection in connections.closeAll() {
            try? await connection.close().get()
        }
        logger.debug("\(name) listener stopped")
    }

    /// Binds the server channel where ``listenHost`` says.
    private func bind() async throws -> any Channel {
        switch listenHost {
        case .allInterfaces:
            do {
                let any6 = try SocketAddress(ipAddress: "::", port: port)
                return try await bootstrap(dualStack: true).bind(to: any6).get()
            } catch let error as IOError where Self.ipv6Unavailable.contains(error.errnoCode) {
                logger.debug("no IPv6, \(name) listener falls back to 0.0.0.0", metadata: ["error": "\(error)"])
                let any4 = try SocketAddress(ipAddress: "0.0.0.0", port: port)
                return try await bootstrap(dualStack: false).bind(to: any4).get()
            }
        case .host(let host):
            let address: SocketAddress
            if let literal = try? SocketAddress(ipAddress: host, port: port) {
                address = literal
            } else {
                let port = self.port
                address = try await NIOThreadPool.singleton.runIfActive { try Self.resolve(host: host, port: port) }
            }
            return try await bootstrap(dualStack: false).bind(to: address).get()
        }
    }

    /// `errno` values meaning "this host has no usable IPv6", for the `:port` fallback to `0.0.0.0`.
    private static let ipv6Unavailable: Set<CInt> = [EAFNOSUPPORT, EADDRNOTAVAIL, EPROTONOSUPPORT]

    /// A server bootstrap whose every child runs the bounded HTTP/1.1 pipeline (TLS first when configured).
    private func bootstrap(dualStack: Bool) -> ServerBootstrap {
        let configuration = ConnectionConfiguration(
            routes: routes,
            responder: responder,
            limits: limits,
            name: name,
            logger: logger
        )
        let connections = self.connections
        let tls = self.tls
        var bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(ChannelOptions.backlog, value: Int32(limits.listenBacklog))
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            // Reads are issued by `HTTPConnectionHandler` only when it wants more input: never after a refused head.
            .childChannelOption(ChannelOptions.autoRead, value: false)
            .childChannelOption(
                ChannelOptions.recvAllocator,
                value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 1024, maximum: 16 * 1024)
            )
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let limits = configuration.limits
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
                    if limits.maxRequestBodyBytes == 0 {
                        // Every byte before the decoder belongs to a head: count them, request line included.
                        try pipeline.addHandler(RequestHeadLimiter(limit: limits.maxRequestHeadBytes), position: .first)
                    }
                    if let tls {
                        try pipeline.addHandler(NIOSSLServerHandler(context: tls), position: .first)
                    }
                    try pipeline.addHandler(HTTPConnectionHandler(configuration: configuration, connections: connections))
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
    /// - Throws: ``ListenAddressResolutionError`` when the name has no address.
    private static func resolve(host: String, port: Int) throws -> SocketAddress {
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, nil, nil, &list)
        guard status == 0, let first = list else { throw ListenAddressResolutionError(host: host, status: status) }
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
        guard let address = ipv4 ?? ipv6 else { throw ListenAddressResolutionError(host: host, status: status) }
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

/// What every connection of one listener shares: its routes, responder, limits and logger.
struct ConnectionConfiguration: Sendable {
    /// The routed paths.
    let routes: [String: HTTPListener.Route]
    /// What answers the other paths; `nil`: 404.
    let responder: HTTPListener.Responder?
    /// The sanitized limits.
    let limits: HTTPListener.Limits
    /// The listener's name, for log lines.
    let name: String
    /// For debug lines about refused requests.
    let logger: Logger
}

/// A listen address is not `host:port`, `[v6]:port` or `:port` (the syntax of `--metrics-addr`).
package struct ListenAddressError: Error, CustomStringConvertible {
    /// The rejected value.
    package var address: String
    /// `--metrics-addr <addr>: expected host:port or :port`.
    package var description: String { "--metrics-addr \(address): expected host:port or :port" }
}

/// The host of a listen address is a name that does not resolve to any IPv4 or IPv6 address.
package struct ListenAddressResolutionError: Error, CustomStringConvertible {
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
