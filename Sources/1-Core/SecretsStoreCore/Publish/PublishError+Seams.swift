/// The one place where the seams' own errors become ``PublishError``: the mounter's ``MountError``, the file
/// system's ``FileSystemError`` (by the step that failed) and the Kubernetes client's ``KubernetesClientError``.
/// (Provider failures are wrapped whole, as ``PublishError/provider(name:_:)``.) The steps throw these and
/// translate nothing themselves.
extension PublishError {
    /// A mount, unmount or mount-state check that failed.
    package init(_ error: MountError) {
        self = .mountFailed(targetPath: error.path, reason: error.reason)
    }

    /// What the publish or unpublish step was doing to its target when the file system failed; it decides the
    /// case and the words of the message.
    package enum TargetStep: Sendable, Equatable, CaseIterable {
        /// Creating the target directory before mounting (``PublishError/mountFailed(targetPath:reason:)``).
        case creatingDirectory
        /// Removing the target directory after unmounting (``PublishError/mountFailed(targetPath:reason:)``).
        case removingDirectory
        /// Looking into a mounted target for the files this driver wrote
        /// (``PublishError/mountFailed(targetPath:reason:)``).
        case inspectingContent
        /// Writing the provider's files into the mounted target, or listing what a provider wrote itself
        /// (``PublishError/writeFailed(targetPath:reason:)``).
        case writingFiles
    }

    /// A file-system call on `target` that failed during `step`.
    package init(_ error: FileSystemError, target: String, during step: TargetStep) {
        switch step {
        case .creatingDirectory: self = .mountFailed(targetPath: target, reason: "failed to create target path: \(error.reason)")
        case .removingDirectory: self = .mountFailed(targetPath: target, reason: "failed to remove target path: \(error.reason)")
        case .inspectingContent: self = .mountFailed(targetPath: target, reason: error.description)
        case .writingFiles: self = .writeFailed(targetPath: target, reason: error.description)
        }
    }

    /// A Kubernetes API call that failed; `notFound` is what a 404 means for this call.
    package init(_ error: KubernetesClientError, notFound: PublishError) {
        switch error {
        case .notFound: self = notFound
        case .forbidden(let message): self = .kubernetesForbidden(message)
        case .unavailable(let message, let cause): self = .kubernetesUnavailable(message, cause: cause)
        case .conflict(let message): self = .kubernetesUnavailable("conflict: \(message)")
        case .rejected(let status, let message): self = .kubernetesFailed("HTTP \(status): \(message)")
        }
    }

    /// A Kubernetes API call for which a 404 is a failure like any other (listing or writing this node's pod
    /// statuses): it becomes ``PublishError/kubernetesFailed(_:)`` naming the client's error.
    package init(_ error: KubernetesClientError) {
        self.init(error, notFound: .kubernetesFailed("\(error)"))
    }
}
