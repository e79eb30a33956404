import CSIProtocol
import GRPCCore

/// One unary call a provider server answered, for the upstream Azure provider's `grpc_request` histogram.
package struct GRPCCallRecord: Sendable, Equatable {
    /// The full method, `/v1alpha1.CSIDriverProvider/Mount`.
    package var method: String
    /// The status code as Go's grpc `codes.Code.String()` spells it (`OK`, `Unavailable`…), which is what
    /// upstream's label carries.
    package var code: String
    /// The status message (empty on success). Provider messages name objects and vaults, never secrets.
    package var message: String
    /// From the handler's start to its answer.
    package var duration: Duration
}

extension RPCError.Code {
    /// The code's name as Go's grpc `codes.Code.String()` writes it (`Canceled` with one `l`).
    package var goName: String {
        switch self {
        case .cancelled: "Canceled"
        case .unknown: "Unknown"
        case .invalidArgument: "InvalidArgument"
        case .deadlineExceeded: "DeadlineExceeded"
        case .notFound: "NotFound"
        case .alreadyExists: "AlreadyExists"
        case .permissionDenied: "PermissionDenied"
        case .resourceExhausted: "ResourceExhausted"
        case .failedPrecondition: "FailedPrecondition"
        case .aborted: "Aborted"
        case .outOfRange: "OutOfRange"
        case .unimplemented: "Unimplemented"
        case .internalError: "Internal"
        case .unavailable: "Unavailable"
        case .dataLoss: "DataLoss"
        case .unauthenticated: "Unauthenticated"
        default: "Code(\(rawValue))"
        }
    }
}

/// Times every unary call of a wrapped handler and reports it (`grpc_request`), whatever its outcome: an
/// `RPCError`'s code and message, `Unknown` for any other error, `OK` on success. The error is rethrown
/// unchanged.
package struct GRPCCallObserver: Sendable {
    private let report: @Sendable (GRPCCallRecord) -> Void

    /// Reports every observed call to `report`.
    package init(report: @escaping @Sendable (GRPCCallRecord) -> Void) {
        self.report = report
    }

    /// Runs `handler` as the call `descriptor` and reports it under its full method with a leading slash
    /// (`/v1alpha1.CSIDriverProvider/Mount`, Go's `info.FullMethod`).
    package func observe<Response: Sendable>(
        _ descriptor: MethodDescriptor,
        isolation: isolated (any Actor)? = #isolation,
        _ handler: () async throws -> Response
    ) async throws -> Response {
        let method = "/" + descriptor.fullyQualifiedMethod
        let start = ContinuousClock.now
        do {
            let response = try await handler()
            report(GRPCCallRecord(method: method, code: "OK", message: "", duration: ContinuousClock.now - start))
            return response
        } catch let error as RPCError {
            report(GRPCCallRecord(method: method, code: error.code.goName, message: error.message, duration: ContinuousClock.now - start))
            throw error
        } catch {
            report(GRPCCallRecord(method: method, code: "Unknown", message: "", duration: ContinuousClock.now - start))
            throw error
        }
    }
}

/// A ``ProviderService`` whose `Version` and `Mount` calls are reported to a ``GRPCCallObserver``, as the
/// upstream Azure provider's logging interceptor reports them. Answers are the wrapped service's, unchanged.
package struct ObservedProviderService: V1alpha1_CSIDriverProvider.SimpleServiceProtocol {
    private let wrapped: ProviderService
    private let observer: GRPCCallObserver

    /// Serves `wrapped`, reporting to `observer`.
    package init(_ wrapped: ProviderService, observer: GRPCCallObserver) {
        self.wrapped = wrapped
        self.observer = observer
    }

    /// `/v1alpha1.CSIDriverProvider/Version`, observed.
    package func version(request: V1alpha1_VersionRequest, context: ServerContext) async throws -> V1alpha1_VersionResponse {
        try await observer.observe(V1alpha1_CSIDriverProvider.Method.Version.descriptor) {
            try await wrapped.version(request: request, context: context)
        }
    }

    /// `/v1alpha1.CSIDriverProvider/Mount`, observed.
    package func mount(request: V1alpha1_MountRequest, context: ServerContext) async throws -> V1alpha1_MountResponse {
        try await observer.observe(V1alpha1_CSIDriverProvider.Method.Mount.descriptor) {
            try await wrapped.mount(request: request, context: context)
        }
    }
}

/// A ``HealthService`` whose `Check` calls are reported to a ``GRPCCallObserver`` (upstream's interceptor sees
/// unary calls only, so `Watch` is not). Answers are the wrapped service's, unchanged.
package struct ObservedHealthService: Grpc_Health_V1_Health.SimpleServiceProtocol {
    private let wrapped: HealthService
    private let observer: GRPCCallObserver

    /// Serves `wrapped`, reporting to `observer`.
    package init(_ wrapped: HealthService, observer: GRPCCallObserver) {
        self.wrapped = wrapped
        self.observer = observer
    }

    /// `/grpc.health.v1.Health/Check`, observed.
    package func check(
        request: Grpc_Health_V1_HealthCheckRequest,
        context: ServerContext
    ) async throws -> Grpc_Health_V1_HealthCheckResponse {
        try await observer.observe(Grpc_Health_V1_Health.Method.Check.descriptor) {
            try await wrapped.check(request: request, context: context)
        }
    }

    /// `/grpc.health.v1.Health/Watch`, not observed.
    package func watch(
        request: Grpc_Health_V1_HealthCheckRequest,
        response: RPCWriter<Grpc_Health_V1_HealthCheckResponse>,
        context: ServerContext
    ) async throws {
        try await wrapped.watch(request: request, response: response, context: context)
    }
}
