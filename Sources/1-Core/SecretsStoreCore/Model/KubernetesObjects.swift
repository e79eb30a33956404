/// A reference from one Kubernetes object to its owner.
package struct OwnerReference: Sendable, Equatable, Hashable, Codable {
    /// The owner's `apiVersion`, e.g. `apps/v1` or `secrets-store.csi.x-k8s.io/v1`.
    package var apiVersion: String
    /// The owner's `kind`, e.g. `ReplicaSet` or `SecretProviderClassPodStatus`.
    package var kind: String
    /// The owner's `metadata.name` (same namespace as the owned object).
    package var name: String
    /// The owner's `metadata.uid`: what garbage collection and the syncer's de-duplication match on.
    package var uid: String

    /// A reference by the four fields above; the wire form leaves `controller` and `blockOwnerDeletion` unset.
    package init(apiVersion: String, kind: String, name: String, uid: String) {
        self.apiVersion = apiVersion
        self.kind = kind
        self.name = name
        self.uid = uid
    }
}

/// What the driver needs to know about a pod: who owns it and whether it is going away.
package struct PodInfo: Sendable, Equatable {
    /// The pod's `metadata.namespace`.
    package var namespace: String
    /// The pod's `metadata.name`.
    package var name: String
    /// The pod's `metadata.uid`.
    package var uid: String
    /// The pod's `metadata.ownerReferences` (its ReplicaSet, StatefulSet, Job…); empty for a bare pod. Synced
    /// Secrets take these as their owners.
    package var ownerReferences: [OwnerReference]
    /// Whether `metadata.deletionTimestamp` is set, i.e. the pod is being deleted.
    package var terminating: Bool

    /// A pod as read from the API; `terminating` defaults to `false`.
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
    /// The Secret's `metadata.namespace`.
    package var namespace: String
    /// The Secret's `metadata.name`.
    package var name: String
    /// The Secret's `type` (`Opaque`, `kubernetes.io/tls`…); `Opaque` when an object read from the API has none.
    package var type: String
    /// The Secret's `data`, key → raw bytes (the API's base64 is decoded on read, encoded on write).
    package var data: [String: [UInt8]]
    /// The Secret's `metadata.labels`; the driver's own Secrets carry ``managedLabel`` = `true`.
    package var labels: [String: String]
    /// The Secret's `metadata.annotations`.
    package var annotations: [String: String]
    /// The Secret's `metadata.ownerReferences`; the syncer only ever adds to those already there.
    package var ownerReferences: [OwnerReference]
    /// Set on objects read from the API; an update carrying it fails if someone else wrote in between.
    package var resourceVersion: String?

    /// A Secret; leave `resourceVersion` `nil` for one to be created.
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
    /// The event's `type`; the raw value is the wire string.
    package enum Kind: String, Sendable {
        /// `Normal`: an operation succeeded.
        case normal = "Normal"
        /// `Warning`: an operation failed.
        case warning = "Warning"
    }
    /// The pod the event is about (its `involvedObject`).
    package var pod: PodReference
    /// The event's `type`.
    package var kind: Kind
    /// The event's `reason`: one of the constants below.
    package var reason: String
    /// The event's `message`, for `kubectl describe pod`; names objects and errors, never secret bytes or tokens.
    package var message: String

    /// An event with the given `type`, `reason` and `message` on `pod`.
    package init(pod: PodReference, kind: Kind, reason: String, message: String) {
        self.pod = pod
        self.kind = kind
        self.reason = reason
        self.message = message
    }

    // Reasons used upstream, so alerts and dashboards keep working.
    /// `Normal`: a refresh brought new object versions or changed the volume's files.
    package static let mountRotationComplete = "MountRotationComplete"
    /// `Warning`: a refresh failed; the volume keeps its old files.
    package static let mountRotationFailed = "MountRotationFailed"
    /// `Normal`: a sync after the first one (files changed, or an earlier attempt failed) succeeded for every Secret.
    package static let secretRotationComplete = "SecretRotationComplete"
    /// `Warning`: a sync after the first one failed for one Secret (one event per Secret).
    package static let secretRotationFailed = "SecretRotationFailed"
    /// `Warning`: the first sync of a volume's Secrets failed for one Secret (one event per Secret).
    package static let failedToCreateSecret = "FailedToCreateSecret"

    // Reasons of this driver's own (no upstream equivalent).
    /// `Warning`: the volume was published without optional objects the store does not have; the message
    /// names them (ids and file names, never values). Recorded on the first publish and whenever a refresh
    /// changes which objects the volume holds while some are still missing.
    package static let optionalObjectsMissing = "OptionalObjectsMissing"
}

/// A Deployment, StatefulSet or DaemonSet (group `apps`, version `v1`): a workload whose pod template the
/// driver may annotate to restart its pods after a rotation (`--enable-rotation-restart`).
package struct WorkloadReference: Sendable, Equatable, Hashable {
    /// The workload kinds the driver restarts; the raw value is the wire `kind`.
    package enum Kind: String, Sendable, CaseIterable {
        /// `apps/v1` Deployment (a pod reaches it through its ReplicaSet).
        case deployment = "Deployment"
        /// `apps/v1` StatefulSet (a pod's direct owner).
        case statefulSet = "StatefulSet"
        /// `apps/v1` DaemonSet (a pod's direct owner).
        case daemonSet = "DaemonSet"

        /// The REST resource name: `deployments`, `statefulsets`, `daemonsets`.
        package var resource: String {
            switch self {
            case .deployment: "deployments"
            case .statefulSet: "statefulsets"
            case .daemonSet: "daemonsets"
            }
        }
    }
    /// The workload's kind.
    package var kind: Kind
    /// Its `metadata.namespace` (always its pods' namespace).
    package var namespace: String
    /// Its `metadata.name`.
    package var name: String
    /// Its `metadata.uid` as the owner reference names it; empty when unknown. A workload read back with
    /// another UID is a different object of the same name.
    package var uid: String

    /// A reference to the workload `kind` `namespace/name` with `uid` (empty when unknown).
    package init(kind: Kind, namespace: String, name: String, uid: String = "") {
        self.kind = kind
        self.namespace = namespace
        self.name = name
        self.uid = uid
    }
}

/// What the driver reads of a workload: its annotations, its pod template's annotations and the version to
/// make a patch conditional on.
package struct Workload: Sendable, Equatable {
    /// Which workload this is (with the UID read from the API).
    package var reference: WorkloadReference
    /// `metadata.annotations`: where the `restart-on-rotation` opt-in is.
    package var annotations: [String: String]
    /// `spec.template.metadata.annotations`: where the driver writes `rotated-versions`.
    package var templateAnnotations: [String: String]
    /// `metadata.resourceVersion`; `nil` when the server sent none.
    package var resourceVersion: String?
    /// `metadata.generation`: bumped by the API server on every spec change (a template change is one).
    package var generation: Int

    /// A workload as read from the API.
    package init(
        reference: WorkloadReference,
        annotations: [String: String] = [:],
        templateAnnotations: [String: String] = [:],
        resourceVersion: String? = nil,
        generation: Int = 0
    ) {
        self.reference = reference
        self.annotations = annotations
        self.templateAnnotations = templateAnnotations
        self.resourceVersion = resourceVersion
        self.generation = generation
    }
}

/// An event about a workload (`kubectl describe deployment|statefulset|daemonset` shows it).
package struct WorkloadEvent: Sendable, Equatable {
    /// The workload the event is about (its `involvedObject`).
    package var workload: WorkloadReference
    /// The event's `type`.
    package var kind: PodEvent.Kind
    /// The event's `reason`, e.g. ``rolloutTriggered``.
    package var reason: String
    /// The event's `message`; names objects, never secret bytes or tokens.
    package var message: String

    /// An event with the given `type`, `reason` and `message` on `workload`.
    package init(workload: WorkloadReference, kind: PodEvent.Kind, reason: String, message: String) {
        self.workload = workload
        self.kind = kind
        self.reason = reason
        self.message = message
    }

    /// `Normal`: the driver changed the workload's pod template after a rotation, so its pods are replaced.
    package static let rolloutTriggered = "RolloutTriggered"
}
