import Logging

/// A ``KubernetesClient`` that answers ``secretProviderClass(namespace:name:logger:)`` from a watch cache
/// (a ``Reflector`` over every namespace's SecretProviderClasses) and forwards every other call to the
/// client it wraps.
///
/// Promises:
/// - a class the cache holds, once the cache has synced, is answered from it with no request;
/// - before the first list has been applied, or for a class the cache does not hold (created a moment ago
///   and not yet seen, or absent), the read is a GET through the wrapped client, whose answer (or
///   ``KubernetesClientError/notFound(_:)``) is returned unchanged;
/// - every other verb, including the workload verbs, is the wrapped client's own.
package struct CachedSecretProviderClasses: KubernetesClient {
    private let base: any KubernetesClient
    private let cachedClass: @Sendable (_ namespace: String, _ name: String) -> SecretProviderClass?

    /// Reads classes from `cache` (keyed `namespace/name`, as ``Reflector/Source/secretProviderClasses(_:namespace:)``
    /// keys them) when it has synced, and everything else through `base`.
    package init(_ base: any KubernetesClient, cache: Reflector<SecretProviderClass>) {
        self.init(base) { namespace, name in
            guard cache.hasSynced else { return nil }
            return cache.object(forKey: "\(namespace)/\(name)")
        }
    }

    /// Reads classes from `cachedClass` when it has one (`nil`: not cached or not synced), and everything else
    /// through `base`.
    package init(_ base: any KubernetesClient, cachedClass: @escaping @Sendable (_ namespace: String, _ name: String) -> SecretProviderClass?) {
        self.base = base
        self.cachedClass = cachedClass
    }

    /// The cached class, else a GET through the wrapped client.
    package func secretProviderClass(namespace: String, name: String, logger: Logger) async throws(KubernetesClientError) -> SecretProviderClass {
        if let cached = cachedClass(namespace, name) { return cached }
        return try await base.secretProviderClass(namespace: namespace, name: name, logger: logger)
    }

    // MARK: Forwarded

    @discardableResult
    package func applyPodStatus(_ status: SecretProviderClassPodStatus, logger: Logger) async throws(KubernetesClientError) -> String {
        try await base.applyPodStatus(status, logger: logger)
    }

    package func podStatuses(nodeName: String, logger: Logger) async throws(KubernetesClientError) -> [SecretProviderClassPodStatus] {
        try await base.podStatuses(nodeName: nodeName, logger: logger)
    }

    package func pod(namespace: String, name: String, logger: Logger) async throws(KubernetesClientError) -> PodInfo {
        try await base.pod(namespace: namespace, name: name, logger: logger)
    }

    package func secret(namespace: String, name: String, logger: Logger) async throws(KubernetesClientError) -> KubernetesSecret? {
        try await base.secret(namespace: namespace, name: name, logger: logger)
    }

    package func createSecret(_ secret: KubernetesSecret, logger: Logger) async throws(KubernetesClientError) {
        try await base.createSecret(secret, logger: logger)
    }

    package func updateSecret(_ secret: KubernetesSecret, logger: Logger) async throws(KubernetesClientError) {
        try await base.updateSecret(secret, logger: logger)
    }

    package func recordEvent(_ event: PodEvent, logger: Logger) async throws(KubernetesClientError) {
        try await base.recordEvent(event, logger: logger)
    }

    package func replicaSetOwners(namespace: String, name: String, logger: Logger) async throws(KubernetesClientError) -> [OwnerReference] {
        try await base.replicaSetOwners(namespace: namespace, name: name, logger: logger)
    }

    package func workload(_ reference: WorkloadReference, logger: Logger) async throws(KubernetesClientError) -> Workload {
        try await base.workload(reference, logger: logger)
    }

    @discardableResult
    package func patchTemplateAnnotations(
        _ reference: WorkloadReference,
        annotations: [String: String],
        resourceVersion: String?,
        logger: Logger
    ) async throws(KubernetesClientError) -> Workload {
        try await base.patchTemplateAnnotations(reference, annotations: annotations, resourceVersion: resourceVersion, logger: logger)
    }

    package func recordEvent(_ event: WorkloadEvent, logger: Logger) async throws(KubernetesClientError) {
        try await base.recordEvent(event, logger: logger)
    }
}
