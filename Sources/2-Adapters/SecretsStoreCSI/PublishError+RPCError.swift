import GRPCCore
import SecretsStoreCore

extension RPCError {
    /// The one mapping from core errors to gRPC status codes.
    ///
    /// Kubelet treats CANCELLED, DEADLINE_EXCEEDED, UNAVAILABLE, RESOURCE_EXHAUSTED and ABORTED as "the
    /// operation may still be in progress": it keeps the target directory and retries, calling
    /// NodeUnpublishVolume if the pod goes away. Every other code is final for that attempt: kubelet removes the
    /// directory and retries with backoff. So only transient conditions get the non-final codes; a wrong
    /// SecretProviderClass or a refused identity is final and says what to fix.
    ///
    /// - Parameter deadlinePassed: the call's deadline has passed, so a cancellation is reported as
    ///   DEADLINE_EXCEEDED rather than CANCELLED.
    package init(_ error: PublishError, deadlinePassed: Bool = false) {
        self.init(code: Self.code(for: error, deadlinePassed: deadlinePassed), message: error.description)
    }

    package static func code(for error: PublishError, deadlinePassed: Bool = false) -> RPCError.Code {
        switch error {
        case .invalidRequest, .invalidTemplate: return .invalidArgument
        case .operationPending: return .aborted
        case .secretProviderClassNotFound, .secretProviderClassInvalid, .providerNotFound: return .failedPrecondition
        case .invalidPayload, .emptyVolume: return .failedPrecondition
        case .provider(_, let failure): return code(for: failure)
        case .mountFailed, .writeFailed: return .internalError
        case .kubernetesUnavailable: return .unavailable
        case .kubernetesForbidden: return .permissionDenied
        case .kubernetesFailed: return .failedPrecondition
        case .cancelled: return deadlinePassed ? .deadlineExceeded : .cancelled
        }
    }

    package static func code(for failure: ProviderFailure) -> RPCError.Code {
        switch failure {
        // Parameters the provider refuses are the mount's arguments, as a request Key Vault rejects is (the
        // selectors, JSON fields and templates of issue 24 are spelled out as INVALID_ARGUMENT).
        case .misconfigured, .rejected: return .invalidArgument
        case .objectNotFound, .invalidResponse: return .failedPrecondition
        case .permissionDenied: return .permissionDenied
        case .throttled: return .resourceExhausted
        case .unavailable: return .unavailable
        case .deadlineExceeded: return .deadlineExceeded
        case .cancelled: return .cancelled
        case .providerError: return .unknown
        case .rpc(let code, _): return Status.Code(rawValue: code).flatMap { RPCError.Code($0) } ?? .unknown
        }
    }
}
