import Logging

/// Records events on pods, best effort: a failed write is logged at debug level and never fails the operation
/// that reported it (the volume is served whether or not `kubectl describe pod` can tell).
package struct PodEventRecorder: Sendable {
    private let kubernetes: any KubernetesClient

    /// Records through `kubernetes`.
    package init(kubernetes: any KubernetesClient) {
        self.kubernetes = kubernetes
    }

    /// Records `event`; a failure is logged, not thrown.
    package func record(_ event: PodEvent, logger: Logger) async {
        do {
            try await kubernetes.recordEvent(event, logger: logger)
        } catch {
            logger.debug("failed to record event", metadata: ["event.reason": "\(event.reason)", "error": "\(error)"])
        }
    }
}
