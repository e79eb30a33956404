import Synchronization

/// What the driver remembers about each volume it published on this node: the request context from kubelet's
/// latest call (to fetch again on rotation), the object versions the volume holds (sent back to the provider as
/// `current_object_version`), and when it last fetched them (the rotation gate, kept per volume instead of
/// upstream's directory mtime).
package final class PublishedVolumes: Sendable {
    /// One published volume.
    package struct Volume: Sendable, Equatable {
        /// Kubelet's latest request for this volume. `nil` for a volume recovered after a restart until kubelet
        /// republishes it (the tokens and nodePublishSecretRef data are not stored anywhere else). Its
        /// ``ValidatedPublishRequest/mountGroup`` is the group every rotation writes the new files with.
        package var request: ValidatedPublishRequest?
        /// The pod the volume belongs to.
        package var pod: PodReference
        /// The SecretProviderClass the volume is filled from (its `metadata.name`, in the pod's namespace).
        package var secretProviderClassName: String
        /// That class's `spec.provider` at the last fetch; empty for a recovered volume whose class could not be read.
        package var provider: String
        /// The versions the volume holds, sorted by ``ObjectVersion/id`` (as in its SecretProviderClassPodStatus).
        package var objectVersions: [ObjectVersion]
        /// ``NodePublisher``'s `monotonicNow` at the last fetch attempt: set after a successful fetch and also
        /// after a failed refresh (so the next try waits a full interval); a recovered volume starts one interval
        /// back, so it is due at once.
        package var fetchedAt: Duration
        /// UID of the volume's SecretProviderClassPodStatus (owner of Secrets synced for a bare pod); empty until one
        /// is written, e.g. for a recovered volume.
        package var podStatusUID: String
        /// Secrets still to be synced after a failed attempt.
        package var secretSyncPending: Bool
        /// The class's valid `spec.refreshInterval` at the last successful fetch: the least time between two
        /// fetches for this volume instead of ``RotationPolicy/interval``. `nil` when the class has none, has
        /// an invalid one, or has not been read yet (a recovered volume).
        package var refreshInterval: Duration? = nil
    }

    private let volumes = Mutex<[String: Volume]>([:])

    /// No volumes.
    package init() {}

    /// The volume published at `target`, or `nil`.
    package func volume(at target: String) -> Volume? {
        volumes.withLock { $0[target] }
    }

    /// Records `volume` at `target`, replacing any earlier record.
    package func record(_ volume: Volume, at target: String) {
        volumes.withLock { $0[target] = volume }
    }

    /// Changes the volume at `target`, if there is one.
    package func update(_ target: String, _ change: (inout Volume) -> Void) {
        volumes.withLock { volumes in
            if var volume = volumes[target] {
                change(&volume)
                volumes[target] = volume
            }
        }
    }

    /// Drops the record for `target`, if there is one.
    package func forget(_ target: String) {
        _ = volumes.withLock { $0.removeValue(forKey: target) }
    }

    /// The target paths of every volume recorded.
    package var targets: [String] { volumes.withLock { Array($0.keys) } }

    /// A copy of every volume, by target path.
    package var all: [String: Volume] { volumes.withLock { $0 } }

    /// The smallest ``Volume/refreshInterval`` among the volumes recorded; `nil` when none has one.
    package var shortestRefreshInterval: Duration? {
        volumes.withLock { $0.values.compactMap(\.refreshInterval).min() }
    }
}

/// When an already-published volume is fetched again.
package struct RotationPolicy: Sendable, Equatable {
    /// `--enable-secret-rotation`.
    package var enabled: Bool
    /// `--rotation-poll-interval`: the least time between two fetches for one volume whose class sets no valid
    /// `spec.refreshInterval` (see ``PublishedVolumes/Volume/refreshInterval``).
    package var interval: Duration

    /// Upstream's flag defaults: rotation off, a 2-minute interval.
    package init(enabled: Bool = false, interval: Duration = .seconds(120)) {
        self.enabled = enabled
        self.interval = interval
    }

    /// Rotation off.
    package static let disabled = RotationPolicy()
}
