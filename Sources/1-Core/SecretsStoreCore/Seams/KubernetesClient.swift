import Logging

/// How a Kubernetes API request failed, in the terms the driver acts on.
package enum KubernetesClientError: Error, Sendable, Equatable {
    /// 404: the object does not exist.
    case notFound(String)
    /// 409: the object already exists, or a conditional update lost the race.
    case conflict(String)
    /// 401/403: the driver's identity may not do this.
    case forbidden(String)
    /// 5xx, a timeout, or no connection; `cause` is the transport error when there was one (``ErrorCause``).
    case unavailable(String, cause: ErrorCause? = nil)
    /// Any other rejection (400, 422…), with the API server's message.
    case rejected(status: Int, message: String)
}

/// The Kubernetes API verbs the node path needs, and nothing more.
///
/// Implementations are safe to call concurrently. Every method throws ``KubernetesClientError`` (typed), so
/// callers translate it in one place without a downcast. No method has a default: a conforming type that leaves
/// one out does not compile (a test double that has no use for a verb says what it does instead, explicitly).
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

    // Restart on rotation (`--enable-rotation-restart`); never called without it.

    /// Reads `apps/v1` `replicasets/<name>` in `namespace` and returns its `metadata.ownerReferences` (its
    /// Deployment, when it has one).
    func replicaSetOwners(namespace: String, name: String, logger: Logger) async throws(KubernetesClientError) -> [OwnerReference]

    /// Reads an `apps/v1` Deployment, StatefulSet or DaemonSet.
    func workload(_ reference: WorkloadReference, logger: Logger) async throws(KubernetesClientError) -> Workload

    /// Merge-patches `spec.template.metadata.annotations` of the workload with `annotations` (other
    /// annotations are kept) and returns the workload as written. With `resourceVersion` set the patch is
    /// conditional: ``KubernetesClientError/conflict(_:)`` when the workload changed since it was read.
    @discardableResult
    func patchTemplateAnnotations(
        _ reference: WorkloadReference,
        annotations: [String: String],
        resourceVersion: String?,
        logger: Logger
    ) async throws(KubernetesClientError) -> Workload

    /// Records an event on a workload. Best effort: callers log and ignore failures.
    func recordEvent(_ event: WorkloadEvent, logger: Logger) async throws(KubernetesClientError)
}
