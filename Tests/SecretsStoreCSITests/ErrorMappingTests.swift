import GRPCCore
import SecretsStoreCSI
import SecretsStoreCore
import SecretsStoreTemplates
import Testing

/// The one mapping from domain errors to gRPC codes, checked case by case. Kubelet treats CANCELLED,
/// DEADLINE_EXCEEDED, UNAVAILABLE, RESOURCE_EXHAUSTED and ABORTED as "may still be in progress" and every
/// other code as final, so each row is a decision about retries.
@Suite struct ErrorMappingTests {
    /// The expected code of every publish error, a `switch` with no `default:`: a new case of ``PublishError``
    /// does not compile until it is given its code here (and an example row below). The name says which case
    /// an example row is, so the rows can be checked to cover every case.
    static func expected(_ error: PublishError) -> (case: String, code: RPCError.Code) {
        switch error {
        case .invalidRequest: return ("invalidRequest", .invalidArgument)
        case .operationPending: return ("operationPending", .aborted)
        case .secretProviderClassNotFound: return ("secretProviderClassNotFound", .failedPrecondition)
        case .secretProviderClassInvalid: return ("secretProviderClassInvalid", .failedPrecondition)
        case .invalidTemplate: return ("invalidTemplate", .invalidArgument)
        case .providerNotFound: return ("providerNotFound", .failedPrecondition)
        case .invalidPayload: return ("invalidPayload", .failedPrecondition)
        case .emptyVolume: return ("emptyVolume", .failedPrecondition)
        case .provider(_, let failure): return ("provider." + expected(failure).case, expected(failure).code)
        case .mountFailed: return ("mountFailed", .internalError)
        case .writeFailed: return ("writeFailed", .internalError)
        case .kubernetesUnavailable: return ("kubernetesUnavailable", .unavailable)
        case .kubernetesForbidden: return ("kubernetesForbidden", .permissionDenied)
        case .kubernetesFailed: return ("kubernetesFailed", .failedPrecondition)
        case .cancelled: return ("cancelled", .cancelled)
        }
    }

    /// The same for every provider failure, also without `default:`.
    static func expected(_ failure: ProviderFailure) -> (case: String, code: RPCError.Code) {
        switch failure {
        case .misconfigured: return ("misconfigured", .invalidArgument)
        case .permissionDenied: return ("permissionDenied", .permissionDenied)
        case .objectNotFound: return ("objectNotFound", .failedPrecondition)
        case .throttled: return ("throttled", .resourceExhausted)
        case .unavailable: return ("unavailable", .unavailable)
        case .deadlineExceeded: return ("deadlineExceeded", .deadlineExceeded)
        case .cancelled: return ("cancelled", .cancelled)
        case .providerError: return ("providerError", .unknown)
        case .invalidResponse: return ("invalidResponse", .failedPrecondition)
        case .rejected: return ("rejected", .invalidArgument)
        case .rpc(let code, _):
            // A provider's own gRPC code passes through when it is one; anything else is UNKNOWN.
            return ("rpc", Status.Code(rawValue: code).flatMap { RPCError.Code($0) } ?? .unknown)
        }
    }

    /// One example of every case (the provider case once per failure, below).
    static let publishErrors: [PublishError] = [
        .invalidRequest("Volume ID missing in request"),
        .operationPending(targetPath: "/t"),
        .secretProviderClassNotFound(namespace: "ns", name: "spc"),
        .secretProviderClassInvalid(namespace: "ns", name: "spc", reason: "provider not set"),
        .invalidTemplate(namespace: "ns", name: "spc", TemplateError(.secretObjectKey(secretName: "db", key: "URL"), .unknownFile("passwrod"))),
        .providerNotFound(name: "vault", searched: ["/p"]),
        .invalidPayload(path: "../x", reason: "escapes"),
        .emptyVolume(provider: "p"),
        .mountFailed(targetPath: "/t", reason: "EPERM"),
        .writeFailed(targetPath: "/t", reason: "ENOSPC"),
        .kubernetesUnavailable("timeout"),
        .kubernetesForbidden("no"),
        .kubernetesFailed("HTTP 422"),
        .cancelled,
    ] + providerFailures.map { .provider(name: "p", $0) }

    static let providerFailures: [ProviderFailure] = [
        .misconfigured("bad objects"),
        .permissionDenied("AADSTS7000215"),
        .objectNotFound("SecretNotFound"),
        .throttled("429"),
        .unavailable("503"),
        .deadlineExceeded("late"),
        .cancelled,
        .providerError(code: "E1"),
        .invalidResponse("no versions"),
        .rejected("BadParameter: invalid version"),
        .rpc(code: RPCError.Code.unauthenticated.rawValue, message: "who"),
        .rpc(code: RPCError.Code.outOfRange.rawValue, message: "x"),
        .rpc(code: 99, message: "not a gRPC code"),
    ]

    @Test func everyPublishErrorHasItsCode() {
        // Every case has an example: 14 cases besides .provider, and .provider with each of the 11 failures.
        #expect(Set(Self.publishErrors.map { Self.expected($0).case }).count == 14 + 11)
        for error in Self.publishErrors {
            #expect(RPCError(error).code == Self.expected(error).code, "\(error)")
            #expect(RPCError(error).message == error.description)
        }
    }

    @Test func everyProviderFailureHasItsCode() {
        #expect(Set(Self.providerFailures.map { Self.expected($0).case }).count == 11)
        for failure in Self.providerFailures {
            #expect(RPCError.code(for: failure) == Self.expected(failure).code, "\(failure)")
        }
        // The pass-through of a provider's own code, spelled out.
        #expect(RPCError.code(for: .rpc(code: RPCError.Code.unauthenticated.rawValue, message: "who")) == .unauthenticated)
        #expect(RPCError.code(for: .rpc(code: RPCError.Code.outOfRange.rawValue, message: "x")) == .outOfRange)
        #expect(RPCError.code(for: .rpc(code: 99, message: "not a gRPC code")) == .unknown)
    }

    @Test func aCancellationPastTheDeadlineIsDeadlineExceeded() {
        #expect(RPCError(.cancelled, deadlinePassed: true).code == .deadlineExceeded)
        #expect(RPCError(.cancelled, deadlinePassed: false).code == .cancelled)
        // Only a cancellation is re-coded by the deadline.
        #expect(RPCError(.kubernetesUnavailable("x"), deadlinePassed: true).code == .unavailable)
    }

    /// The translation of every Kubernetes client error, a `switch` with no `default:`: a new case of
    /// ``KubernetesClientError`` does not compile until its publish error is chosen here (and given an example
    /// below). `notFound` is what a 404 means for the call.
    static func expected(_ error: KubernetesClientError, notFound: PublishError) -> (case: String, translated: PublishError) {
        switch error {
        case .notFound: return ("notFound", notFound)
        case .forbidden(let message): return ("forbidden", .kubernetesForbidden(message))
        case .unavailable(let message, let cause): return ("unavailable", .kubernetesUnavailable(message, cause: cause))
        case .conflict(let message): return ("conflict", .kubernetesUnavailable("conflict: " + message))
        case .rejected(let status, let message): return ("rejected", .kubernetesFailed("HTTP \(status): " + message))
        }
    }

    /// The same for a file-system error by the step that failed, also without `default:`.
    static func expected(_ error: FileSystemError, target: String, during step: PublishError.TargetStep) -> PublishError {
        switch step {
        case .creatingDirectory: return .mountFailed(targetPath: target, reason: "failed to create target path: " + error.reason)
        case .removingDirectory: return .mountFailed(targetPath: target, reason: "failed to remove target path: " + error.reason)
        case .inspectingContent: return .mountFailed(targetPath: target, reason: error.description)
        case .writingFiles: return .writeFailed(targetPath: target, reason: error.description)
        }
    }

    /// One example of every Kubernetes client error.
    static let kubernetesErrors: [KubernetesClientError] = [
        .notFound("gone"), .forbidden("rbac"), .unavailable("down"), .conflict("stale"), .rejected(status: 422, message: "bad"),
    ]

    @Test func seamErrorsAreTranslatedInOnePlace() {
        #expect(PublishError(MountError(path: "/t", reason: "failed to unmount: busy")) == .mountFailed(targetPath: "/t", reason: "failed to unmount: busy"))

        // Every Kubernetes client error (the examples cover every case), with and without a meaning for 404.
        #expect(Set(Self.kubernetesErrors.map { Self.expected($0, notFound: .cancelled).case }).count == 5)
        let notFound = PublishError.secretProviderClassNotFound(namespace: "ns", name: "spc")
        for error in Self.kubernetesErrors {
            #expect(PublishError(error, notFound: notFound) == Self.expected(error, notFound: notFound).translated, "\(error)")
            #expect(PublishError(error) == Self.expected(error, notFound: .kubernetesFailed("\(error)")).translated, "\(error)")
        }
        // The messages kubelet shows, spelled out.
        #expect(PublishError(KubernetesClientError.conflict("stale"), notFound: notFound).description == "kubernetes API unavailable: conflict: stale")
        #expect(PublishError(KubernetesClientError.rejected(status: 422, message: "bad")).description == "kubernetes API request failed: HTTP 422: bad")
        #expect(PublishError(KubernetesClientError.notFound("gone")).description == "kubernetes API request failed: notFound(\"gone\")")

        // Every step a file-system error can come from.
        let failure = FileSystemError(operation: "mkdir", path: "/t", reason: "Permission denied", errno: 13)
        for step in PublishError.TargetStep.allCases {
            #expect(PublishError(failure, target: "/t", during: step) == Self.expected(failure, target: "/t", during: step), "\(step)")
        }
        #expect(
            PublishError(failure, target: "/t", during: .creatingDirectory).description
                == "failed to mount tmpfs at /t: failed to create target path: Permission denied"
        )
        #expect(PublishError(failure, target: "/t", during: .writingFiles).description == "failed to write files to /t: mkdir /t: Permission denied")
    }
}
