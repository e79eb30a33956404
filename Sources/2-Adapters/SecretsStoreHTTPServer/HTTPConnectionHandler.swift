import Logging
import NIOCore
import NIOHTTP1
import Synchronization

/// Sits first in the pipeline (after TLS) of a listener that refuses request bodies and counts the bytes of each
/// request head up to its blank line (`LF LF` or `LF CR LF`). When a head passes `limit` bytes it forwards only
/// the heads completed before it, drops everything after, and fires ``HeadTooLarge`` to the HTTP handler. Holds
/// no bytes itself: only a counter and a 3-state scanner.
final class RequestHeadLimiter: ChannelInboundHandler, RemovableChannelHandler {
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

/// One connection of an ``HTTPListener``: assembles requests (refusing bodies over the limit at their head),
/// answers them in order, one at a time, through the routes or the responder, enforces the idle timeout, the
/// close linger and the back-pressure rule, and owns the connection's reads (`autoRead` is off) and its registry
/// entry.
final class HTTPConnectionHandler: ChannelInboundHandler, RemovableChannelHandler {
    /// Decoded request parts.
    typealias InboundIn = HTTPServerRequestPart
    /// Response parts for `HTTPResponseEncoder`.
    typealias OutboundOut = HTTPServerResponsePart

    /// What the reading side is doing.
    private enum Incoming {
        /// Waiting for a request head.
        case betweenRequests
        /// A head arrived; its body (if any) is being collected until `.end`.
        case collecting(HTTPRequestHead, body: ByteBuffer?)
        /// A refusal is queued: every later part is dropped and nothing more is read.
        case stopped
    }

    /// One thing to answer, in arrival order.
    private enum Work {
        /// A complete request.
        case request(HTTPRequestHead, body: ByteBuffer?)
        /// A refusal that closes the connection.
        case refusal(HTTPResponseStatus, HTTPVersion, reason: String)
    }

    /// Routes, responder, limits, logger.
    private let configuration: ConnectionConfiguration
    /// The listener's connection table.
    private let connections: ConnectionRegistry
    /// This connection's registry entry, once admitted.
    private var entry: ConnectionRegistry.Entry?
    /// Answered for the last time (or closed): nothing more is read or answered.
    private var closing = false
    /// The reading side.
    private var incoming = Incoming.betweenRequests
    /// An answer is in progress (a health check, a deferred or streamed response).
    private var answering = false
    /// Work that arrived while an answer was in progress, answered in order after it.
    private var waiting = CircularBuffer<Work>()
    /// When the connection counts as idle for too long, unless a request completes first.
    private var idleDeadline = NIODeadline.distantFuture
    /// The pending idle or linger timer.
    private var timer: Scheduled<Void>?
    /// The health check or deferred answer in progress, cancelled if the connection closes first.
    private var pendingTask: Task<Void, Never>?
    /// The streamed answer in progress, told when the connection closes.
    private var openStream: ResponseStream?

    /// A handler for one connection of the listener that owns `connections`.
    init(configuration: ConnectionConfiguration, connections: ConnectionRegistry) {
        self.configuration = configuration
        self.connections = connections
    }

    // MARK: - Channel events

    /// Admits the connection (evicting the longest-idle one if full), arms the idle timer, issues the first read.
    func channelActive(context: ChannelHandlerContext) {
        guard let entry = connections.admit(context.channel) else {
            closing = true
            context.close(promise: nil)
            return
        }
        self.entry = entry
        armIdleTimer(context: context)
        context.read()
        context.fireChannelActive()
    }

    /// Forgets the connection, its timer, its pending work and its stream.
    func channelInactive(context: ChannelHandlerContext) {
        closing = true
        timer?.cancel()
        timer = nil
        pendingTask?.cancel()
        pendingTask = nil
        openStream?.connectionClosed()
        openStream = nil
        waiting.removeAll()
        if let entry { connections.remove(entry) }
        entry = nil
        context.fireChannelInactive()
    }

    /// Cancels the timer if the handler leaves a live pipeline.
    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    /// Assembles requests: refuses a body at its head when it is not allowed or too large, collects an allowed
    /// one, and submits each complete request.
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }
        switch unwrapInboundIn(data) {
        case .head(let head):
            guard case .betweenRequests = incoming else { return }
            if let (status, reason) = refusal(of: head) {
                stop(.refusal(status, Self.version(of: head), reason: reason), context: context)
            } else {
                incoming = .collecting(head, body: nil)
            }
        case .body(var part):
            guard case .collecting(let head, let collected) = incoming else { return }
            incoming = .betweenRequests
            var body = part
            if var collected {
                collected.writeBuffer(&part)
                body = collected
            }
            guard body.readableBytes <= configuration.limits.maxRequestBodyBytes else {
                stop(.refusal(.payloadTooLarge, Self.version(of: head), reason: "request body too large"), context: context)
                return
            }
            incoming = .collecting(head, body: body)
        case .end:
            guard case .collecting(let head, let body) = incoming else { return }
            incoming = .betweenRequests
            submit(.request(head, body: body), context: context)
        }
    }

    /// Asks for more input while the connection wants it and the peer keeps up with our answers.
    func channelReadComplete(context: ChannelHandlerContext) {
        readIfWanted(context: context)
        context.fireChannelReadComplete()
    }

    /// Resumes reading once the peer has drained our answers.
    func channelWritabilityChanged(context: ChannelHandlerContext) {
        readIfWanted(context: context)
        context.fireChannelWritabilityChanged()
    }

    /// 431 for an oversized head reported by ``RequestHeadLimiter``.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is RequestHeadLimiter.HeadTooLarge {
            stop(.refusal(.requestHeaderFieldsTooLarge, .http1_1, reason: "request head too large"), context: context)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    /// 431 for the decoder's header limits, 400 for any other parse error, close for anything else.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        switch error as? HTTPParserError {
        case .headerOverflow?:
            stop(.refusal(.requestHeaderFieldsTooLarge, .http1_1, reason: "request head too large"), context: context)
        case .some:
            stop(.refusal(.badRequest, .http1_1, reason: "malformed request"), context: context)
        case nil:
            closeNow(context: context)
        }
    }

    // MARK: - Assembling

    /// Why `head` is refused before its body is read, if it is: a body announced where none is allowed or over
    /// the limit (413), or, when bodies are allowed (no raw head counter), a request line over the head limit (431).
    private func refusal(of head: HTTPRequestHead) -> (HTTPResponseStatus, String)? {
        let limits = configuration.limits
        if head.headers.contains(name: "transfer-encoding") {
            if limits.maxRequestBodyBytes == 0 { return (.payloadTooLarge, "request has a body") }
        } else {
            for value in head.headers["content-length"] {
                let length = value.trimmingASCIISpaces
                guard length != "0" else { continue }
                if limits.maxRequestBodyBytes == 0 { return (.payloadTooLarge, "request has a body") }
                if (Int(length) ?? .max) > limits.maxRequestBodyBytes { return (.payloadTooLarge, "request body too large") }
            }
        }
        if limits.maxRequestBodyBytes > 0, head.uri.utf8.count > limits.maxRequestHeadBytes {
            return (.requestHeaderFieldsTooLarge, "request head too large")
        }
        return nil
    }

    /// Queues `refusal` as the connection's last work and stops reading.
    private func stop(_ refusal: Work, context: ChannelHandlerContext) {
        if case .stopped = incoming { return }
        incoming = .stopped
        submit(refusal, context: context)
    }

    /// Answers `work` now, or after the answers in progress and waiting.
    private func submit(_ work: Work, context: ChannelHandlerContext) {
        if answering || !waiting.isEmpty {
            waiting.append(work)
        } else {
            perform(work, context: context)
        }
    }

    /// Answers waiting work in order until one answer is in progress or none is left, then reads on if wanted.
    private func resume(context: ChannelHandlerContext) {
        while !closing, !answering, let work = waiting.popFirst() {
            perform(work, context: context)
        }
        readIfWanted(context: context)
    }

    /// Issues a read when nothing is being answered or waiting, no refusal is queued, and the peer reads our answers.
    private func readIfWanted(context: ChannelHandlerContext) {
        guard !closing, !answering, waiting.isEmpty, context.channel.isWritable else { return }
        if case .stopped = incoming { return }
        context.read()
    }

    // MARK: - Answering

    /// Answers one piece of work.
    private func perform(_ work: Work, context: ChannelHandlerContext) {
        switch work {
        case .refusal(let status, let version, let reason):
            configuration.logger.debug(
                "\(configuration.name) request refused",
                metadata: ["status": "\(status.code)", "reason": "\(reason)"]
            )
            write(status, version: version, body: "\(status.reasonPhrase.lowercased())\n", keepAlive: false, context: context)
        case .request(let head, let body):
            answer(head, body: body, context: context)
        }
    }

    /// Routes one request.
    private func answer(_ head: HTTPRequestHead, body: ByteBuffer?, context: ChannelHandlerContext) {
        guard context.channel.isWritable else {
            // The peer pipelines requests without reading the answers: stop rather than queue output.
            configuration.logger.debug("\(configuration.name) client does not read its answers; closing")
            closeNow(context: context)
            return
        }
        let version = Self.version(of: head)
        let question = head.uri.firstIndex(of: "?")
        let path = head.uri[..<(question ?? head.uri.endIndex)]
        if !configuration.routes.isEmpty, let route = configuration.routes[String(path)] {
            guard head.method == .GET || head.method == .HEAD else {
                write(
                    .methodNotAllowed, version: version, body: "method not allowed\n", extraHeaders: [("Allow", "GET, HEAD")],
                    keepAlive: head.isKeepAlive, context: context
                )
                return
            }
            switch route {
            case .document(let contentType, let render):
                write(
                    .ok, version: version, contentType: contentType, body: render(), includeBody: head.method == .GET,
                    keepAlive: head.isKeepAlive, context: context
                )
            case .health(let contentType, let healthCheck):
                checkHealth(healthCheck, contentType: contentType, head: head, context: context)
            }
            return
        }
        guard let responder = configuration.responder else {
            write(.notFound, version: version, body: "not found\n", includeBody: head.method != .HEAD, keepAlive: head.isKeepAlive, context: context)
            return
        }
        let request = HTTPListener.Request(
            method: head.method.rawValue,
            path: String(path),
            query: question.map { String(head.uri[head.uri.index(after: $0)...]) } ?? "",
            headers: head.headers,
            body: body.map { Array($0.readableBytesView) } ?? []
        )
        respond(responder(request), to: head, context: context)
    }

    /// Writes the responder's answer: at once, streamed, or once its deferred work returns.
    private func respond(_ response: HTTPListener.Response, to head: HTTPRequestHead, context: ChannelHandlerContext) {
        let version = Self.version(of: head)
        switch response.kind {
        case .complete:
            var headers = HTTPHeaders(response.headers)
            headers.replaceOrAdd(name: "Content-Length", value: String(response.body.count))
            write(
                HTTPResponseStatus(statusCode: response.status), version: version, headers: headers,
                body: context.channel.allocator.buffer(bytes: response.body), includeBody: head.method != .HEAD,
                keepAlive: head.isKeepAlive, context: context
            )
        case .streamed(let start):
            var headers = HTTPHeaders(response.headers)
            headers.remove(name: "Content-Length")
            headers.replaceOrAdd(name: "Transfer-Encoding", value: "chunked")
            if !head.isKeepAlive { headers.replaceOrAdd(name: "Connection", value: "close") }
            let responseHead = HTTPResponseHead(version: version, status: HTTPResponseStatus(statusCode: response.status), headers: headers)
            context.writeAndFlush(wrapOutboundOut(.head(responseHead)), promise: nil)
            beginAnswering()
            let stream = ResponseStream(handler: self, context: context, keepAlive: head.isKeepAlive)
            openStream = stream
            start(stream)
        case .deferred(let produce):
            beginAnswering()
            let connection = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
            pendingTask = Task {
                let response = await produce()
                connection.eventLoop.execute {
                    connection.value.handler.deferredAnswerReady(response, to: head, context: connection.value.context)
                }
            }
        }
    }

    /// Writes the answer a deferred response produced and goes on with the waiting work.
    private func deferredAnswerReady(_ response: HTTPListener.Response, to head: HTTPRequestHead, context: ChannelHandlerContext) {
        guard !closing else { return }
        pendingTask = nil
        answering = false
        respond(response, to: head, context: context)
        resume(context: context)
    }

    /// Runs `healthCheck` off the event loop, then answers 200 `ok` or 503 with the reason on one line, and
    /// goes on with the waiting work.
    private func checkHealth(_ healthCheck: HTTPListener.HealthCheck, contentType: String, head: HTTPRequestHead, context: ChannelHandlerContext) {
        beginAnswering()
        let connection = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
        let check = healthCheck.check
        pendingTask = Task {
            let failure = await check()
            connection.eventLoop.execute {
                connection.value.handler.healthChecked(failure, contentType: contentType, head: head, context: connection.value.context)
            }
        }
    }

    /// Answers the health request `head` with the check's verdict and goes on with the waiting work.
    private func healthChecked(_ failure: String?, contentType: String, head: HTTPRequestHead, context: ChannelHandlerContext) {
        guard !closing else { return }
        pendingTask = nil
        answering = false
        let version = Self.version(of: head)
        let includeBody = head.method == .GET
        if let failure {
            write(
                .serviceUnavailable, version: version, contentType: contentType, body: failure.singleLine + "\n",
                includeBody: includeBody, keepAlive: head.isKeepAlive, context: context
            )
        } else {
            write(.ok, version: version, contentType: contentType, body: "ok", includeBody: includeBody, keepAlive: head.isKeepAlive, context: context)
        }
        resume(context: context)
    }

    /// An answer is in progress: the connection is neither idle nor evicted before the others, and reads nothing.
    private func beginAnswering() {
        answering = true
        entry?.markBusy()
    }

    /// Writes one chunk of the open stream.
    fileprivate func streamWrite(_ bytes: [UInt8], of stream: ResponseStream, context: ChannelHandlerContext) {
        guard !closing, openStream === stream else { return }
        context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: bytes)))), promise: nil)
    }

    /// Ends the open stream's answer and goes on with the waiting work.
    fileprivate func streamFinished(_ stream: ResponseStream, keepAlive: Bool, context: ChannelHandlerContext) {
        guard !closing, openStream === stream else { return }
        openStream = nil
        answering = false
        finish(written: context.writeAndFlush(wrapOutboundOut(.end(nil))), keepAlive: keepAlive, context: context)
        resume(context: context)
    }

    /// Writes one complete response with a text body.
    private func write(
        _ status: HTTPResponseStatus,
        version: HTTPVersion,
        contentType: String = "text/plain; charset=utf-8",
        body: String,
        includeBody: Bool = true,
        extraHeaders: [(String, String)] = [],
        keepAlive: Bool,
        context: ChannelHandlerContext
    ) {
        let bytes = context.channel.allocator.buffer(string: body)
        var headers = HTTPHeaders([("Content-Type", contentType), ("Content-Length", String(bytes.readableBytes))])
        headers.add(contentsOf: extraHeaders)
        write(status, version: version, headers: headers, body: bytes, includeBody: includeBody, keepAlive: keepAlive, context: context)
    }

    /// Writes one complete response. With `keepAlive` the connection is idle again afterwards; without, it
    /// half-closes once the answer is written and closes after the close linger.
    private func write(
        _ status: HTTPResponseStatus,
        version: HTTPVersion,
        headers: HTTPHeaders,
        body: ByteBuffer,
        includeBody: Bool,
        keepAlive: Bool,
        context: ChannelHandlerContext
    ) {
        var headers = headers
        if !keepAlive {
            headers.replaceOrAdd(name: "Connection", value: "close")
        } else if version == .http1_0 {
            headers.replaceOrAdd(name: "Connection", value: "keep-alive")
        }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: status, headers: headers))), promise: nil)
        if includeBody, body.readableBytes > 0 {
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        }
        finish(written: context.writeAndFlush(wrapOutboundOut(.end(nil))), keepAlive: keepAlive, context: context)
    }

    /// After an answer: idle again (kept alive), or half-closed once `written` completes and closed after the linger.
    private func finish(written: EventLoopFuture<Void>, keepAlive: Bool, context: ChannelHandlerContext) {
        if keepAlive {
            entry?.markIdle()
            armIdleTimer(context: context)
            return
        }
        closing = true
        waiting.removeAll()
        entry?.markClosing()
        timer?.cancel()
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(configuration.limits.closeLinger)) { [weak self] in
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

    /// Closes now, reading nothing more.
    private func closeNow(context: ChannelHandlerContext) {
        closing = true
        entry?.markClosing()
        context.close(promise: nil)
    }

    // MARK: - Idle timer

    /// Moves the idle deadline to a full timeout from now. One timer per connection: it is scheduled only when
    /// none is pending, and on firing it reschedules itself for a deadline that moved meanwhile.
    private func armIdleTimer(context: ChannelHandlerContext) {
        idleDeadline = .now() + TimeAmount(configuration.limits.idleTimeout)
        if timer == nil { scheduleIdleTimer(context: context) }
    }

    /// Schedules the idle timer at ``idleDeadline``.
    private func scheduleIdleTimer(context: ChannelHandlerContext) {
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: idleDeadline) { [weak self] in
            self?.idleTimerFired(context: context)
        }
    }

    /// Closes the connection if it has been idle for the timeout; an answer in progress re-arms it when it ends.
    private func idleTimerFired(context: ChannelHandlerContext) {
        timer = nil
        guard !closing, !answering else { return }
        if NIODeadline.now() < idleDeadline {
            scheduleIdleTimer(context: context)
            return
        }
        closing = true
        context.close(promise: nil)
    }

    /// The version answers use: HTTP/1.0 for 1.0 requests, 1.1 otherwise.
    private static func version(of head: HTTPRequestHead) -> HTTPVersion {
        head.version == .http1_0 ? .http1_0 : .http1_1
    }
}

/// The body of a streamed response (chunked transfer encoding). Safe to use from any thread: every write hops to
/// the connection's event loop, in call order. After ``finish()`` or once the client disconnects, writes are
/// dropped and the termination handler has run (once).
package final class ResponseStream: Sendable {
    /// Whether the stream is open, and what runs when it ends.
    private struct State {
        /// Writes are accepted.
        var open = true
        /// Runs once when the stream ends.
        var onTermination: (@Sendable () -> Void)?
    }

    /// The handler and context of the connection, used on its event loop only.
    private let connection: NIOLoopBound<(handler: HTTPConnectionHandler, context: ChannelHandlerContext)>
    /// Whether the connection stays open after the answer.
    private let keepAlive: Bool
    /// Open or ended, behind a lock (written from any thread).
    private let state = Mutex(State())

    /// The stream of the answer `handler` is writing on `context`.
    init(handler: HTTPConnectionHandler, context: ChannelHandlerContext, keepAlive: Bool) {
        self.connection = NIOLoopBound((handler, context), eventLoop: context.eventLoop)
        self.keepAlive = keepAlive
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
        let connection = self.connection
        connection.eventLoop.execute {
            connection.value.handler.streamWrite(bytes, of: self, context: connection.value.context)
        }
    }

    /// Ends the response (the terminating chunk); the connection stays open for keep-alive clients.
    package func finish() {
        guard let handler = terminate() else { return }
        let connection = self.connection
        let keepAlive = self.keepAlive
        connection.eventLoop.execute {
            connection.value.handler.streamFinished(self, keepAlive: keepAlive, context: connection.value.context)
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

/// Text helpers for the handler.
extension String {
    /// The text with every CR and LF turned into a space (a 503 body is one line). By scalar: `"\r\n"` is one
    /// `Character`, equal to neither.
    fileprivate var singleLine: String {
        var scalars = String.UnicodeScalarView()
        scalars.append(contentsOf: unicodeScalars.lazy.map { $0 == "\n" || $0 == "\r" ? " " : $0 })
        return String(scalars)
    }

    /// The string without leading and trailing ASCII spaces and tabs.
    fileprivate var trimmingASCIISpaces: Substring {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        let head = drop(while: isSpace)
        return head[..<(head.lastIndex(where: { !isSpace($0) }).map(head.index(after:)) ?? head.startIndex)]
    }
}
