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

    package var volumeID: String
    package var targetPath: String
    package var accessType: AccessType
    package var readOnly: Bool
    /// `volume_context`: pod information from kubelet plus the pod's `volumeAttributes`.
    package var volumeContext: [String: String]
    /// `secrets`: the nodePublishSecretRef Secret's data (and service account tokens when kubelet puts them there).
    package var secrets: [String: String]
    /// When kubelet stops waiting (from the call's `grpc-timeout`); bounds the provider call.
    package var deadline: ContinuousClock.Instant?

    package init(
        volumeID: String,
        targetPath: String,
        accessType: AccessType,
        readOnly: Bool,
        volumeContext: [String: String],
        secrets: [String: String],
        deadline: ContinuousClock.Instant? = nil
    ) {
        self.volumeID = volumeID
        self.targetPath = targetPath
        self.accessType = accessType
        self.readOnly = readOnly
        self.volumeContext = volumeContext
        self.secrets = secrets
        self.deadline = deadline
    }
}

/// Well-known `volume_context` keys set by kubelet (podInfoOnMount, tokenRequests) or by the user.
package enum VolumeContextKey {
    package static let secretProviderClass = "secretProviderClass"
    package static let podName = "csi.storage.k8s.io/pod.name"
    package static let podNamespace = "csi.storage.k8s.io/pod.namespace"
    package static let podUID = "csi.storage.k8s.io/pod.uid"
    package static let serviceAccountName = "csi.storage.k8s.io/serviceAccount.name"
    package static let ephemeral = "csi.storage.k8s.io/ephemeral"
    /// JSON map audience → {token, expirationTimestamp}; a credential, never logged.
    package static let serviceAccountTokens = "csi.storage.k8s.io/serviceAccount.tokens"
}

/// The pod a volume belongs to, as kubelet described it in `volume_context`.
package struct PodReference: Sendable, Equatable, Hashable {
    package var namespace: String
    package var name: String
    package var uid: String
    package var serviceAccountName: String

    package init(namespace: String, name: String, uid: String, serviceAccountName: String = "") {
        self.namespace = namespace
        self.name = name
        self.uid = uid
        self.serviceAccountName = serviceAccountName
    }
}

/// A NodePublishVolume request that passed every argument check.
package struct ValidatedPublishRequest: Sendable, Equatable {
    package var volumeID: String
    package var targetPath: String
    package var secretProviderClassName: String
    package var pod: PodReference
    package var volumeContext: [String: String]
    package var secrets: [String: String]
    package var deadline: ContinuousClock.Instant?

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
    }
}

/// What kubelet asked for in one NodeUnpublishVolume call.
package struct UnpublishRequest: Sendable, Equatable {
    package var volumeID: String
    package var targetPath: String

    package init(volumeID: String, targetPath: String) {
        self.volumeID = volumeID
        self.targetPath = targetPath
    }
}
