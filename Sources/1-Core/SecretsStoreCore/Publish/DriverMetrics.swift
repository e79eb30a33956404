/// Where the driver reports what it did; the Prometheus implementation lives at the edge
/// (`SecretsStoreObservability`). A publisher built without one reports to ``NoMetrics``; tests read the
/// Prometheus one's `/metrics` from the driver as assembled. Label values: `error_type` from the fixed set
/// ``ErrorType``, `rotated` true or false, and `provider`, the SecretProviderClass's `spec.provider` (a name its
/// author chose, never a secret).
package protocol DriverMetrics: Sendable {
    /// A NodePublishVolume succeeded, including one that found the volume already published. `provider` is
    /// `spec.provider` (empty when it was never learnt). Prometheus: `node_publish_total{provider,os_type}`.
    func published(provider: String)
    /// A NodePublishVolume failed after the request was validated and the target lock taken; `provider` is empty
    /// when the SecretProviderClass was not read yet. Prometheus:
    /// `node_publish_error_total{provider,error_type,os_type}`.
    func publishFailed(provider: String, errorType: ErrorType)
    /// A NodeUnpublishVolume succeeded (an absent target counts). Prometheus: `node_unpublish_total{os_type}`.
    func unpublished()
    /// A NodeUnpublishVolume failed, invalid arguments included. Prometheus: `node_unpublish_error_total{os_type}`.
    func unpublishFailed()
    /// One volume was fetched again and applied; `changed` tells whether its files were swapped, `duration` runs
    /// from the start of its group's fetch. Prometheus: `rotation_reconcile_total{provider,os_type,rotated}` and
    /// `rotation_reconcile_duration_sec{os_type}`.
    func rotated(provider: String, changed: Bool, duration: Duration)
    /// A refresh of one volume failed and it kept its old files. Prometheus:
    /// `rotation_reconcile_error_total{provider,error_type,os_type,rotated="false"}`.
    func rotationFailed(provider: String, errorType: ErrorType)
    /// Every `secretObjects` Secret of one volume was synced, taking `duration`. Prometheus:
    /// `sync_k8s_secret_total{provider,os_type}` and `k8s_secret_duration_sec{os_type}` (upstream's histogram is
    /// `sync_k8s_secret_duration_sec`).
    func secretSynced(provider: String, duration: Duration)
    /// A provider call succeeded after `duration` (counted before its answer is validated). Prometheus:
    /// `provider_fetch_duration_sec{provider}`, which upstream does not have.
    func providerFetched(provider: String, duration: Duration)
}

/// Metrics that go nowhere.
package struct NoMetrics: DriverMetrics {
    /// Metrics that are dropped.
    package init() {}
    /// Ignored.
    package func published(provider: String) {}
    /// Ignored.
    package func publishFailed(provider: String, errorType: ErrorType) {}
    /// Ignored.
    package func unpublished() {}
    /// Ignored.
    package func unpublishFailed() {}
    /// Ignored.
    package func rotated(provider: String, changed: Bool, duration: Duration) {}
    /// Ignored.
    package func rotationFailed(provider: String, errorType: ErrorType) {}
    /// Ignored.
    package func secretSynced(provider: String, duration: Duration) {}
    /// Ignored.
    package func providerFetched(provider: String, duration: Duration) {}
}

/// The `error_type` label: a fixed set, upstream's names where they exist, never free text.
package enum ErrorType: String, Sendable, CaseIterable {
    /// Invalid request, mount or unmount failure, or an unusable SecretProviderClass.
    case failedToMount = "FailedToMount"
    /// The SecretProviderClass does not exist.
    case secretProviderClassNotFound = "SecretProviderClassNotFound"
    /// No built-in provider and no `<name>.sock` of that name.
    case failedToLookupProvider = "FailedToLookupProviderGRPCClient"
    /// The provider answered with `MountResponse.error.code` set.
    case providerError = "ProviderError"
    /// Any other provider failure (unreachable, refused identity, bad answer…).
    case grpcProviderError = "GRPCProviderError"
    /// An invalid file path in the answer, an empty volume, or a failed write.
    case fileWriteError = "FileWriteError"
    /// A Kubernetes API call failed (unavailable, forbidden or rejected).
    case kubernetesAPIError = "KubernetesAPIError"
    /// Another operation held the target.
    case operationPending = "OperationPending"
    /// Kubelet cancelled the call or its deadline passed.
    case cancelled = "Cancelled"

    /// The label for `error`: every ``PublishError`` case maps to exactly one.
    package init(_ error: PublishError) {
        switch error {
        case .invalidRequest, .mountFailed, .secretProviderClassInvalid, .invalidTemplate: self = .failedToMount
        case .secretProviderClassNotFound: self = .secretProviderClassNotFound
        case .providerNotFound: self = .failedToLookupProvider
        case .provider(_, .providerError): self = .providerError
        case .provider: self = .grpcProviderError
        case .invalidPayload, .emptyVolume, .writeFailed: self = .fileWriteError
        case .kubernetesUnavailable, .kubernetesForbidden, .kubernetesFailed: self = .kubernetesAPIError
        case .operationPending: self = .operationPending
        case .cancelled: self = .cancelled
        }
    }
}
