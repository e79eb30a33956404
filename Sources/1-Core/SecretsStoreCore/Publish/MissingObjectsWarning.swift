import Logging

/// The optional-objects step of applying a provider's answer: when the answer leaves out optional objects the
/// store does not have, an `OptionalObjectsMissing` warning on the pod names them, on the first publish and
/// whenever a refresh changes which objects the volume holds while some are still missing. The volume's record
/// keeps the objects it holds, not the missing ones, so an unchanged refresh warns of nothing new.
package struct MissingObjectsWarning: Sendable {
    private let events: PodEventRecorder

    /// Warns through `events`.
    package init(events: PodEventRecorder) {
        self.events = events
    }

    /// Whether an answer holding `objects` and missing `missing` is worth a warning, given the objects the
    /// volume held before (`nil` on a first publish).
    package static func isDue(missing: [MissingObject], objects: [ObjectVersion], previous: [ObjectVersion]?) -> Bool {
        guard !missing.isEmpty else { return false }
        guard let previous else { return true }
        return Set(previous.map(\.id)) != Set(objects.map(\.id))
    }

    /// Warns `pod` of `response`'s missing optional objects when ``isDue(missing:objects:previous:)``.
    package func warnIfDue(
        _ response: ProviderResponse,
        pod: PodReference,
        spc: SecretProviderClass,
        previous: [ObjectVersion]?,
        logger: Logger
    ) async {
        guard Self.isDue(missing: response.missingOptionalObjects, objects: response.objectVersions, previous: previous) else { return }
        let named = response.missingOptionalObjects.map { "\($0.id) (\($0.path))" }.joined(separator: ", ")
        await events.record(
            .init(pod: pod, kind: .warning, reason: PodEvent.optionalObjectsMissing,
                  message: "mounted spc \(spc.namespace)/\(spc.name) without optional objects the store does not have: \(named)"),
            logger: logger
        )
    }
}
