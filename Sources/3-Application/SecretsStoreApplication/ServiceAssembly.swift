import Logging
import ServiceLifecycle
import Synchronization
import UnixSignals

/// The one way this program runs long-lived pieces: an assembly (the node plugin's ``DriverAssembly``, the
/// controller's ``ControllerAssembly``, `provider azure`'s ``BuiltInProviderServer``) says which services it
/// runs, in which order, and what "listening" means; the extension below runs them under one `ServiceGroup`
/// and owns everything else: running once, graceful-shutdown signals, the bound on a graceful shutdown, the
/// listening signal, ``triggerGracefulShutdown()`` whenever it comes, and releasing what the assembly owns
/// once the group has stopped.
///
/// Every piece of background work an assembly starts is one of its services (or structured work inside one),
/// so it ends before ``run(gracefulShutdownSignals:maximumGracefulShutdownDuration:)`` returns.
package protocol ServiceAssembly: AnyObject, Sendable {
    /// The parts of ``Listening`` known so far (each service reports its own part).
    associatedtype ListeningProgress: Sendable
    /// Where the running assembly can be reached, once every part listens.
    associatedtype Listening: Sendable

    /// The run state, made once when the assembly is made.
    var lifecycle: AssemblyLifecycle<ListeningProgress, Listening> { get }

    /// Work in ``run(gracefulShutdownSignals:maximumGracefulShutdownDuration:)`` before any service starts (the
    /// node plugin's start-up recovery, the start-up log line). It does not throw: a failure is the
    /// assembly's to log.
    func startUp() async

    /// The services in group order: the first starts first and is shut down last. Each reports its part of
    /// ``Listening`` to `listening`.
    func services(
        reportingTo listening: ListeningSignal<ListeningProgress, Listening>
    ) throws -> [ServiceGroupConfiguration.ServiceConfiguration]

    /// Shuts down what the assembly made and owns (HTTP clients); called once, by ``shutdown()``.
    func releaseOwnedResources() async throws
}

extension ServiceAssembly {
    /// Runs the assembly until its group stops (a signal in `gracefulShutdownSignals`,
    /// ``triggerGracefulShutdown()``, a service ending or throwing, or cancellation of the calling task), then
    /// releases what it owns (``shutdown()``). Call it once: a second call throws
    /// ``AssemblyError/alreadyStarted``.
    ///
    /// First ``ServiceAssembly/startUp()``, then the services. When a graceful shutdown was requested before
    /// the services start (before this call or during start-up), they never start and the call returns
    /// normally once the assembly's resources are released.
    ///
    /// - Parameters:
    ///   - gracefulShutdownSignals: the signals that stop the group gracefully (the executable: SIGTERM,
    ///     SIGINT; in-process users: none).
    ///   - maximumGracefulShutdownDuration: after this long a graceful shutdown becomes cancellation (`nil`:
    ///     wait for in-flight work however long it takes).
    package func run(
        gracefulShutdownSignals: [UnixSignal] = [],
        maximumGracefulShutdownDuration: Duration? = nil
    ) async throws {
        try lifecycle.begin()
        do {
            try await serve(gracefulShutdownSignals: gracefulShutdownSignals, maximumGracefulShutdownDuration: maximumGracefulShutdownDuration)
        } catch {
            lifecycle.listening.end(with: error)
            try? await shutdown()
            throw error
        }
        lifecycle.listening.end(with: AssemblyError.stoppedBeforeListening)
        try await shutdown()
    }

    /// Start-up, then the group until it stops; nothing when a shutdown was requested before the group starts.
    private func serve(gracefulShutdownSignals: [UnixSignal], maximumGracefulShutdownDuration: Duration?) async throws {
        if lifecycle.shutdownRequested { return }
        await startUp()
        await lifecycle.startingUp()
        if lifecycle.shutdownRequested { return }
        var configuration = ServiceGroupConfiguration(
            services: try services(reportingTo: lifecycle.listening),
            gracefulShutdownSignals: gracefulShutdownSignals,
            logger: lifecycle.logger
        )
        configuration.maximumGracefulShutdownDuration = maximumGracefulShutdownDuration
        let group = ServiceGroup(configuration: configuration)
        // A request that came while the services were being made: the group (which keeps a request made
        // before its `run`) starts them and shuts them down at once.
        if lifecycle.adopt(group) { await group.triggerGracefulShutdown() }
        try await group.run()
    }

    /// Waits until every part listens.
    ///
    /// - Throws: the error ``run(gracefulShutdownSignals:maximumGracefulShutdownDuration:)`` stopped with
    ///   (``AssemblyError/stoppedBeforeListening`` when it stopped cleanly) if it ends before everything
    ///   listens; `CancellationError` when the waiting task is cancelled.
    package func listening() async throws -> Listening {
        try await lifecycle.listening.wait()
    }

    /// Stops the assembly gracefully, whenever it is called: before
    /// ``run(gracefulShutdownSignals:maximumGracefulShutdownDuration:)``, that run starts nothing and returns;
    /// during start-up, the services do not start; while they run, the group shuts them down in reverse order;
    /// after the run has ended, nothing happens.
    package func triggerGracefulShutdown() async {
        await lifecycle.requestShutdown()?.triggerGracefulShutdown()
    }

    /// Shuts down what the assembly owns (its HTTP clients); later calls do nothing.
    /// ``run(gracefulShutdownSignals:maximumGracefulShutdownDuration:)`` calls it when the group has stopped;
    /// call it yourself only for an assembly that is never run.
    package func shutdown() async throws {
        guard lifecycle.claimRelease() else { return }
        try await releaseOwnedResources()
    }

    /// Runs the assembly, waits until it listens, runs `body`, then stops it gracefully and waits for it to
    /// finish. The error of `body` wins over one of the assembly's own stopping.
    ///
    /// - Parameter maximumGracefulShutdownDuration: see ``run(gracefulShutdownSignals:maximumGracefulShutdownDuration:)``.
    package func withRunning<T: Sendable>(
        maximumGracefulShutdownDuration: Duration? = nil,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (Listening) async throws -> T
    ) async throws -> T {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try await self.run(maximumGracefulShutdownDuration: maximumGracefulShutdownDuration)
            }
            let result: Result<T, any Error>
            do {
                let listening = try await listening()
                result = .success(try await body(listening))
            } catch {
                result = .failure(error)
            }
            await triggerGracefulShutdown()
            var stopError: (any Error)?
            do { try await group.waitForAll() } catch { stopError = error }
            let value = try result.get()
            if let stopError { throw stopError }
            return value
        }
    }
}

/// What ``ServiceAssembly/run(gracefulShutdownSignals:maximumGracefulShutdownDuration:)``,
/// ``ServiceAssembly/triggerGracefulShutdown()`` and ``ServiceAssembly/shutdown()`` share: whether the run
/// began, whether a shutdown was requested, the running group, whether the resources were released, and the
/// listening signal.
package final class AssemblyLifecycle<Progress: Sendable, Listening: Sendable>: Sendable {
    /// The logger of the group and of the "listening" line.
    package let logger: Logger
    /// Where the services report their parts, and where callers wait for all of them.
    package let listening: ListeningSignal<Progress, Listening>
    /// Awaited in `run` after the assembly's start-up, before its services are made (see ``init(logger:nothingListening:complete:describe:startingUp:)``).
    let startingUp: @Sendable () async -> Void

    private struct State {
        var started = false
        var shutdownRequested = false
        var group: ServiceGroup?
        var released = false
    }

    private let state = Mutex(State())

    /// - Parameters:
    ///   - nothingListening: the progress before any service reported.
    ///   - complete: ``Listening`` once the progress holds every part the assembly waits for, else `nil`.
    ///   - describe: the metadata of the one line logged when everything listens.
    ///   - startingUp: production: nothing. Tests hold start-up here (after the assembly's own start-up work,
    ///     before its services are made) to request a shutdown during it.
    package init(
        logger: Logger,
        nothingListening: Progress,
        complete: @escaping @Sendable (Progress) -> Listening?,
        describe: @escaping @Sendable (Listening) -> Logger.Metadata,
        startingUp: @escaping @Sendable () async -> Void = {}
    ) {
        self.logger = logger
        self.startingUp = startingUp
        self.listening = ListeningSignal(nothingListening, complete: complete) { listening in
            logger.info("listening on every part", metadata: describe(listening))
        }
    }

    /// Marks the run begun; throws ``AssemblyError/alreadyStarted`` the second time.
    func begin() throws(AssemblyError) {
        let first = state.withLock { state in
            defer { state.started = true }
            return !state.started
        }
        guard first else { throw .alreadyStarted }
    }

    /// Whether ``ServiceAssembly/triggerGracefulShutdown()`` was called.
    var shutdownRequested: Bool { state.withLock { $0.shutdownRequested } }

    /// Remembers the running group; whether a shutdown was requested before it existed.
    func adopt(_ group: ServiceGroup) -> Bool {
        state.withLock { state in
            state.group = group
            return state.shutdownRequested
        }
    }

    /// Records the request; the group to stop, when there is one.
    func requestShutdown() -> ServiceGroup? {
        state.withLock { state in
            state.shutdownRequested = true
            return state.group
        }
    }

    /// `true` once: the caller releases the resources.
    func claimRelease() -> Bool {
        state.withLock { state in
            defer { state.released = true }
            return !state.released
        }
    }
}

/// Collects where each service listens and, once every part an assembly waits for has reported, makes its
/// ``ServiceAssembly/Listening``, tells `onListening` once and wakes every ``wait()``.
package final class ListeningSignal<Progress: Sendable, Listening: Sendable>: Sendable {
    private struct State {
        var progress: Progress
        var listening: Listening?
        var ended: (any Error)?
        var waiters: [UInt64: CheckedContinuation<Listening, any Error>] = [:]
        var nextWaiter: UInt64 = 0
    }

    private let state: Mutex<State>
    private let complete: @Sendable (Progress) -> Listening?
    private let onListening: @Sendable (Listening) -> Void

    /// - Parameters:
    ///   - nothingListening: the progress before any part reported.
    ///   - complete: the result once `progress` holds every part, else `nil`.
    ///   - onListening: told once, when every part listens.
    package init(
        _ nothingListening: Progress,
        complete: @escaping @Sendable (Progress) -> Listening?,
        onListening: @escaping @Sendable (Listening) -> Void = { _ in }
    ) {
        self.state = Mutex(State(progress: nothingListening))
        self.complete = complete
        self.onListening = onListening
    }

    /// One part listens: `change` records it in the progress.
    package func report(_ change: (inout Progress) -> Void) {
        let (listening, waiters) = state.withLock { state -> (Listening?, [CheckedContinuation<Listening, any Error>]) in
            change(&state.progress)
            guard state.listening == nil, state.ended == nil, let listening = complete(state.progress) else { return (nil, []) }
            state.listening = listening
            defer { state.waiters = [:] }
            return (listening, Array(state.waiters.values))
        }
        guard let listening else { return }
        onListening(listening)
        for waiter in waiters { waiter.resume(returning: listening) }
    }

    /// The assembly stopped; waiters still waiting get `error` (nothing changes if everything listened already).
    package func end(with error: any Error) {
        let waiters = state.withLock { state -> [CheckedContinuation<Listening, any Error>] in
            guard state.listening == nil, state.ended == nil else { return [] }
            state.ended = error
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume(throwing: error) }
    }

    /// Where the assembly listens, once every part does.
    package func wait() async throws -> Listening {
        let id = state.withLock { state in
            defer { state.nextWaiter += 1 }
            return state.nextWaiter
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let outcome: Result<Listening, any Error>? = state.withLock { state in
                    if let listening = state.listening { return .success(listening) }
                    if let ended = state.ended { return .failure(ended) }
                    if Task.isCancelled { return .failure(CancellationError()) }
                    state.waiters[id] = continuation
                    return nil
                }
                if let outcome { continuation.resume(with: outcome) }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume(throwing: CancellationError())
        }
    }
}

/// Why an assembly did not do what it was asked.
package enum AssemblyError: Error, Equatable, CustomStringConvertible {
    /// ``ServiceAssembly/run(gracefulShutdownSignals:maximumGracefulShutdownDuration:)`` was called a second time.
    case alreadyStarted
    /// The assembly stopped before every part was listening.
    case stoppedBeforeListening

    /// A sentence for the log.
    package var description: String {
        switch self {
        case .alreadyStarted: "the assembly has already been run"
        case .stoppedBeforeListening: "the assembly stopped before it was listening"
        }
    }
}

/// The production monotonic clock of the assemblies' seams: time since the first reading in this process.
package enum ProcessClock {
    /// Time since the first reading in this process.
    package static let monotonicNow: @Sendable () -> Duration = { ContinuousClock.now - start }
    private static let start = ContinuousClock.now
}
