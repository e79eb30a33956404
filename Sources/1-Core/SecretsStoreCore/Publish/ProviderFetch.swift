import Logging

/// What a publish and a refresh ask before anything is written: the SecretProviderClass (read and checked for
/// what the driver needs of it), the provider it names, and the provider's validated answer. Kubernetes and
/// provider errors become ``PublishError`` here.
struct ProviderFetch: Sendable {
    private let kubernetes: any KubernetesClient
    private let providers: any ProviderDirectory
    private let metrics: any DriverMetrics

    /// Reads classes through `kubernetes`, finds providers in `providers`, and times fetches into `metrics`.
    init(kubernetes: any KubernetesClient, providers: any ProviderDirectory, metrics: any DriverMetrics) {
        self.kubernetes = kubernetes
        self.providers = providers
        self.metrics = metrics
    }

    /// Reads the SecretProviderClass and checks what the driver needs of it.
    func loadSecretProviderClass(namespace: String, name: String, logger: Logger) async throws(PublishError) -> SecretProviderClass {
        let spc: SecretProviderClass
        do {
            spc = try await kubernetes.secretProviderClass(namespace: namespace, name: name, logger: logger)
        } catch {
            throw PublishError(error, notFound: .secretProviderClassNotFound(namespace: namespace, name: name))
        }
        guard !spc.provider.isEmpty else {
            throw .secretProviderClassInvalid(namespace: namespace, name: name, reason: "provider not set")
        }
        guard ProviderRequestBuilder.isValidProviderName(spc.provider) else {
            throw .secretProviderClassInvalid(
                namespace: namespace,
                name: name,
                reason: "provider name \"\(spc.provider)\" must match ^[a-zA-Z0-9_-]{0,30}$"
            )
        }
        guard !spc.parameters.isEmpty else {
            throw .secretProviderClassInvalid(namespace: namespace, name: name, reason: "parameters not set")
        }
        return spc
    }

    /// The provider called `name` (a class's `spec.provider`), or ``PublishError/providerNotFound(name:searched:)``.
    func provider(named name: String) throws(PublishError) -> any SecretsProvider {
        try providers.provider(named: name)
    }

    /// Asks the provider for the objects and validates the answer before anything is written.
    func fetch(
        _ request: ValidatedPublishRequest,
        spc: SecretProviderClass,
        provider: any SecretsProvider,
        currentVersions: [ObjectVersion],
        logger: Logger
    ) async throws(PublishError) -> ProviderResponse {
        let providerRequest = ProviderRequestBuilder.build(
            for: request,
            secretProviderClass: spc,
            currentObjectVersions: currentVersions
        )
        let start = ContinuousClock.now
        let response: ProviderResponse
        do {
            response = try await provider.fetch(providerRequest, logger: logger)
        } catch {
            throw Task.isCancelled ? .cancelled : .provider(name: spc.provider, error)
        }
        metrics.providerFetched(provider: spc.provider, duration: ContinuousClock.now - start)
        try ProviderResponseValidation.validate(response, providerName: spc.provider)
        return response
    }
}
