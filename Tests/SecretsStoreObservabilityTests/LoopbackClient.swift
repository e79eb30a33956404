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
    let running = try await RunningHTTPListener(makeListener)
    do {
        let result = try await body(running.listener, running.port)
        try await running.shutdown()
        return result
    } catch {
        _ = try? await running.shutdown()
        throw error
    }
}
