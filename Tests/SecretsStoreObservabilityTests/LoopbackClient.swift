import Logging
import SecretsStoreHTTPServer
import SecretsStoreObservability
import SecretsStoreTesting

/// Runs the metrics and health listener on `address` (a 127.0.0.1 or localhost address) for the duration of
/// `body`, then cancels it and waits for it to return.
func withListener<T: Sendable>(
    address: String = "127.0.0.1:0",
    limits: HTTPListener.Limits = .init(),
    healthCheck: HTTPListener.HealthCheck? = nil,
    _ body: (HTTPListener, Int) async throws -> T
) async throws -> T {
    try await withRunning(
        { onListening in
            try HTTPListener.metricsAndHealth(
                address: address,
                metrics: PrometheusDriverMetrics(),
                logger: Logger(label: "metrics-listener-test"),
                limits: limits,
                healthCheck: healthCheck,
                onListening: onListening
            )
        },
        body
    )
}

/// Runs the listener `makeListener` builds (around the `onListening` it is given) for the duration of `body`,
/// then cancels it and waits for it to return.
func withRunning<T: Sendable>(
    _ makeListener: (@escaping @Sendable (Int) -> Void) throws -> HTTPListener,
    _ body: (HTTPListener, Int) async throws -> T
) async throws -> T {
    let (ports, continuation) = AsyncStream<Int>.makeStream()
    let listener = try makeListener { continuation.yield($0) }
    let task = Task {
        defer { continuation.finish() }
        try await listener.run()
    }
    var iterator = ports.makeAsyncIterator()
    guard let port = await iterator.next() else {
        try await task.value
        throw SocketError(call: "listener did not start", code: 0)
    }
    do {
        let result = try await body(listener, port)
        task.cancel()
        try await task.value
        return result
    } catch {
        task.cancel()
        _ = try? await task.value
        throw error
    }
}
