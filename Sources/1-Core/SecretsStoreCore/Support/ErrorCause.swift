import Logging

/// The error underneath one of the driver's own errors, kept as a value beside its message, so that a log line
/// can name it (``Logging/Logger/Metadata/addingCause(of:)``) and a test can match its type
/// (``matches(_:)``, or `cause.error as? SomeError`) instead of a substring of the message.
///
/// Its ``description`` is the underlying error's own (`String(describing:)`, the text the message was built
/// from before this type existed), and two causes are equal when the underlying errors have the same dynamic
/// type and the same description: errors need not be `Equatable` to be wrapped, and the enums that carry a cause
/// stay `Equatable`.
///
/// Never wrap an error whose description can hold a secret or a token. The adapters wrap only:
/// - AsyncHTTPClient's and SwiftNIO's transport errors (`HTTPClientError`, `IOError`, `NIOConnectionError`,
///   NIOSSL's handshake errors, `NIOTooManyBytesError`): they name a host, port, errno, TLS reason or limit,
///   never a request or response body. The one `HTTPClientError` that names a value the driver sent,
///   `invalidHeaderFieldValues`, cannot arise: both HTTP clients refuse a header value with a control
///   character (a bearer token read from a damaged file) before the request reaches AsyncHTTPClient.
/// - gRPC's `RPCError` and `RuntimeError`: the status code, the peer's status message (already part of the
///   failure's message) and their own cause; never metadata or a request.
/// - `DecodingError` from `JSONDecoder`: the coding path, the type expected and what was found instead (its
///   kind, not its value), never the body it read.
package struct ErrorCause: Error, Sendable, Equatable, CustomStringConvertible {
    /// The underlying error.
    package let error: any Error

    /// Keeps `error` as the cause.
    package init(_ error: any Error) {
        self.error = error
    }

    /// The underlying error's description.
    package var description: String { String(describing: error) }

    /// The underlying error's type, module-qualified (`AsyncHTTPClient.HTTPClientError`).
    package var typeName: String { String(reflecting: type(of: error)) }

    /// Whether the underlying error is a `type`.
    package func matches<Cause: Error>(_ type: Cause.Type) -> Bool {
        error is Cause
    }

    /// Same dynamic type and same description.
    package static func == (lhs: ErrorCause, rhs: ErrorCause) -> Bool {
        ObjectIdentifier(type(of: lhs.error)) == ObjectIdentifier(type(of: rhs.error)) && lhs.description == rhs.description
    }
}

/// An error that may carry the ``ErrorCause`` it was made from.
package protocol CarriesErrorCause: Error {
    /// The underlying error, when this one was made from another; `nil` otherwise.
    var cause: ErrorCause? { get }
}

extension Logger.Metadata {
    /// These entries plus `error.cause` (the cause's description) and `error.cause.type` (its type) when `error`
    /// carries an ``ErrorCause``; these entries unchanged otherwise.
    package func addingCause(of error: any Error) -> Logger.Metadata {
        guard let cause = (error as? any CarriesErrorCause)?.cause else { return self }
        var metadata = self
        metadata["error.cause"] = "\(cause.description)"
        metadata["error.cause.type"] = "\(cause.typeName)"
        return metadata
    }
}

extension ProviderFailure: CarriesErrorCause {
    /// The transport, gRPC or decoding error behind an ``unavailable(_:cause:)`` or
    /// ``invalidResponse(_:cause:)`` failure, when it came from one.
    package var cause: ErrorCause? {
        switch self {
        case .unavailable(_, let cause), .invalidResponse(_, let cause): return cause
        case .misconfigured, .permissionDenied, .objectNotFound, .throttled, .deadlineExceeded, .cancelled,
            .providerError, .rejected, .rpc:
            return nil
        }
    }
}

extension KubernetesClientError: CarriesErrorCause {
    /// The transport error behind an ``unavailable(_:cause:)`` failure, when it came from one.
    package var cause: ErrorCause? {
        switch self {
        case .unavailable(_, let cause): return cause
        case .notFound, .conflict, .forbidden, .rejected: return nil
        }
    }
}

extension PublishError: CarriesErrorCause {
    /// The cause of the provider's failure or of the Kubernetes API's unavailability, when there is one.
    package var cause: ErrorCause? {
        switch self {
        case .provider(_, let failure): return failure.cause
        case .kubernetesUnavailable(_, let cause): return cause
        // The other cases come from the driver's own checks or from errors that keep no cause; a case that comes
        // to carry one names it above.
        default: return nil
        }
    }
}
