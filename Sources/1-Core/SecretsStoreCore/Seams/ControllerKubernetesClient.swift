import Logging

/// A watch stream: events in order; it finishes when the server closes the watch (the caller watches again
/// from the last resourceVersion) and throws ``KubernetesClientError`` when it fails, with
/// ``KubernetesClientError/rejected(status:message:)`` status 410 when the resourceVersion is too old (an
/// HTTP 410 or an `ERROR` event with code 410: the caller lists again).
package typealias WatchStream<Object: Sendable> = AsyncThrowingStream<WatchEvent<Object>, any Error>

/// The Kubernetes API verbs the sync controller needs beyond the node path.
///
/// Implementations are safe to call concurrently; every method throws ``KubernetesClientError``.
package protocol ControllerKubernetesClient: KubernetesClient {
    // MARK: SecretProviderClasses

    /// Lists SecretProviderClasses in `namespace` (`nil`: every namespace), with the list's resourceVersion.
    func listSecretProviderClasses(namespace: String?, logger: Logger) async throws(KubernetesClientError) -> Listed<SecretProviderClass>

    /// Watches SecretProviderClasses from `resourceVersion` (`allowWatchBookmarks=true`).
    func watchSecretProviderClasses(namespace: String?, resourceVersion: String, logger: Logger) -> WatchStream<SecretProviderClass>

    /// Replaces the class's `status` through `secretproviderclasses/<name>/status` (spec and metadata are not
    /// touched). Unconditional: the controller is the status's only writer.
    func updateSecretProviderClassStatus(
        namespace: String,
        name: String,
        status: SecretProviderClassStatus,
        logger: Logger
    ) async throws(KubernetesClientError)

    /// Records an event on a SecretProviderClass. Best effort: callers log and ignore failures.
    func recordEvent(_ event: SecretProviderClassEvent, logger: Logger) async throws(KubernetesClientError)

    // MARK: Secrets the controller keeps

    /// Lists Secrets carrying every label of `labelSelector` in `namespace` (`nil`: every namespace).
    func listSecrets(namespace: String?, labelSelector: [String: String], logger: Logger) async throws(KubernetesClientError) -> Listed<KubernetesSecret>

    /// Watches Secrets carrying every label of `labelSelector` from `resourceVersion`.
    func watchSecrets(namespace: String?, labelSelector: [String: String], resourceVersion: String, logger: Logger) -> WatchStream<KubernetesSecret>

    /// Deletes a Secret; not found is not an error.
    func deleteSecret(namespace: String, name: String, logger: Logger) async throws(KubernetesClientError)

    // MARK: Identity

    /// Whether `serviceaccounts/<name>` exists in `namespace` (a GET; 404 is `false`).
    func serviceAccountExists(namespace: String, name: String, logger: Logger) async throws(KubernetesClientError) -> Bool

    /// `POST /api/v1/namespaces/<namespace>/serviceaccounts/<name>/token` with `audiences: [audience]` and
    /// `expirationSeconds`.
    func requestToken(
        namespace: String,
        serviceAccount: String,
        audience: String,
        expirationSeconds: Int,
        logger: Logger
    ) async throws(KubernetesClientError) -> ServiceAccountToken

    /// `spec.tokenRequests[].audience` of the cluster-scoped `storage.k8s.io/v1` CSIDriver `name`; empty when
    /// it has none; ``KubernetesClientError/notFound(_:)`` when there is no such driver.
    func csiDriverTokenAudiences(driverName: String, logger: Logger) async throws(KubernetesClientError) -> [String]

    // MARK: Leader election

    /// The Lease, or `nil` when it does not exist.
    func lease(namespace: String, name: String, logger: Logger) async throws(KubernetesClientError) -> LeaseRecord?

    /// Creates the Lease; ``KubernetesClientError/conflict(_:)`` when it exists. Returns it as written.
    func createLease(_ lease: LeaseRecord, logger: Logger) async throws(KubernetesClientError) -> LeaseRecord

    /// Replaces the Lease read with `lease.resourceVersion`; ``KubernetesClientError/conflict(_:)`` when it is
    /// stale. Returns it as written.
    func updateLease(_ lease: LeaseRecord, logger: Logger) async throws(KubernetesClientError) -> LeaseRecord
}
