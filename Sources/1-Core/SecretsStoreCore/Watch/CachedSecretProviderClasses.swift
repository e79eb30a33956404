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
package struct CachedSecretProviderClasses: ForwardingKubernetesClient {
    /// The client every verb but the class read goes to.
    package let wrapped: any KubernetesClient
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
        self.wrapped = base
        self.cachedClass = cachedClass
    }

    /// The cached class, else a GET through the wrapped client.
    package func secretProviderClass(namespace: String, name: String, logger: Logger) async throws(KubernetesClientError) -> SecretProviderClass {
        if let cached = cachedClass(namespace, name) { return cached }
        return try await wrapped.secretProviderClass(namespace: namespace, name: name, logger: logger)
    }
}
