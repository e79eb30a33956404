import Logging
import SecretsStoreHTTPServer

/// The two listeners the program opens, as ``HTTPListener`` configurations: what they route is all that differs.
extension HTTPListener {
    /// The driver's and the controller's `/metrics` (Prometheus text of `metrics`) and `/healthz` on
    /// `--metrics-addr`, with the listener's default limits.
    ///
    /// `/healthz` answers 200 `ok` as long as the process serves, or, with `healthCheck`, 200 only when the check
    /// passes, else 503 with its reason (logged as a warning). Both paths answer `GET` and `HEAD`; everything
    /// else is the listener's (405, 404, 413, 431, 400, the idle timeout and the connection cap).
    ///
    /// - Throws: ``ListenAddressError`` if `address` is not `host:port`, `[v6]:port` or `:port`.
    package static func metricsAndHealth(
        address: String,
        metrics: PrometheusDriverMetrics,
        logger: Logger,
        limits: Limits = Limits(),
        healthCheck: HealthCheck? = nil,
        onListening: @escaping @Sendable (Int) -> Void = { _ in }
    ) throws(ListenAddressError) -> HTTPListener {
        let health: Route
        if let healthCheck {
            health = .health(
                contentType: "text/plain",
                check: HealthCheck {
                    let failure = await healthCheck.check()
                    if let failure { logger.warning("health check failed", metadata: ["reason": "\(failure)"]) }
                    return failure
                }
            )
        } else {
            health = .document(contentType: "text/plain") { "ok" }
        }
        return try HTTPListener(
            address: address,
            routes: [
                "/metrics": .document(contentType: "text/plain; version=0.0.4") { metrics.render() },
                "/healthz": health,
            ],
            limits: limits,
            name: "metrics",
            logger: logger,
            onListening: onListening
        )
    }

    /// The upstream Azure provider's health endpoint (`--healthz-port`, `--healthz-path`, `--healthz-timeout`)
    /// for `provider azure`: `GET` or `HEAD` of `path` (query ignored) runs `check` (the caller's: a
    /// `grpc.health.v1.Health/Check` on the provider's own socket within `--healthz-timeout`, as upstream's
    /// handler dials its socket) and answers 200 `ok`, or 503 with the check's reason on one line. Everything
    /// else is the listener's, with the limits of the metrics listener.
    ///
    /// - Throws: ``HealthzPathError`` when `path` does not start with `/` or holds a space, `?` or `#`;
    ///   ``ListenAddressError`` when `address` is not `host:port`, `[v6]:port` or `:port`.
    package static func providerHealth(
        address: String,
        path: String,
        limits: Limits = Limits(),
        logger: Logger,
        check: @escaping @Sendable () async -> String?,
        onListening: @escaping @Sendable (Int) -> Void = { _ in }
    ) throws -> HTTPListener {
        guard path.hasPrefix("/"), !path.contains(where: { $0 == " " || $0 == "?" || $0 == "#" }) else {
            throw HealthzPathError(path: path)
        }
        return try HTTPListener(
            address: address,
            routes: [path: .health(contentType: "text/plain; charset=utf-8", check: HealthCheck(check))],
            limits: limits,
            name: "healthz",
            listeningMetadata: ["healthz.path": "\(path)"],
            logger: logger,
            onListening: onListening
        )
    }
}

/// `--healthz-path` is not an absolute path.
package struct HealthzPathError: Error, CustomStringConvertible {
    /// The rejected value.
    package var path: String
    /// `--healthz-path <path>: expected an absolute path such as /healthz`.
    package var description: String { "--healthz-path \(path): expected an absolute path such as /healthz" }
}
