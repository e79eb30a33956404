import GRPCCore
import SecretsStoreCSI
import SecretsStoreCore
import Testing

/// The one mapping from domain errors to gRPC codes, checked case by case. Kubelet treats CANCELLED,
/// DEADLINE_EXCEEDED, UNAVAILABLE, RESOURCE_EXHAUSTED and ABORTED as "may still be in progress" and every
/// other code as final, so each row is a decision about retries.
@Suite struct ErrorMappingTests {
    static let publishRows: [(PublishError, RPCError.Code)] = [
        (.invalidRequest("Volume ID missing in request"), .invalidArgument),
        (.operationPending(targetPath: "/t"), .aborted),
        (.secretProviderClassNotFound(namespace: "ns", name: "spc"), .failedPrecondition),
        (.secretProviderClassInvalid(namespace: "ns", name: "spc", reason: "provider not set"), .failedPrecondition),
        (.providerNotFound(name: "vault", searched: ["/p"]), .failedPrecondition),
        (.invalidPayload(path: "../x", reason: "escapes"), .failedPrecondition),
        (.emptyVolume(provider: "p"), .failedPrecondition),
        (.mountFailed(targetPath: "/t", reason: "EPERM"), .internalError),
        (.writeFailed(targetPath: "/t", reason: "ENOSPC"), .internalError),
        (.kubernetesUnavailable("timeout"), .unavailable),
        (.kubernetesForbidden("no"), .permissionDenied),
        (.kubernetesFailed("HTTP 422"), .failedPrecondition),
        (.cancelled, .cancelled),
    ]

    static let providerRows: [(ProviderFailure, RPCError.Code)] = [
        (.misconfigured("bad objects"), .failedPrecondition),
        (.permissionDenied("AADSTS7000215"), .permissionDenied),
        (.objectNotFound("SecretNotFound"), .failedPrecondition),
        (.throttled("429"), .resourceExhausted),
        (.unavailable("503"), .unavailable),
        (.deadlineExceeded("late"), .deadlineExceeded),
        (.cancelled, .cancelled),
        (.providerError(code: "E1"), .unknown),
        (.invalidResponse("no versions"), .failedPrecondition),
        (.rejected("BadParameter: invalid version"), .invalidArgument),
        (.rpc(code: RPCError.Code.unauthenticated.rawValue, message: "who"), .unauthenticated),
        (.rpc(code: RPCError.Code.outOfRange.rawValue, message: "x"), .outOfRange),
        (.rpc(code: 99, message: "not a gRPC code"), .unknown),
    ]

    @Test func everyPublishErrorHasItsCode() {
        for (error, code) in Self.publishRows {
            #expect(RPCError(error).code == code, "\(error)")
            #expect(RPCError(error).message == error.description)
        }
    }

    @Test func everyProviderFailureHasItsCode() {
        for (failure, code) in Self.providerRows {
            #expect(RPCError(.provider(name: "p", failure)).code == code, "\(failure)")
        }
    }

    @Test func aCancellationPastTheDeadlineIsDeadlineExceeded() {
        #expect(RPCError(.cancelled, deadlinePassed: true).code == .deadlineExceeded)
        #expect(RPCError(.cancelled, deadlinePassed: false).code == .cancelled)
        // Only a cancellation is re-coded by the deadline.
        #expect(RPCError(.kubernetesUnavailable("x"), deadlinePassed: true).code == .unavailable)
    }

    @Test func seamErrorsAreTranslatedInOnePlace() {
        #expect(PublishError(MountError(path: "/t", reason: "failed to unmount: busy")) == .mountFailed(targetPath: "/t", reason: "failed to unmount: busy"))
        let notFound = PublishError.secretProviderClassNotFound(namespace: "ns", name: "spc")
        #expect(PublishError(KubernetesClientError.notFound("gone"), notFound: notFound) == notFound)
        #expect(PublishError(KubernetesClientError.forbidden("rbac"), notFound: notFound) == .kubernetesForbidden("rbac"))
        #expect(PublishError(KubernetesClientError.unavailable("down"), notFound: notFound) == .kubernetesUnavailable("down"))
        #expect(PublishError(KubernetesClientError.conflict("stale"), notFound: notFound) == .kubernetesUnavailable("conflict: stale"))
        #expect(PublishError(KubernetesClientError.rejected(status: 422, message: "bad"), notFound: notFound) == .kubernetesFailed("HTTP 422: bad"))
    }
}
