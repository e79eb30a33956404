// A blocking HTTP/1.1 test client over plain POSIX sockets on 127.0.0.1, for tests that abuse a listener.
import Foundation
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `send(2)` with `MSG_NOSIGNAL` (a closed peer is an error, not SIGPIPE).
private func posixSend(_ fd: CInt, _ bytes: UnsafeRawBufferPointer) -> Int {
    send(fd, bytes.baseAddress, bytes.count, CInt(MSG_NOSIGNAL))
}

/// A failed socket call in a test client, with its `errno`.
package struct SocketError: Error, CustomStringConvertible {
    /// The call that failed.
    package var call: String
    /// Its `errno`.
    package var code: CInt
    /// `call: strerror`.
    package var description: String { "\(call): \(String(cString: strerror(code)))" }

    /// The failure of `call` with `code`.
    package init(call: String, code: CInt) {
        self.call = call
        self.code = code
    }
}

/// One parsed HTTP/1.1 response.
package struct TestResponse: Sendable {
    /// The status code.
    package var status: Int
    /// Header fields, names lowercased.
    package var headers: [String: String]
    /// The body (`Content-Length` bytes; empty for HEAD).
    package var body: [UInt8]
    /// The body as text.
    package var text: String { String(decoding: body, as: UTF8.self) }
}

/// What a non-blocking receive saw.
package enum ReceiveOutcome {
    /// Bytes arrived.
    case data([UInt8])
    /// Nothing yet.
    case nothing
    /// The peer closed its sending side.
    case endOfStream
    /// The connection failed (reset).
    case failed(CInt)
}

/// A blocking TCP client socket to 127.0.0.1 (never another address), with send/receive timeouts. Use it from one
/// thread (inside ``blocking(_:)``); it closes its descriptor on deinit.
package final class LoopbackSocket {
    /// The descriptor.
    package let fd: CInt
    /// Received bytes not yet consumed by ``readResponse(forHEAD:)``.
    private var pending: [UInt8] = []

    /// Connects to `127.0.0.1:port`; `timeout` bounds every later blocking send and receive.
    package init(port: Int, timeout: Duration = .seconds(5)) throws {
        #if canImport(Glibc)
        let fd = socket(AF_INET, CInt(SOCK_STREAM.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw SocketError(call: "socket", code: errno) }
        self.fd = fd
        let components = timeout.components
        var time = timeval(tv_sec: Int(components.seconds), tv_usec: Int(components.attoseconds / 1_000_000_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
        let address = try SocketAddress(ipAddress: "127.0.0.1", port: port)
        let status = address.withSockAddr { pointer, length in connect(fd, pointer, socklen_t(length)) }
        guard status == 0 else { throw SocketError(call: "connect", code: errno) }
    }

    /// Closes the descriptor.
    deinit { close(fd) }

    /// Sends all of `bytes`.
    package func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { posixSend(fd, $0) }
            guard sent > 0 else { throw SocketError(call: "send", code: errno) }
            offset += sent
        }
    }

    /// Sends `text` as UTF-8.
    package func send(_ text: String) throws { try send(Array(text.utf8)) }

    /// One send of up to `bytes.count` bytes: the count sent, 0 on timeout, or `nil` once the connection is dead.
    package func sendSome(_ bytes: [UInt8]) -> Int? {
        let sent = bytes.withUnsafeBytes { posixSend(fd, $0) }
        if sent >= 0 { return sent }
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : nil
    }

    /// One receive without waiting.
    package func receiveNow(max: Int = 64 * 1024) -> ReceiveOutcome {
        var buffer = [UInt8](repeating: 0, count: max)
        let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, CInt(MSG_DONTWAIT)) }
        if count > 0 { return .data(Array(buffer[..<count])) }
        if count == 0 { return .endOfStream }
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? .nothing : .failed(errno)
    }

    /// One blocking receive (bounded by the socket timeout): bytes, or `nil` at end of stream.
    private func receive() throws -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if count > 0 { return Array(buffer[..<count]) }
        if count == 0 { return nil }
        throw SocketError(call: "recv", code: errno)
    }

    /// Reads one response (at most 4 MiB). A HEAD response's `Content-Length` is not read as a body.
    package func readResponse(forHEAD: Bool = false) throws -> TestResponse {
        var headEnd: Int?
        for _ in 0..<1_000 {
            headEnd = pending.indexOfHeadEnd()
            if headEnd != nil || pending.count > 4 << 20 { break }
            guard let bytes = try receive() else { break }
            pending += bytes
        }
        guard let headEnd else { throw SocketError(call: "readResponse (no complete head)", code: 0) }
        let head = String(decoding: pending[..<headEnd], as: UTF8.self)
        pending.removeFirst(headEnd + 4)
        let lines = head.split(separator: "\r\n", omittingEmptySubsequences: false)
        let statusParts = lines.first?.split(separator: " ") ?? []
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else {
            throw SocketError(call: "readResponse (bad status line \(lines.first ?? ""))", code: 0)
        }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingSpaces
        }
        let length = forHEAD ? 0 : Int(headers["content-length"] ?? "0") ?? 0
        for _ in 0..<1_000 where pending.count < length {
            guard let bytes = try receive() else { break }
            pending += bytes
        }
        guard pending.count >= length else { throw SocketError(call: "readResponse (short body)", code: 0) }
        let body = Array(pending[..<length])
        pending.removeFirst(length)
        return TestResponse(status: status, headers: headers, body: body)
    }

    /// Bytes received after the last parsed response, waiting briefly for more (to prove there are none).
    package func unexpectedBytes(waiting: Duration = .milliseconds(200)) -> Int {
        let deadline = ContinuousClock.now + waiting
        while ContinuousClock.now < deadline {
            if case .data(let bytes) = receiveNow() { pending += bytes }
            usleep(10_000)
        }
        return pending.count
    }

    /// Whether the peer closed the connection (end of stream or reset) within `limit`, discarding data meanwhile.
    package func closedByPeer(within limit: Duration) -> Bool {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            switch receiveNow() {
            case .endOfStream, .failed: return true
            case .data: continue
            case .nothing: usleep(5_000)
            }
        }
        return false
    }
}

/// Response framing for ``LoopbackSocket``.
extension [UInt8] {
    /// Offset of the first `CR LF CR LF`.
    fileprivate func indexOfHeadEnd() -> Int? {
        guard count >= 4 else { return nil }
        for index in 0...(count - 4) where self[index] == 13 && self[index + 1] == 10 && self[index + 2] == 13 && self[index + 3] == 10 {
            return index
        }
        return nil
    }
}

/// Header parsing for ``LoopbackSocket``.
extension Substring {
    /// Without leading and trailing spaces.
    fileprivate var trimmingSpaces: String {
        String(drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }
}

/// Runs blocking socket work on NIO's thread pool, off Swift's cooperative threads.
package func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await NIOThreadPool.singleton.runIfActive(body)
}

/// Runs blocking work that may take seconds (a child process run to its end) on a thread of its own: off Swift's
/// two cooperative threads, whose other tests' waits it would stall, and off NIO's thread pool, which the
/// in-process drivers of other tests use for their mounts.
package func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        thread.start()
    }
}

/// One `GET <path>` with `Connection: close` on a fresh connection.
package func fetch(_ path: String, port: Int) throws -> TestResponse {
    let socket = try LoopbackSocket(port: port)
    try socket.send("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    return try socket.readResponse()
}

/// The resident set size in bytes (`VmRSS` of `/proc/<pid>/status`) of `pid`, or of this process; 0 if unreadable.
package func residentBytes(pid: Int32? = nil) -> Int {
    let fd = open(pid.map { "/proc/\($0)/status" } ?? "/proc/self/status", O_RDONLY)
    guard fd >= 0 else { return 0 }
    defer { close(fd) }
    var buffer = [UInt8](repeating: 0, count: 8192)
    let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
    guard count > 0 else { return 0 }
    let text = String(decoding: buffer[..<count], as: UTF8.self)
    guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return 0 }
    let kilobytes = line.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
    return kilobytes * 1024
}

/// `bytes` in MiB with one decimal.
package func mebibytes(_ bytes: Int) -> String {
    let tenths = (bytes * 10) / (1 << 20)
    return "\(tenths / 10).\(abs(tenths % 10)) MiB"
}

/// Raises the soft `RLIMIT_NOFILE` to at least `wanted` (up to the hard limit); returns the soft limit in force.
package func raiseOpenFileLimit(to wanted: Int) -> Int {
    var limits = rlimit()
    #if canImport(Glibc)
    let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
    #else
    let resource = RLIMIT_NOFILE
    #endif
    guard getrlimit(resource, &limits) == 0 else { return 0 }
    if limits.rlim_cur < rlim_t(wanted) {
        limits.rlim_cur = min(rlim_t(wanted), limits.rlim_max)
        _ = setrlimit(resource, &limits)
        _ = getrlimit(resource, &limits)
    }
    return Int(limits.rlim_cur)
}

