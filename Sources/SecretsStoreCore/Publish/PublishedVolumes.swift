import Synchronization

/// What the driver remembers about each volume it published on this node: the request context from kubelet's
/// latest call (to fetch again on rotation), the object versions the volume holds (sent back to the provider as
/// `current_object_version`), and when it last fetched them (the rotation gate, kept per volume instead of
/// upstream's directory mtime).
package final class PublishedVolumes: Sendable {
    /// One published volume.
    package struct Volume: Sendable, Equatable {
        /// Kubelet's latest request for this volume. `nil` for a volume recovered after a restart until kubelet
        /// republishes it (the tokens and nodePublishSecretRef data are not stored anywhere else).
        package var request: ValidatedPublishRequest?
        package var pod: PodReference
        package var secretProviderClassName: String
        package var provider: String
        package var objectVersions: [ObjectVersion]
        /// Monotonic instant of the last successful fetch.
        package var fetchedAt: Duration
        package var podStatusUID: String
        /// Secrets still to be synced after a failed attempt.
        package var secretSyncPending: Bool
    }

    private let volumes = Mutex<[String: Volume]>([:])

    package init() {}

    package func volume(at target: String) -> Volume? {
        volumes.withLock { $0[target] }
    }

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

    package func forget(_ target: String) {
        _ = volumes.withLock { $0.removeValue(forKey: target) }
    }

    /// The target paths of every volume recorded.
    package var targets: [String] { volumes.withLock { Array($0.keys) } }

    /// A copy of every volume, by target path.
    package var all: [String: Volume] { volumes.withLock { $0 } }
}

/// When an already-published volume is fetched again.
package struct RotationPolicy: Sendable, Equatable {
    /// `--enable-secret-rotation`.
    package var enabled: Bool
    /// `--rotation-poll-interval`: the least time between two fetches for one volume.
    package var interval: Duration

    package init(enabled: Bool = false, interval: Duration = .seconds(120)) {
        self.enabled = enabled
        self.interval = interval
    }

    package static let disabled = RotationPolicy()
}
