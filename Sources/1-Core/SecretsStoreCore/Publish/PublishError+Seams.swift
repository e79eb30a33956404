/// The one place where the seams' own errors become ``PublishError``: the mounter's ``MountError``, the file
/// system's ``FileSystemError`` and the Kubernetes client's ``KubernetesClientError``. (Provider failures are
/// wrapped whole, as ``PublishError/provider(name:_:)``.)
extension PublishError {
    /// A mount, unmount or mount-state check that failed.
    package init(_ error: MountError) {
        self = .mountFailed(targetPath: error.path, reason: error.reason)
    }

    /// A Kubernetes API call that failed; `notFound` is what a 404 means for this call.
    package init(_ error: KubernetesClientError, notFound: PublishError) {
        switch error {
        case .notFound: self = notFound
        case .forbidden(let message): self = .kubernetesForbidden(message)
        case .unavailable(let message): self = .kubernetesUnavailable(message)
        case .conflict(let message): self = .kubernetesUnavailable("conflict: \(message)")
        case .rejected(let status, let message): self = .kubernetesFailed("HTTP \(status): \(message)")
        }
    }
}
