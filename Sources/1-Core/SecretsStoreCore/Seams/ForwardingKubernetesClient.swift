import Logging

/// A decorator of another ``KubernetesClient``: a conforming type names the client it wraps and implements only
/// the verbs it changes (``SharedSecretProviderClassReads`` the class read; test wrappers what they observe); every
/// other verb reaches ``wrapped`` unchanged.
///
/// ``KubernetesClient`` itself has no default verbs, so a client that leaves one out does not compile; conforming
/// to this protocol is the explicit choice of a decorator to forward what it does not implement.
package protocol ForwardingKubernetesClient: KubernetesClient {
    /// The client every verb the decorator does not implement goes to.
    var wrapped: any KubernetesClient { get }
}

extension ForwardingKubernetesClient {
    package func secretProviderClass(namespace: String, name: String, logger: Logger) async throws(KubernetesClientError) -> SecretProviderClass {
        try await wrapped.secretProviderClass(namespace: namespace, name: name, logger: logger)
    }

    @discardableResult
    package func applyPodStatus(_ status: SecretProviderClassPodStatus, logger: Logger) async throws(KubernetesClientError) -> String {
        try await wrapped.applyPodStatus(status, logger: logger)
    }

    package func podStatuses(nodeName: String, logger: Logger) async throws(KubernetesClientError) -> [SecretProviderClassPodStatus] {
        try await wrapped.podStatuses(nodeName: nodeName, logger: logger)
    }

    package func pod(namespace: String, name: String, logger: Logger) async throws(KubernetesClientError) -> PodInfo {
        try await wrapped.pod(namespace: namespace, name: name, logger: logger)
    }

    package func secret(namespace: String, name: String, logger: Logger) async throws(KubernetesClientError) -> KubernetesSecret? {
        try await wrapped.secret(namespace: namespace, name: name, logger: logger)
    }

    package func createSecret(_ secret: KubernetesSecret, logger: Logger) async throws(KubernetesClientError) {
        try await wrapped.createSecret(secret, logger: logger)
    }

    package func updateSecret(_ secret: KubernetesSecret, logger: Logger) async throws(KubernetesClientError) {
        try await wrapped.updateSecret(secret, logger: logger)
    }

    package func recordEvent(_ event: PodEvent, logger: Logger) async throws(KubernetesClientError) {
        try await wrapped.recordEvent(event, logger: logger)
    }

    package func replicaSetOwners(namespace: String, name: String, logger: Logger) async throws(KubernetesClientError) -> [OwnerReference] {
        try await wrapped.replicaSetOwners(namespace: namespace, name: name, logger: logger)
    }

    package func workload(_ reference: WorkloadReference, logger: Logger) async throws(KubernetesClientError) -> Workload {
        try await wrapped.workload(reference, logger: logger)
    }

    @discardableResult
    package func patchTemplateAnnotations(
        _ reference: WorkloadReference,
        annotations: [String: String],
        resourceVersion: String?,
        logger: Logger
    ) async throws(KubernetesClientError) -> Workload {
        try await wrapped.patchTemplateAnnotations(reference, annotations: annotations, resourceVersion: resourceVersion, logger: logger)
    }

    package func recordEvent(_ event: WorkloadEvent, logger: Logger) async throws(KubernetesClientError) {
        try await wrapped.recordEvent(event, logger: logger)
    }
}
