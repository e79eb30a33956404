import Logging
import NIOSSL

/// An ``HTTPListener`` serving in a background task, for the test doubles that start a server, use its port and
/// stop it (the Key Vault emulator, the fake Kubernetes API server, one-off test servers). Not a second server:
/// it only runs the listener's ``HTTPListener/run()`` and cancels it.
package final class RunningHTTPListener: Sendable {
    /// The listener being run.
    package let listener: HTTPListener
    /// The bound port.
    package let port: Int
    /// The task running the listener.
    private let task: Task<Void, any Error>

    /// Starts the listener `makeListener` builds around the `onListening` it is given, and returns once it is
    /// bound.
    ///
    /// - Throws: what `makeListener` throws, and what ``HTTPListener/run()`` throws when the address cannot be
    ///   bound.
    package init(_ makeListener: (_ onListening: @escaping @Sendable (Int) -> Void) throws -> HTTPListener) async throws {
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let listener = try makeListener { continuation.yield($0) }
        let task = Task {
            defer { continuation.finish() }
            try await listener.run()
        }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else {
            try await task.value
            throw CancellationError()  // run() returned without binding: only when cancelled before it could
        }
        self.listener = listener
        self.port = port
        self.task = task
    }

    /// A loopback listener (`127.0.0.1`) on `port` (0: an ephemeral one) whose every request goes to `responder`,
    /// with request bodies up to `maxRequestBodyBytes`, optionally over TLS; it logs nothing.
    package convenience init(
        port: Int = 0,
        tls: NIOSSLContext? = nil,
        maxRequestBodyBytes: Int = 16 << 20,
        responder: @escaping HTTPListener.Responder
    ) async throws {
        try await self.init { onListening in
            try HTTPListener(
                address: "127.0.0.1:\(port)",
                responder: responder,
                limits: .testDouble(maxRequestBodyBytes: maxRequestBodyBytes),
                tls: tls,
                name: "test-double",
                logger: Logger(label: "test-double", factory: { _ in SwiftLogNoOpLogHandler() }),
                onListening: onListening
            )
        }
    }

    /// Stops the listener: the listening socket and every open connection are closed when it returns.
    package func shutdown() async throws {
        task.cancel()
        try await task.value
    }
}

extension HTTPListener.Limits {
    /// Limits for a test double on loopback that serves the tests' and the benchmark's traffic: request bodies up
    /// to `maxRequestBodyBytes`, heads up to 64 KiB, 10 000 connections, one hour of idleness.
    package static func testDouble(maxRequestBodyBytes: Int) -> Self {
        Self(
            maxRequestHeadBytes: 64 * 1024,
            maxHeaderFields: 1000,
            maxConcurrentConnections: 10_000,
            idleTimeout: .seconds(3600),
            closeLinger: .seconds(1),
            listenBacklog: 1024,
            maxRequestBodyBytes: maxRequestBodyBytes
        )
    }
}
