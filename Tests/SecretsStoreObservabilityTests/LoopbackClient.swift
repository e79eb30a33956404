import Logging
import SecretsStoreObservability
import SecretsStoreTesting

/// Runs a listener on `address` (a 127.0.0.1 or localhost address) for the duration of `body`, then cancels it and
/// waits for it to return.
func withListener<T: Sendable>(
    address: String = "127.0.0.1:0",
    limits: MetricsAndHealthListener.Limits = .init(),
    healthCheck: MetricsAndHealthListener.HealthCheck? = nil,
    _ body: (MetricsAndHealthListener, Int) async throws -> T
) async throws -> T {
    let (ports, continuation) = AsyncStream<Int>.makeStream()
    let listener = try MetricsAndHealthListener(
        address: address,
        metrics: PrometheusDriverMetrics(),
        logger: Logger(label: "metrics-listener-test"),
        limits: limits,
        healthCheck: healthCheck,
        onListening: { continuation.yield($0) }
    )
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
