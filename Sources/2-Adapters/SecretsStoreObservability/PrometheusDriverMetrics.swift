import Prometheus
import SecretsStoreCore

#if canImport(Glibc)
import Glibc
#endif

/// ``DriverMetrics`` as Prometheus series with the upstream driver's names and labels
/// (`node_publish_total{provider,os_type}`, `rotation_reconcile_duration_sec`…), plus provider fetch duration
/// and Key Vault requests by status; with `--provider-health-check`, `provider_health_check_healthy{provider}`;
/// and the upstream Azure provider's `keyvault_request` and `grpc_request` histograms (its names, labels and
/// buckets). Label values come from fixed sets, except `provider` (a SecretProviderClass's `spec.provider`) and
/// the Azure provider's `object_name` and `grpc_message`, which upstream defines: names and status messages,
/// never secrets.
package final class PrometheusDriverMetrics: DriverMetrics {
    package let registry: PrometheusCollectorRegistry
    private static let osType = "linux"
    /// Upstream's `ExponentialBucketsRange(0.1, 2, 11)`: eleven bounds from 0.1 s to 2 s.
    private static let buckets: [Duration] = (0..<11).map { index in
        .nanoseconds(Int64(0.1e9 * Glibc.pow(20, Double(index) / 10)))
    }

    /// Series in `registry`.
    ///
    /// - Parameter driverSeries: create the driver's series that exist before anything happened
    ///   (`node_unpublish_total`, `node_unpublish_error_total` at zero), so dashboards see zeros; `provider azure`
    ///   passes `false`, its `/metrics` carrying only the upstream Azure provider's series.
    package init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(), driverSeries: Bool = true) {
        self.registry = registry
        if driverSeries {
            _ = counter("node_unpublish", "total", [("os_type", Self.osType)])
            _ = counter("node_unpublish_error", "total", [("os_type", Self.osType)])
        }
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

    /// Counts one verdict of kubelet on the built-in registrar's registration
    /// (`kubelet_registration_total{registered="true"|"false"}`).
    package func kubeletRegistrationNotified(registered: Bool) {
        counter("kubelet_registration", "total", [("registered", String(registered))]).increment()
    }

    /// Counts one Key Vault answer by HTTP status (`keyvault_request_total{status}`).
    package func keyVaultResponded(status: Int) {
        counter("keyvault_request", "total", [("status", String(status))]).increment()
    }

    /// Records one provider health check (`--provider-health-check`): the gauge
    /// `provider_health_check_healthy{provider}` is 1 while the provider's last `Version` call was answered and 0
    /// after a failure (or once its socket is gone).
    package func providerHealthChecked(provider: String, healthy: Bool) {
        registry.makeGauge(
            descriptor: MetricNameDescriptor(
                metricName: "provider_health_check_healthy",
                unitName: "",
                helpText: "1 when the provider's last health check (a v1alpha1 Version call) was answered, else 0"
            ),
            labels: [("provider", provider)]
        ).set(to: healthy ? 1.0 : 0.0)
    }

    /// The upstream Azure provider's histogram buckets for `keyvault_request` and `grpc_request`, in seconds.
    package static let azureProviderBuckets: [Duration] = [0.1, 0.2, 0.3, 0.4, 0.5, 1, 1.5, 2, 2.5, 3, 5, 10, 15, 30].map {
        .nanoseconds(Int64($0 * 1e9))
    }

    /// The labels every upstream Azure provider series carries (`service_name` is what its OpenTelemetry
    /// exporter adds from the `service.name` attribute).
    private static let azureProviderLabels = [
        ("os_type", osType), ("provider", "azure"), ("service_name", "csi-secrets-store-provider-azure"),
    ]

    /// Records one Key Vault request as the upstream Azure provider does: the histogram `keyvault_request`
    /// (seconds) with `object_type` (`secret`, `key`, `cert`), `object_name`, `error` (empty on success),
    /// `os_type`, `provider="azure"` and `service_name`. Object names are labels here because upstream's
    /// dashboards group by them; they are names, never contents.
    package func keyVaultRequestObserved(objectType: String, objectName: String, error: String, duration: Duration) {
        registry.makeDurationHistogram(
            descriptor: MetricNameDescriptor(
                metricName: "keyvault_request",
                unitName: "",
                helpText: "Distribution of how long it took to get from keyvault"
            ),
            labels: [("error", error), ("object_name", objectName), ("object_type", objectType)] + Self.azureProviderLabels,
            buckets: Self.azureProviderBuckets
        ).record(duration)
    }

    /// Records one unary gRPC call served by `provider azure` as the upstream Azure provider does: the histogram
    /// `grpc_request` (seconds) with `grpc_method` (`/v1alpha1.CSIDriverProvider/Mount`…), `grpc_code` (Go's
    /// code names: `OK`, `Unavailable`…), `grpc_message` (the status message's first line, at most 256
    /// characters; messages name objects and vaults, never secrets), `os_type`, `provider="azure"` and
    /// `service_name`.
    package func grpcRequestObserved(method: String, code: String, message: String, duration: Duration) {
        let firstLine = message.prefix { $0 != "\n" && $0 != "\r" }.prefix(256)
        registry.makeDurationHistogram(
            descriptor: MetricNameDescriptor(
                metricName: "grpc_request",
                unitName: "",
                helpText: "Distribution of how long it took for the gRPC requests"
            ),
            labels: [("grpc_code", code), ("grpc_message", String(firstLine)), ("grpc_method", method)] + Self.azureProviderLabels,
            buckets: Self.azureProviderBuckets
        ).record(duration)
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

