extension Reflector.Source where Object == SecretProviderClass {
    /// The SecretProviderClasses of `namespace` (`nil`: every namespace) through `client`, keyed `namespace/name`.
    package static func secretProviderClasses(_ client: any ControllerKubernetesClient, namespace: String?) -> Self {
        Self(
            list: { logger async throws(KubernetesClientError) in try await client.listSecretProviderClasses(namespace: namespace, logger: logger) },
            watch: { resourceVersion, logger in client.watchSecretProviderClasses(namespace: namespace, resourceVersion: resourceVersion, logger: logger) },
            key: { "\($0.namespace)/\($0.name)" },
            resourceVersion: { $0.resourceVersion }
        )
    }
}

extension Reflector.Source where Object == KubernetesSecret {
    /// The Secrets of `namespace` (`nil`: every namespace) carrying every label of `labelSelector`, keyed
    /// `namespace/name`.
    package static func secrets(_ client: any ControllerKubernetesClient, namespace: String?, labelSelector: [String: String]) -> Self {
        Self(
            list: { logger async throws(KubernetesClientError) in
                try await client.listSecrets(namespace: namespace, labelSelector: labelSelector, logger: logger)
            },
            watch: { resourceVersion, logger in
                client.watchSecrets(namespace: namespace, labelSelector: labelSelector, resourceVersion: resourceVersion, logger: logger)
            },
            key: { "\($0.namespace)/\($0.name)" },
            resourceVersion: { $0.resourceVersion }
        )
    }
}
