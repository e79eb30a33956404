/// What the publish step saw at a target before doing anything: the only inputs of ``PublishDecision``.
package struct PublishObservation: Sendable, Equatable {
    /// What is mounted at the target (from the mounter).
    package var mountState: MountState
    /// Whether a mounted target holds files this driver (or a provider that writes itself) put there. Only read
    /// when ``mountState`` is `.mounted`; `false` otherwise.
    package var holdsContent: Bool
    /// Whether this process remembers publishing the target (a record in ``PublishedVolumes``).
    package var isKnownVolume: Bool
    /// `--enable-secret-rotation`.
    package var rotationEnabled: Bool
    /// Whether the rotation interval has passed since the volume's last fetch (`true` for an unknown volume).
    package var refreshDue: Bool

    package init(mountState: MountState, holdsContent: Bool, isKnownVolume: Bool, rotationEnabled: Bool, refreshDue: Bool) {
        self.mountState = mountState
        self.holdsContent = holdsContent
        self.isKnownVolume = isKnownVolume
        self.rotationEnabled = rotationEnabled
        self.refreshDue = refreshDue
    }
}

/// What NodePublishVolume does with a target, as a pure function of what it observed, in the way
/// hummingbird's connection state machines return actions that the I/O layer only carries out.
package enum PublishAction: Sendable, Equatable {
    /// A mount whose contents cannot be read (a stale FUSE or a dead tmpfs): unmount it and fail, so kubelet's
    /// retry starts from a clean directory.
    case cleanStaleMount(reason: String)
    /// The volume is published and not due for a fetch: remember kubelet's latest request (fresh tokens and
    /// secrets for the rotation loop) when the volume is known, and answer OK without touching anything.
    case keepPublished(rememberRequest: Bool)
    /// A known volume whose rotation interval has passed: fetch again and swap the files when they changed;
    /// a failure keeps the old files and is not reported to kubelet.
    case refresh
    /// Fetch and write the volume's files.
    case fill(FillPlan)
}

/// How ``PublishAction/fill(_:)`` prepares the target and what it undoes when the fetch or write fails.
package struct FillPlan: Sendable, Equatable {
    /// The target directory does not exist yet: create it first.
    package var createDirectory: Bool
    /// No tmpfs is mounted yet: mount one.
    package var mount: Bool
    /// On failure, unmount the tmpfs: the target held nothing of ours before, so it must hold nothing after
    /// (an empty tmpfs left by a process that died between mount and write counts as nothing). A target that
    /// already had content, such as one published before a driver restart, keeps it.
    package var unmountOnFailure: Bool

    package init(createDirectory: Bool, mount: Bool, unmountOnFailure: Bool) {
        self.createDirectory = createDirectory
        self.mount = mount
        self.unmountOnFailure = unmountOnFailure
    }
}

/// The publish decision table.
package enum PublishDecision {
    /// Decides what to do with a target from what was observed there. No I/O; tested as a table.
    ///
    /// | mount state | content | known | rotation | due | action |
    /// |---|---|---|---|---|---|
    /// | absent | – | – | – | – | fill: create directory, mount, unmount on failure |
    /// | directory | – | – | – | – | fill: mount, unmount on failure |
    /// | corrupt | – | – | – | – | clean the stale mount and fail |
    /// | mounted | no | – | – | – | fill the empty tmpfs, unmount on failure |
    /// | mounted | yes | yes | – | no | keep, remembering the request |
    /// | mounted | yes | yes | on | yes | refresh |
    /// | mounted | yes | no | off | – | keep (nothing to remember: no record) |
    /// | mounted | yes | no | on | – | fill again, keeping the content on failure |
    package static func decide(_ observation: PublishObservation) -> PublishAction {
        switch observation.mountState {
        case .absent:
            return .fill(FillPlan(createDirectory: true, mount: true, unmountOnFailure: true))
        case .directory:
            return .fill(FillPlan(createDirectory: false, mount: true, unmountOnFailure: true))
        case .corrupt(let reason):
            return .cleanStaleMount(reason: reason)
        case .mounted where !observation.holdsContent:
            return .fill(FillPlan(createDirectory: false, mount: false, unmountOnFailure: true))
        case .mounted where observation.isKnownVolume:
            let due = observation.rotationEnabled && observation.refreshDue
            return due ? .refresh : .keepPublished(rememberRequest: true)
        case .mounted:
            // Published before this process started (its record was not recovered). Without rotation there is
            // nothing to do; with it, fetch again so the rotation loop learns the volume.
            return observation.rotationEnabled
                ? .fill(FillPlan(createDirectory: false, mount: false, unmountOnFailure: false))
                : .keepPublished(rememberRequest: false)
        }
    }
}
