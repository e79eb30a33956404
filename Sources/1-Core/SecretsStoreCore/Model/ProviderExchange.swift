/// The version of one object a provider fetched (`ObjectVersion` in the provider API).
package struct ObjectVersion: Sendable, Equatable, Hashable, Codable {
    /// `id`: which object, in the provider's own naming.
    package var id: String
    /// `version`: the version fetched; opaque to the driver, which only compares it for equality.
    package var version: String

    /// An object version as a provider reports it.
    package init(id: String, version: String) {
        self.id = id
        self.version = version
    }
}

/// One file of a volume, as a provider returns it: a path relative to the volume, permission bits, bytes.
package struct SecretFile: Sendable, Equatable {
    /// `path`: relative to the volume root, `/`-separated; must pass ``PayloadPath/validate(_:)`` before it is written.
    package var path: String
    /// `mode`: permission bits; the file is created with exactly `mode & 0o7777` (external providers are held
    /// to 0…0o777).
    package var mode: UInt32
    /// `contents`: the file's bytes, written unchanged. Usually secret: never logged.
    package var contents: [UInt8]

    /// A file as a provider returns it.
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
    /// `attributes`: the SecretProviderClass parameters overlaid by volume_context, then the service account tokens.
    package var attributes: [String: String]
    /// `secrets`: the nodePublishSecretRef Secret's data, key → value. Credentials.
    package var secrets: [String: String]
    /// `target_path`: the volume's target directory on the node, as kubelet named it.
    package var targetPath: String
    /// Default file permission bits (0644, sent as the JSON number 420).
    package var permission: UInt32
    /// `current_object_version`: the versions the volume holds now (empty on a first publish).
    package var currentObjectVersions: [ObjectVersion]
    /// When the caller stops waiting; a provider call must end by then.
    package var deadline: ContinuousClock.Instant?

    /// The default file permission every request carries: 0644.
    package static let defaultPermission: UInt32 = 0o644

    /// A request; `permission` defaults to ``defaultPermission`` and `deadline` to none.
    package init(
        attributes: [String: String],
        secrets: [String: String],
        targetPath: String,
        permission: UInt32 = ProviderRequest.defaultPermission,
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

/// An object the SecretProviderClass marks optional that the store does not have (it, or the version asked
/// for, does not exist): the volume is published without it.
package struct MissingObject: Sendable, Equatable, Hashable, Codable {
    /// The object as the provider names it in object versions (`secret/db-pass`); for events and logs.
    package var id: String
    /// The file the object would have been written to (its alias or name). No file of this path, none under
    /// it (`<path>/<index>` of a version history) and none of `<path>.crt`/`<path>.key` is in the answer, and
    /// Secret sync leaves out the keys whose source is one of them.
    package var path: String

    /// A missing optional object.
    package init(id: String, path: String) {
        self.id = id
        self.path = path
    }

    /// Whether `file` (a path relative to the volume) is one this object would have produced.
    package func wouldHaveProduced(_ file: String) -> Bool {
        file == path || file.hasPrefix(path + "/") || file == path + ".crt" || file == path + ".key"
    }
}

/// The certificates and private key held by a file whose bytes are a binary container (a PKCS#12 file written
/// as `objectFormat: pfx`), for Secret sync only: what a `kubernetes.io/tls` Secret's `tls.crt` and `tls.key`
/// take from that file. Never written anywhere else; its description names no bytes.
package struct CertificateBundleParts: Sendable, Equatable, CustomStringConvertible {
    /// The certificates, DER, in the order the container stores them.
    package var certificates: [[UInt8]]
    /// The private key as PKCS#8 DER; `nil` when the container holds none.
    package var privateKeyPKCS8: [UInt8]?

    /// Parts read from a container.
    package init(certificates: [[UInt8]], privateKeyPKCS8: [UInt8]?) {
        self.certificates = certificates
        self.privateKeyPKCS8 = privateKeyPKCS8
    }

    /// `CertificateBundleParts(N certificates, private key: yes|no)`: never the bytes.
    package var description: String {
        "CertificateBundleParts(\(certificates.count) certificates, private key: \(privateKeyPKCS8 == nil ? "no" : "yes"))"
    }
}

/// What a provider returned: the whole desired content of the volume and the versions it came from.
package struct ProviderResponse: Sendable, Equatable {
    /// `files`: every file the volume should hold; empty when the provider wrote into the target path itself.
    package var files: [SecretFile]
    /// `object_version`: one entry per object fetched, recorded in the SecretProviderClassPodStatus and sent back
    /// as ``ProviderRequest/currentObjectVersions``. An answer with none is refused. Missing optional objects
    /// have no entry.
    package var objectVersions: [ObjectVersion]
    /// Optional objects the store does not have, in the SecretProviderClass's order; the volume is published
    /// without them and the pod gets an `OptionalObjectsMissing` event. Empty for external providers (the
    /// provider API has no such field).
    package var missingOptionalObjects: [MissingObject]
    /// What `kubernetes.io/tls` Secret sync takes from files that hold a PKCS#12 container, by file path.
    /// Empty unless the provider decoded such a file (the built-in Azure provider does for `objectFormat: pfx`).
    package var certificateParts: [String: CertificateBundleParts]

    /// An answer, unvalidated (``ProviderResponseValidation`` checks it before anything is written).
    package init(
        files: [SecretFile],
        objectVersions: [ObjectVersion],
        missingOptionalObjects: [MissingObject] = [],
        certificateParts: [String: CertificateBundleParts] = [:]
    ) {
        self.files = files
        self.objectVersions = objectVersions
        self.missingOptionalObjects = missingOptionalObjects
        self.certificateParts = certificateParts
    }
}
