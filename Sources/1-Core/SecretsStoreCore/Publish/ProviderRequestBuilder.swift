/// Builds the provider request for a volume, exactly as the upstream driver fills `MountRequest`.
package enum ProviderRequestBuilder {
    /// `attributes` = the SecretProviderClass parameters, then every volume_context entry over them, then the
    /// service account tokens (from `secrets` when kubelet put them there, else from volume_context).
    /// `secrets` = the nodePublishSecretRef data as kubelet sent it.
    package static func build(
        for request: ValidatedPublishRequest,
        secretProviderClass: SecretProviderClass,
        currentObjectVersions: [ObjectVersion]
    ) -> ProviderRequest {
        var attributes = secretProviderClass.parameters
        for (key, value) in request.volumeContext {
            attributes[key] = value
        }
        let tokens =
            request.secrets[VolumeContextKey.serviceAccountTokens].flatMap { $0.isEmpty ? nil : $0 }
            ?? request.volumeContext[VolumeContextKey.serviceAccountTokens]
        if let tokens, !tokens.isEmpty {
            attributes[VolumeContextKey.serviceAccountTokens] = tokens
        }
        return ProviderRequest(
            attributes: attributes,
            secrets: request.secrets,
            targetPath: request.targetPath,
            permission: ProviderRequest.defaultPermission,
            currentObjectVersions: currentObjectVersions,
            deadline: request.deadline
        )
    }

    /// Provider names become socket file names, so they are restricted to `^[a-zA-Z0-9_-]{0,30}$`.
    package static func isValidProviderName(_ name: String) -> Bool {
        name.utf8.count <= 30
            && name.utf8.allSatisfy { byte in
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                    || byte == 0x2D || byte == 0x5F
            }
    }
}
