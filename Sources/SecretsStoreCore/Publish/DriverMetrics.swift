/// Where the driver reports what it did; the Prometheus implementation lives at the edge
/// (`SecretsStoreObservability`), tests use a recording one. Label values come from fixed sets only.
package protocol DriverMetrics: Sendable {
    func published(provider: String)
    func publishFailed(provider: String, errorType: ErrorType)
    func unpublished()
    func unpublishFailed()
    func rotated(provider: String, changed: Bool, duration: Duration)
    func rotationFailed(provider: String, errorType: ErrorType)
    func secretSynced(provider: String, duration: Duration)
    func providerFetched(provider: String, duration: Duration)
}

/// Metrics that go nowhere.
package struct NoMetrics: DriverMetrics {
    package init() {}
    package func published(provider: String) {}
    package func publishFailed(provider: String, errorType: ErrorType) {}
    package func unpublished() {}
    package func unpublishFailed() {}
    package func rotated(provider: String, changed: Bool, duration: Duration) {}
    package func rotationFailed(provider: String, errorType: ErrorType) {}
    package func secretSynced(provider: String, duration: Duration) {}
    package func providerFetched(provider: String, duration: Duration) {}
}

/// The `error_type` label: a fixed set, upstream's names where they exist, never free text.
package enum ErrorType: String, Sendable, CaseIterable {
    case failedToMount = "FailedToMount"
    case secretProviderClassNotFound = "SecretProviderClassNotFound"
    case failedToLookupProvider = "FailedToLookupProviderGRPCClient"
    case providerError = "ProviderError"
    case grpcProviderError = "GRPCProviderError"
    case fileWriteError = "FileWriteError"
    case kubernetesAPIError = "KubernetesAPIError"
    case operationPending = "OperationPending"
    case cancelled = "Cancelled"

    package init(_ error: PublishError) {
        switch error {
        case .invalidRequest, .mountFailed, .secretProviderClassInvalid: self = .failedToMount
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
