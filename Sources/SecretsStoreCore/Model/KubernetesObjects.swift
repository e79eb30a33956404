/// A reference from one Kubernetes object to its owner.
package struct OwnerReference: Sendable, Equatable, Hashable, Codable {
    package var apiVersion: String
    package var kind: String
    package var name: String
    package var uid: String

    package init(apiVersion: String, kind: String, name: String, uid: String) {
        self.apiVersion = apiVersion
        self.kind = kind
        self.name = name
        self.uid = uid
    }
}

/// What the driver needs to know about a pod: who owns it and whether it is going away.
package struct PodInfo: Sendable, Equatable {
    package var namespace: String
    package var name: String
    package var uid: String
    package var ownerReferences: [OwnerReference]
    package var terminating: Bool

    package init(namespace: String, name: String, uid: String, ownerReferences: [OwnerReference], terminating: Bool = false) {
        self.namespace = namespace
        self.name = name
        self.uid = uid
        self.ownerReferences = ownerReferences
        self.terminating = terminating
    }
}

/// A Kubernetes Secret as the driver reads and writes it.
package struct KubernetesSecret: Sendable, Equatable {
    package var namespace: String
    package var name: String
    package var type: String
    package var data: [String: [UInt8]]
    package var labels: [String: String]
    package var annotations: [String: String]
    package var ownerReferences: [OwnerReference]
    /// Set on objects read from the API; an update carrying it fails if someone else wrote in between.
    package var resourceVersion: String?

    package init(
        namespace: String,
        name: String,
        type: String,
        data: [String: [UInt8]],
        labels: [String: String] = [:],
        annotations: [String: String] = [:],
        ownerReferences: [OwnerReference] = [],
        resourceVersion: String? = nil
    ) {
        self.namespace = namespace
        self.name = name
        self.type = type
        self.data = data
        self.labels = labels
        self.annotations = annotations
        self.ownerReferences = ownerReferences
        self.resourceVersion = resourceVersion
    }

    /// The label that marks a Secret as created and owned by this driver.
    package static let managedLabel = "secrets-store.csi.k8s.io/managed"
}

/// An event about a pod, shown by `kubectl describe pod`.
package struct PodEvent: Sendable, Equatable {
    package enum Kind: String, Sendable {
        case normal = "Normal"
        case warning = "Warning"
    }
    package var pod: PodReference
    package var kind: Kind
    package var reason: String
    package var message: String

    package init(pod: PodReference, kind: Kind, reason: String, message: String) {
        self.pod = pod
        self.kind = kind
        self.reason = reason
        self.message = message
    }

    // Reasons used upstream, so alerts and dashboards keep working.
    package static let mountRotationComplete = "MountRotationComplete"
    package static let mountRotationFailed = "MountRotationFailed"
    package static let secretRotationComplete = "SecretRotationComplete"
    package static let secretRotationFailed = "SecretRotationFailed"
    package static let failedToCreateSecret = "FailedToCreateSecret"
}
