import SecretsStoreCore
import ServiceLifecycle

/// Owns the ``PodStatusWriter``'s background writes in the driver's `ServiceGroup`: it waits for the group's
/// graceful shutdown, then ends every pending write (``PodStatusWriter/shutdown(drainingFor:)``: landed within
/// `drainBound`, else cancelled) and returns. It is the first service of the group, so it is shut down last,
/// after the CSI server has answered its calls (which submit writes), and the assembly shuts the Kubernetes
/// client down only once the group, and with it every write, has ended. Cancelled instead, it cancels the
/// writes at once.
package struct PodStatusWriterService: Service {
    package let writer: PodStatusWriter
    /// How long pending writes may take to land at a graceful shutdown.
    package let drainBound: Duration

    /// Owns `writer`'s writes; a graceful shutdown gives them `drainBound` to land.
    package init(writer: PodStatusWriter, drainBound: Duration) {
        self.writer = writer
        self.drainBound = drainBound
    }

    package func run() async throws {
        do {
            try await gracefulShutdown()
            await writer.shutdown(drainingFor: drainBound)
        } catch {
            await writer.shutdown(drainingFor: .zero)
        }
    }
}
