import Logging
import SecretsStoreHTTPServer
import ServiceLifecycle

/// Serves `/metrics` (Prometheus text) and `/healthz` on `--metrics-addr`, as a `Service`.
package struct MetricsServer: Service {
    private let host: String
    private let port: Int
    private let metrics: PrometheusDriverMetrics
    private let logger: Logger
    private let onListening: @Sendable (Int) -> Void

    /// - Parameter address: `host:port` or `:port` (all interfaces), as upstream's `--metrics-addr`.
    package init(address: String, metrics: PrometheusDriverMetrics, logger: Logger, onListening: @escaping @Sendable (Int) -> Void = { _ in }) throws {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]) else {
            throw MetricsAddressError(address: address)
        }
        let host = String(address[..<colon])
        self.host = host.isEmpty ? "0.0.0.0" : host.trimmingCharacters(["[", "]"])
        self.port = port
        self.metrics = metrics
        self.logger = logger
        self.onListening = onListening
    }

    package func run() async throws {
        let metrics = self.metrics
        let server = try await LoopbackHTTPServer(host: host, port: port) { request in
            switch (request.method, request.path) {
            case ("GET", "/metrics"):
                return .init(status: 200, headers: [("Content-Type", "text/plain; version=0.0.4")], body: Array(metrics.render().utf8))
            case ("GET", "/healthz"):
                return .init(status: 200, headers: [("Content-Type", "text/plain")], body: Array("ok".utf8))
            default:
                return .init(status: 404, body: Array("not found".utf8))
            }
        }
        logger.info("metrics listening", metadata: ["metrics.address": "\(host):\(server.port)"])
        onListening(server.port)
        try? await gracefulShutdown()
        try await server.shutdown()
    }
}

/// `--metrics-addr` is not `host:port`.
package struct MetricsAddressError: Error, CustomStringConvertible {
    package var address: String
    package var description: String { "--metrics-addr \(address): expected host:port or :port" }
}

extension String {
    fileprivate func trimmingCharacters(_ characters: Set<Character>) -> String {
        String(drop(while: { characters.contains($0) }).reversed().drop(while: { characters.contains($0) }).reversed())
    }
}
