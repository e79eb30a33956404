import Logging
import SecretsStoreCore
import Testing

/// ``ErrorCause``: the underlying error is kept as a value, compared by type and description, carried from the
/// Kubernetes client's error into ``PublishError``, and named in log metadata; the messages users see do not
/// change with it.
@Suite("Error causes")
struct ErrorCauseTests {
    struct Refused: Error, CustomStringConvertible {
        var description: String { "connection refused (errno: 111)" }
    }
    struct OtherRefused: Error, CustomStringConvertible {
        var description: String { "connection refused (errno: 111)" }
    }

    @Test("the cause describes itself as the underlying error does and matches that error's type only")
    func describesAndMatches() {
        let cause = ErrorCause(Refused())
        #expect(cause.description == "connection refused (errno: 111)")
        #expect(cause.typeName.hasSuffix("ErrorCauseTests.Refused"), "\(cause.typeName)")
        #expect(cause.matches(Refused.self))
        #expect(!cause.matches(OtherRefused.self))
        #expect(cause.error is Refused)
    }

    @Test("two causes are equal when type and description agree; the same text from another type differs")
    func equality() {
        #expect(ErrorCause(Refused()) == ErrorCause(Refused()))
        #expect(ErrorCause(Refused()) != ErrorCause(OtherRefused()))
        #expect(KubernetesClientError.unavailable("x", cause: ErrorCause(Refused())) != .unavailable("x"))
    }

    @Test("the text users see is the same with or without a cause")
    func messagesUnchanged() {
        let cause = ErrorCause(Refused())
        #expect("\(ProviderFailure.unavailable("m", cause: cause))" == "unavailable: m")
        #expect("\(ProviderFailure.invalidResponse("m", cause: cause))" == "invalid provider response: m")
        #expect("\(PublishError.kubernetesUnavailable("m", cause: cause))" == "kubernetes API unavailable: m")
    }

    @Test("a Kubernetes client's cause survives into PublishError, and a provider failure's into PublishError.provider")
    func carriedIntoPublishError() {
        let cause = ErrorCause(Refused())
        let published = PublishError(KubernetesClientError.unavailable("GET /x: refused", cause: cause), notFound: .cancelled)
        #expect(published == .kubernetesUnavailable("GET /x: refused", cause: cause))
        #expect(published.cause == cause)
        #expect(PublishError.provider(name: "p", .unavailable("m", cause: cause)).cause == cause)
        #expect(PublishError.provider(name: "p", .rejected("m")).cause == nil)
    }

    @Test("log metadata names the cause and its type beside the error; an error without one adds nothing")
    func metadata() {
        let failure = ProviderFailure.unavailable("m", cause: ErrorCause(Refused()))
        let metadata = ["error": "\(failure)"].addingCause(of: failure) as Logger.Metadata
        #expect(metadata["error.cause"] == "connection refused (errno: 111)")
        #expect(metadata["error.cause.type"].map { "\($0)".hasSuffix("ErrorCauseTests.Refused") } == true)
        #expect(metadata["error"] == "unavailable: m")
        let plain: Logger.Metadata = ["error": "x"]
        #expect(plain.addingCause(of: ProviderFailure.unavailable("m")) == plain)
        #expect(plain.addingCause(of: Refused()) == plain)
    }
}
