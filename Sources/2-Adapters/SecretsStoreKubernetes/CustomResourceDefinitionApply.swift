import Logging
import NIOHTTP1
import SecretsStoreCore

/// Server-side apply of CustomResourceDefinitions (`secrets-store-csi-driver crds apply`).
extension RESTKubernetesClient {
    /// The field manager the driver applies its CRDs as.
    package static let crdFieldManager = "secrets-store-csi-driver"

    /// Server-side-applies one CustomResourceDefinition: `PATCH
    /// /apis/apiextensions.k8s.io/v1/customresourcedefinitions/<name>?fieldManager=<fieldManager>&force=true`
    /// with `Content-Type: application/apply-patch+yaml` and `manifest` (the CRD's YAML) as the body. The API
    /// server creates the CRD when it does not exist and otherwise takes ownership of every field the manifest
    /// sets (`force=true`: fields another manager set, such as an older `kubectl apply`, are taken over rather
    /// than refused with a conflict).
    ///
    /// - Throws: ``KubernetesClientError``: `.forbidden` when the service account may not patch CRDs,
    ///   `.unavailable` when the API server cannot be reached, `.rejected` for a refused manifest (422).
    package func applyCustomResourceDefinition(
        named name: String,
        manifest: String,
        fieldManager: String = RESTKubernetesClient.crdFieldManager,
        logger: Logger
    ) async throws(KubernetesClientError) {
        let path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/" + PercentEncoding.escape(name, escapingTilde: true)
            + "?fieldManager=" + PercentEncoding.escape(fieldManager, escapingTilde: true) + "&force=true"
        _ = try await send(.PATCH, path, body: Array(manifest.utf8), contentType: "application/apply-patch+yaml", logger: logger)
    }
}
