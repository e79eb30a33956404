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
/// Implementations are safe to call concurrently. Every method throws ``KubernetesClientError`` (typed), so
/// callers translate it in one place without a downcast.
package protocol KubernetesClient: Sendable {
    /// Reads `secretproviderclasses/<name>` in `namespace` (group `secrets-store.csi.x-k8s.io`, version `v1`).
    func secretProviderClass(namespace: String, name: String, logger: Logger) async throws(KubernetesClientError) -> SecretProviderClass

    /// Creates the SecretProviderClassPodStatus, or overwrites its label, owner and status when it exists.
    /// Returns the object's UID (an owner for Secrets synced for a bare pod).
    @discardableResult
    func applyPodStatus(_ status: SecretProviderClassPodStatus, logger: Logger) async throws(KubernetesClientError) -> String

    /// The SecretProviderClassPodStatus objects labelled with `nodeName`.
    func podStatuses(nodeName: String, logger: Logger) async throws(KubernetesClientError) -> [SecretProviderClassPodStatus]

    /// Reads a pod.
    func pod(namespace: String, name: String, logger: Logger) async throws(KubernetesClientError) -> PodInfo

    /// Reads a Secret; `nil` when it does not exist.
    func secret(namespace: String, name: String, logger: Logger) async throws(KubernetesClientError) -> KubernetesSecret?

    /// Creates a Secret; throws ``KubernetesClientError/conflict(_:)`` when it exists.
    func createSecret(_ secret: KubernetesSecret, logger: Logger) async throws(KubernetesClientError)

    /// Replaces a Secret read earlier; throws ``KubernetesClientError/conflict(_:)`` when its resourceVersion is stale.
    func updateSecret(_ secret: KubernetesSecret, logger: Logger) async throws(KubernetesClientError)

    /// Records an event on a pod. Best effort: callers log and ignore failures.
    func recordEvent(_ event: PodEvent, logger: Logger) async throws(KubernetesClientError)
}
