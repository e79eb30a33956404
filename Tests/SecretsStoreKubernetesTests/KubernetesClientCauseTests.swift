import Logging
import SecretsStoreCore
import SecretsStoreKubernetes
import Testing

/// ``RESTKubernetesClient`` keeps the transport error behind `.unavailable` as its ``ErrorCause``, and never
/// lets a bearer token reach an error's text.
@Suite("Kubernetes REST client: the cause of unavailable is kept", .timeLimit(.minutes(1)))
struct KubernetesClientCauseTests {
    let logger = Logger(label: "test")
    /// Nothing listens on port 1 of the loopback address: every connection is refused.
    static let closedPort = "http://127.0.0.1:1"

    @Test("a refused connection is unavailable, caused by the transport's connection error")
    func refusedConnectionKeepsItsCause() async throws {
        let client = try RESTKubernetesClient(configuration: KubernetesConfiguration(server: Self.closedPort))
        let error = await #expect(throws: KubernetesClientError.self) {
            try await client.secretProviderClass(namespace: "ns", name: "x", logger: logger)
        }
        try await client.shutdown()
        guard case .unavailable(let message, let kept)? = error else {
            Issue.record("expected unavailable, got \(String(describing: error))")
            return
        }
        #expect(message.hasPrefix("GET /apis/secrets-store.csi.x-k8s.io/v1/namespaces/ns/secretproviderclasses/x: "))
        let cause = try #require(kept)
        // The test target does not link NIO, so the type is checked by its module-qualified name.
        #expect(cause.typeName == "NIOCore.IOError", "\(cause.typeName): \(cause)")
        #expect(message.hasSuffix(": \(cause.description)"), "the message still ends in the error's text")
    }

    @Test("a watch that cannot connect ends with unavailable, caused by the transport's connection error")
    func refusedWatchKeepsItsCause() async throws {
        let client = try RESTKubernetesClient(configuration: KubernetesConfiguration(server: Self.closedPort))
        let stream = client.watchSecretProviderClasses(namespace: "ns", resourceVersion: "1", logger: logger)
        let error = await #expect(throws: KubernetesClientError.self) {
            for try await _ in stream {}
        }
        try await client.shutdown()
        guard case .unavailable(_, let cause)? = error else {
            Issue.record("expected unavailable, got \(String(describing: error))")
            return
        }
        let found = try #require(cause)
        #expect(found.typeName == "NIOCore.IOError", "\(found.typeName): \(found)")
    }

    @Test("a bearer token with a control character is not sent, and neither the message nor a cause quotes it")
    func damagedTokenIsNotQuoted() async throws {
        let token = "eyJhbGciOiJSUzI1NiJ9.secret-part\u{1}"
        let client = try RESTKubernetesClient(configuration: KubernetesConfiguration(server: Self.closedPort, credentials: .token(token)))
        let error = await #expect(throws: KubernetesClientError.self) {
            try await client.secretProviderClass(namespace: "ns", name: "x", logger: logger)
        }
        try await client.shutdown()
        guard case .unavailable(let message, let cause)? = error else {
            Issue.record("expected unavailable, got \(String(describing: error))")
            return
        }
        #expect(!message.contains("secret-part"), "\(message)")
        #expect(!"\(String(describing: cause))".contains("secret-part"))
        #expect(message.hasSuffix("the bearer token contains a control character; it was not sent"), "\(message)")
    }
}
