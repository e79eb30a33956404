import Logging

/// How a Kubernetes API request failed, in the terms the driver acts on.
package enum KubernetesClientError: Error, Sendable, Equatable {
    /// 404: the object does not exist.
    case notFound(String)
    /// 409: the object already exists, or a conditional update lost the race.
    case conflict(String)
    /// 401/403: the driver's identity may not do this.
    case forbidden(String)
    /// 5xx, a timeout, or no connection.
    case unavailable(String)
    /// Any other rejection (400, 422…), with the API server's message.
    case rejected(status: Int, message: String)
}

/// The Kubernetes API verbs the node path needs, and nothing more.
///
/// Implementations are safe to call concurrently. Every method throws ``KubernetesClientError``.
package protocol KubernetesClient: Sendable {
    /// Reads `secretproviderclasses/<name>` in `namespace` (group `secrets-store.csi.x-k8s.io`, version `v1`).
    func secretProviderClass(namespace: String, name: String, logger: Logger) async throws -> SecretProviderClass

    /// Creates the SecretProviderClassPodStatus, or overwrites its label, owner and status when it exists.
    func applyPodStatus(_ status: SecretProviderClassPodStatus, logger: Logger) async throws
}
