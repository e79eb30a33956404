import SecretsStoreTemplates

/// Why a provider could not deliver a volume's objects. Thrown by every ``SecretsProvider``.
///
/// Messages name the provider, vault or object, never secret bytes or tokens.
package enum ProviderFailure: Error, Sendable, Equatable {
    /// The SecretProviderClass parameters are wrong for this provider (bad YAML, unknown object type…).
    case misconfigured(String)
    /// The store refused the identity (HTTP 401/403, an Entra ID error).
    case permissionDenied(String)
    /// A named object does not exist in the store.
    case objectNotFound(String)
    /// The store throttled us and the deadline left no room to wait.
    case throttled(String)
    /// The store or the provider could not be reached, or failed on its side (5xx, connection refused);
    /// `cause` is the transport or gRPC error when there was one (``ErrorCause``).
    case unavailable(String, cause: ErrorCause? = nil)
    /// The call ran out of time.
    case deadlineExceeded(String)
    /// The call was cancelled by the caller.
    case cancelled
    /// The provider answered with `MountResponse.error.code` set.
    case providerError(code: String)
    /// The provider's answer broke the provider API contract (bad path, no object versions, too large);
    /// `cause` is the decoding error when the answer did not parse.
    case invalidResponse(String, cause: ErrorCause? = nil)
    /// The store rejected the request itself (HTTP 400): a malformed name or version, an unsupported
    /// parameter. The message carries the store's error code and text.
    case rejected(String)
    /// The provider failed with a gRPC status the driver passes on as it is: `code` is the status number from
    /// the gRPC spec (the CSI layer owns the names; the core keeps no copy of them).
    case rpc(code: Int, message: String)
}

/// Every way NodePublishVolume and NodeUnpublishVolume can fail.
///
/// The CSI layer maps each case to exactly one gRPC status code (see `PublishError+RPCError.swift` in
/// SecretsStoreCSI); adding a case breaks that switch until someone picks a code. Messages are meant for
/// `kubectl describe pod`: they name the SecretProviderClass, provider and path, never secrets or tokens.
package enum PublishError: Error, Sendable, Equatable {
    /// A required argument is missing or wrong (kubelet treats this as final).
    case invalidRequest(String)
    /// Another operation on the same target path is still running.
    case operationPending(targetPath: String)
    /// The SecretProviderClass does not exist in the pod's namespace.
    case secretProviderClassNotFound(namespace: String, name: String)
    /// The SecretProviderClass exists but cannot be used as written.
    case secretProviderClassInvalid(namespace: String, name: String, reason: String)
    /// A template of the SecretProviderClass (`fileTemplates`, `secretObjects[].data[].template`) is wrong, or
    /// cannot be rendered over the provider's files (kubelet treats this as final, like a wrong argument).
    case invalidTemplate(namespace: String, name: String, TemplateError)
    /// No provider of that name is built in or listening on a socket in the provider directories.
    case providerNotFound(name: String, searched: [String])
    /// The provider failed.
    case provider(name: String, ProviderFailure)
    /// The provider returned a file path the driver refuses to write.
    case invalidPayload(path: String, reason: String)
    /// The provider returned nothing to write and left the volume empty.
    case emptyVolume(provider: String)
    /// Mounting, unmounting or inspecting the target failed.
    case mountFailed(targetPath: String, reason: String)
    /// Writing the files into the mounted target failed.
    case writeFailed(targetPath: String, reason: String)
    /// The Kubernetes API could not be reached or answered with a server error; `cause` is the transport error
    /// when there was one.
    case kubernetesUnavailable(String, cause: ErrorCause? = nil)
    /// The Kubernetes API refused the driver's service account.
    case kubernetesForbidden(String)
    /// The Kubernetes API rejected a request for another reason.
    case kubernetesFailed(String)
    /// The request's deadline passed or kubelet cancelled it.
    case cancelled
}

extension PublishError: CustomStringConvertible {
    /// The message kubelet reports (and `kubectl describe pod` shows): names the SecretProviderClass, provider
    /// and path, never secrets or tokens.
    package var description: String {
        switch self {
        case .invalidRequest(let message):
            return message
        case .operationPending(let target):
            return "an operation on target path \(target) is already in progress"
        case .secretProviderClassNotFound(let namespace, let name):
            return "failed to get secretproviderclass \(namespace)/\(name), error: not found"
        case .secretProviderClassInvalid(let namespace, let name, let reason):
            return "secretproviderclass \(namespace)/\(name) is invalid: \(reason)"
        case .invalidTemplate(let namespace, let name, let error):
            return "secretproviderclass \(namespace)/\(name) is invalid: \(error)"
        case .providerNotFound(let name, let searched):
            return "error connecting to provider \"\(name)\": provider not found (no \(name).sock in "
                + searched.joined(separator: ", ") + ")"
        case .provider(let name, let failure):
            return "failed to mount secrets store objects, provider \"\(name)\": \(failure)"
        case .invalidPayload(let path, let reason):
            return "provider returned an invalid file path \"\(path)\": \(reason)"
        case .emptyVolume(let provider):
            return "provider \"\(provider)\" returned no files and wrote none; refusing to publish an empty volume"
        case .mountFailed(let target, let reason):
            return "failed to mount tmpfs at \(target): \(reason)"
        case .writeFailed(let target, let reason):
            return "failed to write files to \(target): \(reason)"
        case .kubernetesUnavailable(let message, _):
            return "kubernetes API unavailable: \(message)"
        case .kubernetesForbidden(let message):
            return "kubernetes API refused the driver: \(message)"
        case .kubernetesFailed(let message):
            return "kubernetes API request failed: \(message)"
        case .cancelled:
            return "the request was cancelled or its deadline passed"
        }
    }
}

extension ProviderFailure: CustomStringConvertible {
    /// One line: the failure's kind, then the provider's message (a `misconfigured` message stands alone).
    package var description: String {
        switch self {
        case .misconfigured(let message): return message
        case .permissionDenied(let message): return "permission denied: \(message)"
        case .objectNotFound(let message): return "object not found: \(message)"
        case .throttled(let message): return "throttled: \(message)"
        case .unavailable(let message, _): return "unavailable: \(message)"
        case .deadlineExceeded(let message): return "deadline exceeded: \(message)"
        case .cancelled: return "cancelled"
        case .providerError(let code): return "provider error code \(code)"
        case .invalidResponse(let message, _): return "invalid provider response: \(message)"
        case .rejected(let message): return "rejected: \(message)"
        case .rpc(let code, let message): return "provider failed with gRPC status \(code): \(message)"
        }
    }
}
