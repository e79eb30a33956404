import Logging
import SecretsStoreCore
import ServiceLifecycle

/// Runs a ``Reflector`` (list, then watch, until stopped) as a service of the driver's group. On graceful
/// shutdown or cancellation the reflector's task is cancelled and the service returns normally; a reflector
/// never fails on its own (it retries with back-off), so this service never ends the group.
package struct ReflectorService<Object: Sendable>: Service {
    private let reflector: Reflector<Object>
    private let logger: Logger

    /// A service running `reflector`, logging through `logger`.
    package init(_ reflector: Reflector<Object>, logger: Logger) {
        self.reflector = reflector
        self.logger = logger
    }

    /// Lists and watches until graceful shutdown or cancellation.
    package func run() async throws {
        await cancelWhenGracefulShutdown {
            await reflector.run(logger: logger)
        }
    }
}
