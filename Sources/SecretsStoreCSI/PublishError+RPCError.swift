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
    package init(_ error: PublishError) {
        self.init(code: Self.code(for: error), message: error.description)
    }

    package static func code(for error: PublishError) -> RPCError.Code {
        switch error {
        case .invalidRequest: return .invalidArgument
        case .operationPending: return .aborted
        case .secretProviderClassNotFound, .secretProviderClassInvalid, .providerNotFound: return .failedPrecondition
        case .invalidPayload, .emptyVolume: return .failedPrecondition
        case .provider(_, let failure): return code(for: failure)
        case .mountFailed, .writeFailed: return .internalError
        case .kubernetesUnavailable: return .unavailable
        case .kubernetesForbidden: return .permissionDenied
        case .kubernetesFailed: return .failedPrecondition
        case .cancelled: return .cancelled
        }
    }

    package static func code(for failure: ProviderFailure) -> RPCError.Code {
        switch failure {
        case .misconfigured, .objectNotFound, .invalidResponse: return .failedPrecondition
        case .permissionDenied: return .permissionDenied
        case .throttled: return .resourceExhausted
        case .unavailable: return .unavailable
        case .deadlineExceeded: return .deadlineExceeded
        case .cancelled: return .cancelled
        case .providerError: return .unknown
        case .rpc(let code, _): return RPCError.Code(rawCode: code)
        }
    }
}

extension RPCError.Code {
    /// The GRPCCore code for a core ``RPCStatusCode``.
    package init(rawCode: RPCStatusCode) {
        switch rawCode {
        case .cancelled: self = .cancelled
        case .unknown: self = .unknown
        case .invalidArgument: self = .invalidArgument
        case .deadlineExceeded: self = .deadlineExceeded
        case .notFound: self = .notFound
        case .alreadyExists: self = .alreadyExists
        case .permissionDenied: self = .permissionDenied
        case .resourceExhausted: self = .resourceExhausted
        case .failedPrecondition: self = .failedPrecondition
        case .aborted: self = .aborted
        case .outOfRange: self = .outOfRange
        case .unimplemented: self = .unimplemented
        case .internal: self = .internalError
        case .unavailable: self = .unavailable
        case .dataLoss: self = .dataLoss
        case .unauthenticated: self = .unauthenticated
        }
    }
}

extension RPCStatusCode {
    /// The core code for a GRPCCore code (used when a provider's gRPC error is passed on).
    package init(_ code: RPCError.Code) {
        switch code {
        case .cancelled: self = .cancelled
        case .invalidArgument: self = .invalidArgument
        case .deadlineExceeded: self = .deadlineExceeded
        case .notFound: self = .notFound
        case .alreadyExists: self = .alreadyExists
        case .permissionDenied: self = .permissionDenied
        case .resourceExhausted: self = .resourceExhausted
        case .failedPrecondition: self = .failedPrecondition
        case .aborted: self = .aborted
        case .outOfRange: self = .outOfRange
        case .unimplemented: self = .unimplemented
        case .internalError: self = .internal
        case .unavailable: self = .unavailable
        case .dataLoss: self = .dataLoss
        case .unauthenticated: self = .unauthenticated
        default: self = .unknown
        }
    }
}
