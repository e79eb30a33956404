/// What kubelet asked for in one NodePublishVolume call, before validation.
///
/// The CSI layer copies the protobuf request into this value field by field; the core validates it
/// (``ValidatedPublishRequest``) so the rules live in one place and are testable without gRPC.
package struct PublishRequest: Sendable, Equatable {
    /// How the volume is to be accessed, as named by the request's `volume_capability`.
    package enum AccessType: Sendable, Equatable {
        /// The request carried no `volume_capability`.
        case missing
        /// A file-system mount (the only kind a secrets volume can serve).
        case mount
        /// Raw block access.
        case block
    }

    /// `volume_id`: kubelet's handle for the volume (`csi-<hash>` for an inline ephemeral volume); may be empty here.
    package var volumeID: String
    /// `target_path`: the directory kubelet wants the volume mounted on; may be empty here.
    package var targetPath: String
    /// The `volume_capability` access type (`.mount` also when a capability names none).
    package var accessType: AccessType
    /// `readonly`; validation requires `true`.
    package var readOnly: Bool
    /// `volume_context`: pod information from kubelet plus the pod's `volumeAttributes`.
    package var volumeContext: [String: String]
    /// `secrets`: the nodePublishSecretRef Secret's data (and service account tokens when kubelet puts them there).
    package var secrets: [String: String]
    /// When kubelet stops waiting (from the call's `grpc-timeout`); bounds the provider call.
    package var deadline: ContinuousClock.Instant?
    /// `volume_capability.mount.volume_mount_group` as sent: the pod's `securityContext.fsGroup` in decimal when
    /// the driver advertises `VOLUME_MOUNT_GROUP` and the CSIDriver's `fsGroupPolicy` lets kubelet pass it;
    /// empty for none. Parsed by ``ValidatedPublishRequest/parseMountGroup(_:)``.
    package var volumeMountGroup: String

    /// The request exactly as kubelet sent it; nothing is checked here.
    package init(
        volumeID: String,
        targetPath: String,
        accessType: AccessType,
        readOnly: Bool,
        volumeContext: [String: String],
        secrets: [String: String],
        deadline: ContinuousClock.Instant? = nil,
        volumeMountGroup: String = ""
    ) {
        self.volumeID = volumeID
        self.targetPath = targetPath
        self.accessType = accessType
        self.readOnly = readOnly
        self.volumeContext = volumeContext
        self.secrets = secrets
        self.deadline = deadline
        self.volumeMountGroup = volumeMountGroup
    }
}

/// Well-known `volume_context` keys set by kubelet (podInfoOnMount, tokenRequests) or by the user.
package enum VolumeContextKey {
    /// `secretProviderClass`: the SecretProviderClass name, from the pod's `volumeAttributes`; required.
    package static let secretProviderClass = "secretProviderClass"
    /// `csi.storage.k8s.io/pod.name`, sent by kubelet when the CSIDriver has `podInfoOnMount: true`.
    package static let podName = "csi.storage.k8s.io/pod.name"
    /// `csi.storage.k8s.io/pod.namespace`, sent with `podInfoOnMount: true`; required.
    package static let podNamespace = "csi.storage.k8s.io/pod.namespace"
    /// `csi.storage.k8s.io/pod.uid`, sent with `podInfoOnMount: true`.
    package static let podUID = "csi.storage.k8s.io/pod.uid"
    /// `csi.storage.k8s.io/serviceAccount.name`, sent with `podInfoOnMount: true`.
    package static let serviceAccountName = "csi.storage.k8s.io/serviceAccount.name"
    /// `csi.storage.k8s.io/ephemeral`: `"true"` for an inline ephemeral volume.
    package static let ephemeral = "csi.storage.k8s.io/ephemeral"
    /// JSON map audience → {token, expirationTimestamp}; a credential, never logged.
    package static let serviceAccountTokens = "csi.storage.k8s.io/serviceAccount.tokens"
}

/// The pod a volume belongs to, as kubelet described it in `volume_context`.
package struct PodReference: Sendable, Equatable, Hashable {
    /// `csi.storage.k8s.io/pod.namespace`; never empty once validated.
    package var namespace: String
    /// `csi.storage.k8s.io/pod.name`; empty when kubelet did not send it.
    package var name: String
    /// `csi.storage.k8s.io/pod.uid`; empty when kubelet did not send it.
    package var uid: String
    /// `csi.storage.k8s.io/serviceAccount.name`; empty when kubelet did not send it.
    package var serviceAccountName: String

    /// A pod reference; `serviceAccountName` defaults to empty.
    package init(namespace: String, name: String, uid: String, serviceAccountName: String = "") {
        self.namespace = namespace
        self.name = name
        self.uid = uid
        self.serviceAccountName = serviceAccountName
    }
}

/// A NodePublishVolume request that passed every argument check.
package struct ValidatedPublishRequest: Sendable, Equatable {
    /// `volume_id`, non-empty.
    package var volumeID: String
    /// `target_path`, non-empty.
    package var targetPath: String
    /// `volume_context["secretProviderClass"]`, non-empty.
    package var secretProviderClassName: String
    /// The pod, from the `csi.storage.k8s.io/…` entries of `volume_context`; its namespace is non-empty.
    package var pod: PodReference
    /// `volume_context` unchanged (it may hold the service account tokens: never log it unsanitised).
    package var volumeContext: [String: String]
    /// `secrets` unchanged: the nodePublishSecretRef data. Credentials.
    package var secrets: [String: String]
    /// When kubelet stops waiting, copied from the request; `nil` for no deadline.
    package var deadline: ContinuousClock.Instant?
    /// The group every directory and file of the volume is owned by (the tmpfs is mounted with `gid=`, files gain
    /// group read): the pod's fsGroup from `volume_mount_group`. `nil` when kubelet sent none; then ownership and
    /// modes are exactly what they are without fsGroup support (root's, and the provider's modes).
    package var mountGroup: UInt32?

    /// Checks the request in the order kubelet's callers expect and throws the first problem found.
    ///
    /// - Throws: ``PublishError/invalidRequest(_:)`` naming the missing or wrong argument.
    package init(_ request: PublishRequest) throws(PublishError) {
        guard !request.volumeID.isEmpty else { throw .invalidRequest("Volume ID missing in request") }
        guard !request.targetPath.isEmpty else { throw .invalidRequest("Target path missing in request") }
        switch request.accessType {
        case .missing: throw .invalidRequest("Volume capability missing in request")
        case .block: throw .invalidRequest("Block access is not supported: secrets are mounted as files")
        case .mount: break
        }
        let mountGroup = try Self.parseMountGroup(request.volumeMountGroup)
        guard !request.volumeContext.isEmpty else { throw .invalidRequest("Volume attributes missing in request") }
        guard request.readOnly else { throw .invalidRequest("Readonly is not true in request") }
        guard let spc = request.volumeContext[VolumeContextKey.secretProviderClass], !spc.isEmpty else {
            throw .invalidRequest("secretProviderClass is not set")
        }
        let namespace = request.volumeContext[VolumeContextKey.podNamespace] ?? ""
        guard !namespace.isEmpty else {
            throw .invalidRequest(
                "\(VolumeContextKey.podNamespace) is not set: the CSIDriver object needs podInfoOnMount: true"
            )
        }
        self.volumeID = request.volumeID
        self.targetPath = request.targetPath
        self.secretProviderClassName = spc
        self.pod = PodReference(
            namespace: namespace,
            name: request.volumeContext[VolumeContextKey.podName] ?? "",
            uid: request.volumeContext[VolumeContextKey.podUID] ?? "",
            serviceAccountName: request.volumeContext[VolumeContextKey.serviceAccountName] ?? ""
        )
        self.volumeContext = request.volumeContext
        self.secrets = request.secrets
        self.deadline = request.deadline
        self.mountGroup = mountGroup
    }

    /// The largest group ID accepted: 4294967295 is `(gid_t)-1`, which chown(2) reads as "leave the group".
    package static let largestMountGroup: UInt32 = UInt32.max - 1

    /// Parses `volume_capability.mount.volume_mount_group`: empty is no group; otherwise ASCII decimal digits
    /// only (no sign, space or other numerals) with a value from 0 to ``largestMountGroup``.
    ///
    /// - Throws: ``PublishError/invalidRequest(_:)`` naming the field and quoting (at most 32 characters of) the value.
    package static func parseMountGroup(_ text: String) throws(PublishError) -> UInt32? {
        guard !text.isEmpty else { return nil }
        let digits = text.utf8.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
        guard digits, let value = UInt32(text), value <= largestMountGroup else {
            let shown = text.count > 32 ? String(text.prefix(32)) + "…" : text
            throw .invalidRequest(
                "volume_capability.mount.volume_mount_group \"\(shown)\" is not a group ID: expected decimal digits "
                    + "for a number from 0 to \(largestMountGroup) (the pod's securityContext.fsGroup)"
            )
        }
        return value
    }
}

/// What kubelet asked for in one NodeUnpublishVolume call.
package struct UnpublishRequest: Sendable, Equatable {
    /// `volume_id`; the unpublish step rejects it empty.
    package var volumeID: String
    /// `target_path`: the directory to unmount and remove; the unpublish step rejects it empty.
    package var targetPath: String

    /// The request exactly as kubelet sent it; nothing is checked here.
    package init(volumeID: String, targetPath: String) {
        self.volumeID = volumeID
        self.targetPath = targetPath
    }
}
