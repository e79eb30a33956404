/// What the publish, refresh, recovery and unpublish steps share: the per-process state (the volume records,
/// the target locks), the mount and file-system seams (the mount operations below throw ``PublishError``), the
/// fixed configuration, the metrics and the monotonic clock. What only some steps use (the provider fetch, the
/// apply steps, the events, the pod status writes, the shared fetches) is given to those steps alone, in
/// ``NodePublisher``'s initialiser.
struct PublishContext: Sendable {
    let mounter: any Mounter
    let fileSystem: any FileSystem
    let monotonicNow: @Sendable () -> Duration
    let configuration: NodePublisher.Configuration
    let metrics: any DriverMetrics
    let locks: TargetLocks
    let volumes: PublishedVolumes

    // MARK: Mounts

    func mountState(of target: String) async throws(PublishError) -> MountState {
        do { return try await mounter.state(of: target) } catch { throw PublishError(error) }
    }

    /// Mounts the volume's tmpfs, owned by `group` (the pod's fsGroup) when there is one.
    func mountTmpfs(at target: String, group: UInt32?) async throws(PublishError) {
        do { try await mounter.mountTmpfs(at: target, group: group) } catch { throw PublishError(error) }
    }

    func unmount(_ target: String) async throws(PublishError) {
        do { try await mounter.unmount(target) } catch { throw PublishError(error) }
    }

    /// Whether a mounted target holds a volume this driver wrote (a `..data` link), rather than an empty tmpfs
    /// left by a process that died between mounting and writing.
    func holdsPublishedContent(_ target: String) throws(PublishError) -> Bool {
        do {
            if try fileSystem.symbolicLinkDestination(at: target + "/" + AtomicWriter.dataLinkName) != nil {
                return true
            }
            // A provider that writes files itself leaves no `..data`; any entry counts as content then.
            return try !fileSystem.contentsOfDirectory(at: target).isEmpty
        } catch {
            throw PublishError(error, target: target, during: .inspectingContent)
        }
    }

    /// Whether the volume's refresh interval (its class's `spec.refreshInterval`, else the rotation interval)
    /// has passed since the last fetch of `target` (always for an unknown one).
    func isDueForRefresh(_ target: String) -> Bool {
        guard configuration.rotation.enabled else { return false }
        guard let volume = volumes.volume(at: target) else { return true }
        return monotonicNow() - volume.fetchedAt >= (volume.refreshInterval ?? configuration.rotation.interval)
    }
}
