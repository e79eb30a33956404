import SecretsStoreCore
import Testing

/// The publish decision as a table: every observed state of a target and the action it gets, with no I/O.
@Suite struct PublishDecisionTests {
    struct Row: Sendable, CustomTestStringConvertible {
        var mountState: MountState
        var holdsContent: Bool
        var known: Bool
        var rotation: Bool
        var due: Bool
        var expected: PublishAction

        var testDescription: String {
            "\(mountState) content=\(holdsContent) known=\(known) rotation=\(rotation) due=\(due)"
        }
    }

    static let fillNew = PublishAction.fill(FillPlan(createDirectory: true, mount: true, unmountOnFailure: true))
    static let fillDirectory = PublishAction.fill(FillPlan(createDirectory: false, mount: true, unmountOnFailure: true))
    static let fillEmptyTmpfs = PublishAction.fill(FillPlan(createDirectory: false, mount: false, unmountOnFailure: true))
    static let refillKeepingContent = PublishAction.fill(FillPlan(createDirectory: false, mount: false, unmountOnFailure: false))

    static let rows: [Row] = [
        // Nothing there yet: create, mount, fill; a failure leaves nothing.
        Row(mountState: .absent, holdsContent: false, known: false, rotation: false, due: true, expected: fillNew),
        Row(mountState: .absent, holdsContent: false, known: true, rotation: true, due: false, expected: fillNew),
        // kubelet created the directory.
        Row(mountState: .directory, holdsContent: false, known: false, rotation: false, due: true, expected: fillDirectory),
        Row(mountState: .directory, holdsContent: false, known: true, rotation: true, due: true, expected: fillDirectory),
        // A stale mount is cleaned and the call fails, whatever else is known.
        Row(mountState: .corrupt(reason: "Transport endpoint is not connected"), holdsContent: false, known: true, rotation: true, due: true,
            expected: .cleanStaleMount(reason: "Transport endpoint is not connected")),
        // An empty tmpfs (a driver died between mount and write): fill it without mounting again.
        Row(mountState: .mounted, holdsContent: false, known: false, rotation: false, due: true, expected: fillEmptyTmpfs),
        Row(mountState: .mounted, holdsContent: false, known: true, rotation: true, due: false, expected: fillEmptyTmpfs),
        // Published and known: keep, or refresh when rotation is on and the interval has passed.
        Row(mountState: .mounted, holdsContent: true, known: true, rotation: false, due: true, expected: .keepPublished(rememberRequest: true)),
        Row(mountState: .mounted, holdsContent: true, known: true, rotation: true, due: false, expected: .keepPublished(rememberRequest: true)),
        Row(mountState: .mounted, holdsContent: true, known: true, rotation: true, due: true, expected: .refresh),
        // Published before this process started and not recovered.
        Row(mountState: .mounted, holdsContent: true, known: false, rotation: false, due: true, expected: .keepPublished(rememberRequest: false)),
        Row(mountState: .mounted, holdsContent: true, known: false, rotation: true, due: true, expected: refillKeepingContent),
    ]

    @Test(arguments: rows)
    func decides(_ row: Row) {
        let observation = PublishObservation(
            mountState: row.mountState,
            holdsContent: row.holdsContent,
            isKnownVolume: row.known,
            rotationEnabled: row.rotation,
            refreshDue: row.due
        )
        #expect(PublishDecision.decide(observation) == row.expected)
    }

    @Test func everyFillUndoesOnlyWhatItOwns() {
        // Across every row, a fill that found content never unmounts it on failure, and one that mounts always does.
        for row in Self.rows {
            guard case .fill(let plan) = row.expected else { continue }
            if row.holdsContent { #expect(!plan.unmountOnFailure) }
            if plan.mount { #expect(plan.unmountOnFailure) }
        }
    }
}
