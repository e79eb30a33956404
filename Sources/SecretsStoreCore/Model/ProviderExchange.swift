/// The version of one object a provider fetched (`ObjectVersion` in the provider API).
package struct ObjectVersion: Sendable, Equatable, Hashable, Codable {
    package var id: String
    package var version: String

    package init(id: String, version: String) {
        self.id = id
        self.version = version
    }
}

/// One file of a volume, as a provider returns it: a path relative to the volume, permission bits, bytes.
package struct SecretFile: Sendable, Equatable {
    package var path: String
    package var mode: UInt32
    package var contents: [UInt8]

    package init(path: String, mode: UInt32, contents: [UInt8]) {
        self.path = path
        self.mode = mode
        self.contents = contents
    }
}

/// Everything a provider needs to fetch a volume's objects.
///
/// The fields mirror the provider API's `MountRequest`: `attributes` are the SecretProviderClass parameters,
/// then every volume_context entry, then the service account tokens; `secrets` is the nodePublishSecretRef
/// data. Both may hold credentials: never log them.
package struct ProviderRequest: Sendable, Equatable {
    package var attributes: [String: String]
    package var secrets: [String: String]
    package var targetPath: String
    /// Default file permission bits (0644, sent as the JSON number 420).
    package var permission: UInt32
    package var currentObjectVersions: [ObjectVersion]
    /// When the caller stops waiting; a provider call must end by then.
    package var deadline: ContinuousClock.Instant?

    package init(
        attributes: [String: String],
        secrets: [String: String],
        targetPath: String,
        permission: UInt32 = 0o644,
        currentObjectVersions: [ObjectVersion],
        deadline: ContinuousClock.Instant? = nil
    ) {
        self.deadline = deadline
        self.attributes = attributes
        self.secrets = secrets
        self.targetPath = targetPath
        self.permission = permission
        self.currentObjectVersions = currentObjectVersions
    }
}

/// What a provider returned: the whole desired content of the volume and the versions it came from.
package struct ProviderResponse: Sendable, Equatable {
    package var files: [SecretFile]
    package var objectVersions: [ObjectVersion]

    package init(files: [SecretFile], objectVersions: [ObjectVersion]) {
        self.files = files
        self.objectVersions = objectVersions
    }
}
