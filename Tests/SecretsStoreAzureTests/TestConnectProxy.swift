import NIOCore
import NIOPosix
import Synchronization

/// An HTTP `CONNECT` proxy on `127.0.0.1` for the tests: it tunnels every accepted `CONNECT host:port` to
/// `127.0.0.1:port` (whatever the host, so names that only "the proxy" can resolve reach the emulator), records
/// each tunnel's target and `Proxy-Authorization`, and answers 407 when a required authorization is missing or
/// wrong. The bytes inside a tunnel (TLS) are relayed untouched.
final class TestConnectProxy: Sendable {
    /// One `CONNECT` the proxy received.
    struct Tunnel: Sendable, Equatable {
        /// `host:port` as the client asked for it.
        var target: String
        /// The `Proxy-Authorization` header, if any.
        var authorization: String?
        /// Whether the proxy accepted it (authorization right) and connected.
        var accepted: Bool
    }

    private let channel: any Channel
    private let box: RecorderBox
    /// The port it listens on.
    let port: Int

    /// Starts listening on an ephemeral loopback port. With `requiredAuthorization` (a whole header value,
    /// `Basic …`), any other or missing authorization gets 407.
    init(requiredAuthorization: String? = nil) async throws {
        let box = RecorderBox(requiredAuthorization: requiredAuthorization)
        self.box = box
        channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { child in
                child.eventLoop.makeCompletedFuture {
                    try child.pipeline.syncOperations.addHandler(ConnectHandler(recorder: box))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        port = channel.localAddress?.port ?? 0
    }

    /// Every `CONNECT` received so far, in order.
    var tunnels: [Tunnel] { box.state.withLock { $0 } }

    /// Stops accepting; open tunnels are left to close with their clients.
    func shutdown() async throws {
        try await channel.close().get()
    }
}

/// What the handlers share: the record and the authorization rule.
final class RecorderBox: Sendable {
    let state = Mutex<[TestConnectProxy.Tunnel]>([])
    let requiredAuthorization: String?

    init(requiredAuthorization: String?) {
        self.requiredAuthorization = requiredAuthorization
    }

    func record(_ tunnel: TestConnectProxy.Tunnel) {
        state.withLock { $0.append(tunnel) }
    }
}

/// Reads the `CONNECT` head, connects to the target, then relays both ways.
private final class ConnectHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum State {
        case head(ByteBuffer)
        case connecting(pending: [ByteBuffer])
        case relaying(any Channel)
        case closed
    }

    private let recorder: RecorderBox
    private var state = State.head(ByteBuffer())

    init(recorder: RecorderBox) {
        self.recorder = recorder
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        switch state {
        case .head(var buffer):
            buffer.writeBuffer(&bytes)
            guard let view = buffer.readableBytesView.firstRange(of: Array("\r\n\r\n".utf8)) else {
                state = .head(buffer)
                return
            }
            let headLength = view.upperBound - buffer.readerIndex
            let head = buffer.readString(length: headLength) ?? ""
            let rest = buffer
            connect(head: head, rest: rest, context: context)
        case .connecting(var pending):
            pending.append(bytes)
            state = .connecting(pending: pending)
        case .relaying(let peer):
            peer.writeAndFlush(bytes, promise: nil)
        case .closed:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if case .relaying(let peer) = state { peer.close(promise: nil) }
        state = .closed
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    private func connect(head: String, rest: ByteBuffer, context: ChannelHandlerContext) {
        let lines = head.split(separator: "\r\n", omittingEmptySubsequences: true).map(String.init)
        let words = lines.first?.split(separator: " ").map(String.init) ?? []
        let authorization = lines.dropFirst().first { $0.lowercased().hasPrefix("proxy-authorization:") }
            .map { String($0.dropFirst("proxy-authorization:".count)).trimmingCharacters(in: " ") }
        guard words.count == 3, words[0] == "CONNECT", let colon = words[1].lastIndex(of: ":"),
            let port = Int(words[1][words[1].index(after: colon)...])
        else {
            reply("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", close: true, context: context)
            return
        }
        if let required = recorder.requiredAuthorization, authorization != required {
            recorder.record(.init(target: words[1], authorization: authorization, accepted: false))
            reply(
                "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                close: true,
                context: context
            )
            return
        }
        recorder.record(.init(target: words[1], authorization: authorization, accepted: true))
        state = .connecting(pending: rest.readableBytes > 0 ? [rest] : [])
        let client = context.channel
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        ClientBootstrap(group: context.eventLoop)
            .channelInitializer { outbound in
                outbound.eventLoop.makeCompletedFuture {
                    try outbound.pipeline.syncOperations.addHandler(RelayHandler(peer: client))
                }
            }
            .connect(host: "127.0.0.1", port: port)
            .whenComplete { result in
                let (handler, context) = loopBound.value
                switch result {
                case .success(let outbound):
                    guard case .connecting(let pending) = handler.state else {
                        outbound.close(promise: nil)
                        return
                    }
                    handler.state = .relaying(outbound)
                    handler.reply("HTTP/1.1 200 Connection Established\r\n\r\n", close: false, context: context)
                    for bytes in pending { outbound.writeAndFlush(bytes, promise: nil) }
                case .failure:
                    handler.reply("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n", close: true, context: context)
                }
            }
    }

    private func reply(_ text: String, close: Bool, context: ChannelHandlerContext) {
        let written = context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(string: text)))
        if close {
            state = .closed
            let channel = context.channel
            written.whenComplete { _ in channel.close(promise: nil) }
        }
    }
}

/// The target side of a tunnel: everything read goes to the client; closing closes the client.
private final class RelayHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let peer: any Channel

    init(peer: any Channel) {
        self.peer = peer
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        peer.writeAndFlush(unwrapInboundIn(data), promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        peer.close(promise: nil)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

extension String {
    fileprivate func trimmingCharacters(in set: String) -> String {
        let trimmed = drop { set.contains($0) }
        return String(trimmed[..<(trimmed.lastIndex { !set.contains($0) }.map(trimmed.index(after:)) ?? trimmed.startIndex)])
    }
}
