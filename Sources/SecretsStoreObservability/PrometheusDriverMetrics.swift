import Prometheus
import SecretsStoreCore

#if canImport(Glibc)
import Glibc
#endif

/// ``DriverMetrics`` as Prometheus series with the upstream driver's names and labels
/// (`node_publish_total{provider,os_type}`, `rotation_reconcile_duration_sec`…), plus provider fetch duration
/// and Key Vault requests by status. Label values come from fixed sets; object names never appear.
package final class PrometheusDriverMetrics: DriverMetrics {
    package let registry: PrometheusCollectorRegistry
    private static let osType = "linux"
    /// Upstream's `ExponentialBucketsRange(0.1, 2, 11)`: eleven bounds from 0.1 s to 2 s.
    private static let buckets: [Duration] = (0..<11).map { index in
        .nanoseconds(Int64(0.1e9 * Glibc.pow(20, Double(index) / 10)))
    }

    package init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        // Create the series that exist before anything happened, so dashboards see zeros.
        _ = counter("node_unpublish", "total", [("os_type", Self.osType)])
        _ = counter("node_unpublish_error", "total", [("os_type", Self.osType)])
    }

    package func published(provider: String) {
        counter("node_publish", "total", [("provider", provider), ("os_type", Self.osType)]).increment()
    }

    package func publishFailed(provider: String, errorType: ErrorType) {
        counter("node_publish_error", "total", [("provider", provider), ("error_type", errorType.rawValue), ("os_type", Self.osType)]).increment()
    }

    package func unpublished() {
        counter("node_unpublish", "total", [("os_type", Self.osType)]).increment()
    }

    package func unpublishFailed() {
        counter("node_unpublish_error", "total", [("os_type", Self.osType)]).increment()
    }

    package func rotated(provider: String, changed: Bool, duration: Duration) {
        counter("rotation_reconcile", "total", [("provider", provider), ("os_type", Self.osType), ("rotated", String(changed))]).increment()
        histogram("rotation_reconcile_duration", "sec", [("os_type", Self.osType)])
            .record(duration)
    }

    package func rotationFailed(provider: String, errorType: ErrorType) {
        counter("rotation_reconcile_error", "total", [("provider", provider), ("error_type", errorType.rawValue), ("os_type", Self.osType), ("rotated", "false")]).increment()
    }

    package func secretSynced(provider: String, duration: Duration) {
        counter("sync_k8s_secret", "total", [("provider", provider), ("os_type", Self.osType)]).increment()
        histogram("k8s_secret_duration", "sec", [("os_type", Self.osType)]).record(duration)
    }

    package func providerFetched(provider: String, duration: Duration) {
        histogram("provider_fetch_duration", "sec", [("provider", provider)])
            .record(duration)
    }

    /// Counts one Key Vault answer by HTTP status (`keyvault_request_total{status}`).
    package func keyVaultResponded(status: Int) {
        counter("keyvault_request", "total", [("status", String(status))]).increment()
    }

    private func counter(_ name: String, _ unit: String, _ labels: [(String, String)]) -> Counter {
        registry.makeCounter(descriptor: MetricNameDescriptor(metricName: name, unitName: unit, helpText: ""), labels: labels)
    }

    private func histogram(_ name: String, _ unit: String, _ labels: [(String, String)]) -> DurationHistogram {
        registry.makeDurationHistogram(
            descriptor: MetricNameDescriptor(metricName: name, unitName: unit, helpText: ""),
            labels: labels,
            buckets: Self.buckets
        )
    }

    /// The exposition text.
    package func render() -> String {
        registry.emitToString()
    }
}

