import SecretsStoreKubernetes

extension FakeKubernetesAPIServer {
    /// The token the fake requires of ``withClient(bookmarkInterval:_:)``'s client.
    package static let clientToken = "t0ken"

    /// Runs `body` with a fake API server that requires ``clientToken`` and a REST client holding it, then shuts
    /// both down, whether `body` returns or throws (its error wins).
    package static func withClient(
        bookmarkInterval: Duration = .seconds(1),
        _ body: (FakeKubernetesAPIServer, RESTKubernetesClient) async throws -> Void
    ) async throws {
        let server = try await FakeKubernetesAPIServer(requiredToken: clientToken, bookmarkInterval: bookmarkInterval)
        let client: RESTKubernetesClient
        do {
            client = try RESTKubernetesClient(configuration: KubernetesConfiguration(server: server.url, credentials: .token(clientToken)))
        } catch {
            try? await server.shutdown()
            throw error
        }
        do {
            try await body(server, client)
        } catch {
            try? await client.shutdown()
            try? await server.shutdown()
            throw error
        }
        try await client.shutdown()
        try await server.shutdown()
    }
}
