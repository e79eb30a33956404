/// `status` of a SecretProviderClass, as the sync controller writes it through the `/status` subresource.
package struct SecretProviderClassStatus: Sendable, Equatable {
    /// One `status.conditions[]` entry (Kubernetes' `metav1.Condition` shape).
    package struct Condition: Sendable, Equatable {
        /// `type`: this controller writes only ``readyType``.
        package var type: String
        /// `status`: `True`, `False` or `Unknown`.
        package var status: String
        /// `reason`: a CamelCase word (`Synced`, `InvalidSpec`, `TokenRequestFailed`, `ProviderError`,
        /// `SecretConflict`).
        package var reason: String
        /// `message`: a sentence for `kubectl describe`; never a secret value or token.
        package var message: String
        /// `lastTransitionTime` (RFC 3339, seconds): when `status` last changed.
        package var lastTransitionTime: String
        /// `observedGeneration`: the `metadata.generation` this condition is about.
        package var observedGeneration: Int

        /// A condition.
        package init(type: String, status: String, reason: String, message: String, lastTransitionTime: String, observedGeneration: Int) {
            self.type = type
            self.status = status
            self.reason = reason
            self.message = message
            self.lastTransitionTime = lastTransitionTime
            self.observedGeneration = observedGeneration
        }

        /// The condition type the controller maintains.
        package static let readyType = "Ready"
    }

    /// `status.conditions`.
    package var conditions: [Condition]
    /// `status.lastSyncTime` (RFC 3339): when the Secrets were last brought in line with the provider.
    package var lastSyncTime: String?
    /// `status.objects`: the id and version of every object synced, sorted by id.
    package var objects: [ObjectVersion]
    /// `status.syncedSecrets`: the names of the Secrets the controller keeps, sorted.
    package var syncedSecrets: [String]

    /// A status; `objects` are sorted by id and `syncedSecrets` by name here.
    package init(conditions: [Condition] = [], lastSyncTime: String? = nil, objects: [ObjectVersion] = [], syncedSecrets: [String] = []) {
        self.conditions = conditions
        self.lastSyncTime = lastSyncTime
        self.objects = objects.sorted { $0.id < $1.id }
        self.syncedSecrets = syncedSecrets.sorted()
    }

    /// The `Ready` condition, when there is one.
    package var ready: Condition? { conditions.first { $0.type == Condition.readyType } }
}

/// An event on a SecretProviderClass (`SecretSynced`, `SecretSyncFailed`).
package struct SecretProviderClassEvent: Sendable, Equatable {
    /// The class's namespace.
    package var namespace: String
    /// The class's name.
    package var name: String
    /// The class's UID (empty when unknown).
    package var uid: String
    /// `Normal` or `Warning`.
    package var kind: PodEvent.Kind
    /// `SecretSynced` or `SecretSyncFailed`.
    package var reason: String
    /// A sentence; never a value or a token.
    package var message: String

    /// An event.
    package init(namespace: String, name: String, uid: String, kind: PodEvent.Kind, reason: String, message: String) {
        self.namespace = namespace
        self.name = name
        self.uid = uid
        self.kind = kind
        self.reason = reason
        self.message = message
    }
}

/// A token from the TokenRequest API (`authentication.k8s.io/v1` `TokenRequest`).
package struct ServiceAccountToken: Sendable, Equatable, CustomStringConvertible {
    /// `status.token`: a secret; never log it.
    package var token: String
    /// `status.expirationTimestamp` as the API server wrote it (RFC 3339), passed to providers as is.
    package var expirationTimestamp: String
    /// The expiry in seconds since the Unix epoch (parsed from ``expirationTimestamp``).
    package var expiresAtSeconds: Int64

    /// A token.
    package init(token: String, expirationTimestamp: String, expiresAtSeconds: Int64) {
        self.token = token
        self.expirationTimestamp = expirationTimestamp
        self.expiresAtSeconds = expiresAtSeconds
    }

    /// Redacted: a token never reaches a log through string interpolation.
    package var description: String { "ServiceAccountToken(expires: \(expirationTimestamp))" }
}

/// A `coordination.k8s.io/v1` Lease, as leader election reads and writes it.
package struct LeaseRecord: Sendable, Equatable {
    /// `metadata.namespace`.
    package var namespace: String
    /// `metadata.name`.
    package var name: String
    /// `spec.holderIdentity`; `nil` or empty when released.
    package var holderIdentity: String?
    /// `spec.leaseDurationSeconds`.
    package var leaseDurationSeconds: Int
    /// `spec.acquireTime` (RFC 3339 with microseconds, `metav1.MicroTime`).
    package var acquireTime: String?
    /// `spec.renewTime` (RFC 3339 with microseconds).
    package var renewTime: String?
    /// `spec.leaseTransitions`.
    package var leaseTransitions: Int
    /// `metadata.resourceVersion`: an update with it fails with a conflict when someone else wrote.
    package var resourceVersion: String?

    /// A lease record.
    package init(
        namespace: String,
        name: String,
        holderIdentity: String?,
        leaseDurationSeconds: Int,
        acquireTime: String?,
        renewTime: String?,
        leaseTransitions: Int,
        resourceVersion: String? = nil
    ) {
        self.namespace = namespace
        self.name = name
        self.holderIdentity = holderIdentity
        self.leaseDurationSeconds = leaseDurationSeconds
        self.acquireTime = acquireTime
        self.renewTime = renewTime
        self.leaseTransitions = leaseTransitions
        self.resourceVersion = resourceVersion
    }
}

/// One page of a list: the objects and the collection's `metadata.resourceVersion` to watch from.
package struct Listed<Object: Sendable>: Sendable {
    /// The objects.
    package var items: [Object]
    /// `metadata.resourceVersion` of the list.
    package var resourceVersion: String
    /// A list.
    package init(items: [Object], resourceVersion: String) {
        self.items = items
        self.resourceVersion = resourceVersion
    }
}

/// One event of a watch stream (`?watch=true`).
package enum WatchEvent<Object: Sendable>: Sendable {
    /// `ADDED`.
    case added(Object)
    /// `MODIFIED`.
    case modified(Object)
    /// `DELETED`: the object's last state.
    case deleted(Object)
    /// `BOOKMARK`: nothing changed up to `resourceVersion`.
    case bookmark(resourceVersion: String)
}
