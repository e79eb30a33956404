import Logging
import SecretsStoreApplication
import SecretsStoreCore
import SecretsStoreCoreTesting
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The lifecycle every assembly shares (``ServiceAssembly``), checked with the same test body on the node
/// plugin, the controller and `provider azure`: a graceful shutdown requested before `run`, during start-up
/// or while serving is honoured (`run` returns cleanly and a second `run` is refused); the listening signal
/// fires once, with every part the assembly waits for; and the background work the assembly started has ended
/// when `run` returns.
@Suite("Assembly lifecycle: shutdown before, during and after start-up; listening once; background work ends", .timeLimit(.minutes(2)))
struct AssemblyLifecycleTests {
    enum Moment: String, CaseIterable, CustomTestStringConvertible {
        case beforeRun = "before run"
        case duringStartUp = "during start-up"
        case whileServing = "while serving"
        var testDescription: String { rawValue }
    }

    @Test("a graceful shutdown is honoured", arguments: AssemblyCase.all, Moment.allCases)
    func shutdown(of kind: AssemblyCase, at moment: Moment) async throws {
        try await withTemporaryDirectory { (root: String) async throws in try await Self.shutdown(of: kind, at: moment, in: root) }
    }

    /// The shared body: `kind` made in `root`, a graceful shutdown requested at `moment`.
    static func shutdown(of kind: AssemblyCase, at moment: Moment, in root: String) async throws {
        let logs = LogCapture()
        let gate = StartUpGate()
        let holdStartUp = moment == .duringStartUp
        let startingUp: @Sendable () async -> Void = { if holdStartUp { await gate.hold() } }
        let assembly = try await kind.make(root, logs, startingUp)
        switch moment {
        case .beforeRun:
            await assembly.triggerGracefulShutdown()
            try await assembly.run()
        case .duringStartUp:
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await assembly.run() }
                try await eventually("start-up held") { gate.isHeld }
                await assembly.triggerGracefulShutdown()
                gate.open()
                try await tasks.waitForAll()
            }
        case .whileServing:
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await assembly.run() }
                let missing = try await assembly.missingListeningParts()
                #expect(missing.isEmpty, "every part listens; missing: \(missing)")
                try await assembly.busy()
                await assembly.triggerGracefulShutdown()
                try await tasks.waitForAll()
            }
            let unended = assembly.unendedWork()
            #expect(unended.isEmpty, "background work still running after run returned: \(unended)")
        }
        let listeningLines = logs.all.filter { $0.contains("listening on every part") }
        let expectedLines = moment == .whileServing ? 1 : 0
        #expect(listeningLines.count == expectedLines, "\(listeningLines)")
        if moment != .whileServing {
            await #expect(throws: AssemblyError.stoppedBeforeListening) { _ = try await assembly.missingListeningParts() }
        }
        // After the run: a late request changes nothing, and the assembly is not run twice.
        await assembly.triggerGracefulShutdown()
        await #expect(throws: AssemblyError.alreadyStarted) { try await assembly.run() }
    }

    @Test("the listening signal fires once, when the last part reports; later reports and the end change nothing")
    func listeningFiresOnce() async throws {
        let fired = Mutex<[Int]>([])
        let signal = ListeningSignal<(socket: Int?, port: Int?), Int>(
            (nil, nil),
            complete: { progress in progress.socket.flatMap { socket in progress.port.map { socket + $0 } } },
            onListening: { value in fired.withLock { $0.append(value) } }
        )
        signal.report { $0.socket = 1 }
        #expect(fired.withLock { $0 }.isEmpty, "one part is not listening")
        signal.report { $0.port = 2 }
        signal.report { $0.port = 5 }
        signal.end(with: AssemblyError.stoppedBeforeListening)
        #expect(fired.withLock { $0 } == [3])
        #expect(try await signal.wait() == 3)
    }
}

/// Holds an assembly's start-up (its `startingUp` seam) until the test opens it.
final class StartUpGate: Sendable {
    private let state = Mutex<(held: Bool, opened: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, false, nil))

    /// Whether start-up has reached the gate.
    var isHeld: Bool { state.withLock { $0.held } }

    /// Suspends until ``open()``.
    func hold() async {
        await withCheckedContinuation { continuation in
            let proceed = state.withLock { state -> Bool in
                state.held = true
                if state.opened { return true }
                state.waiter = continuation
                return false
            }
            if proceed { continuation.resume() }
        }
    }

    /// Lets start-up go on.
    func open() {
        state.withLock { state in
            state.opened = true
            defer { state.waiter = nil }
            return state.waiter
        }?.resume()
    }
}

/// An assembly as the shared test drives it, whichever it is.
struct AssemblyUnderTest: Sendable {
    let run: @Sendable () async throws -> Void
    let triggerGracefulShutdown: @Sendable () async -> Void
    /// Waits for listening; the parts the assembly waits for that are missing from what it reported.
    let missingListeningParts: @Sendable () async throws -> [String]
    /// Returns once the assembly's background work is running.
    let busy: @Sendable () async throws -> Void
    /// The background work that has not ended.
    let unendedWork: @Sendable () -> [String]

    init<A: ServiceAssembly>(
        _ assembly: A,
        missingParts: @escaping @Sendable (A.Listening) -> [String],
        busy: @escaping @Sendable () async throws -> Void = {},
        unendedWork: @escaping @Sendable () -> [String]
    ) {
        run = { try await assembly.run() }
        triggerGracefulShutdown = { await assembly.triggerGracefulShutdown() }
        missingListeningParts = { missingParts(try await assembly.listening()) }
        self.busy = busy
        self.unendedWork = unendedWork
    }
}

/// How to make each assembly for the shared test: in-memory fakes, loopback ports, sockets under `root`.
struct AssemblyCase: Sendable, CustomTestStringConvertible {
    let name: String
    /// Makes the assembly in `root`, logging into `logs`, with `startingUp` as its start-up seam.
    let make: @Sendable (_ root: String, _ logs: LogCapture, _ startingUp: @escaping @Sendable () async -> Void) async throws -> AssemblyUnderTest

    var testDescription: String { name }

    static let all: [AssemblyCase] = [driver, controller, provider]

    /// The node plugin with rotation on: its loop's wait is the background work that must end with the group.
    static let driver = AssemblyCase(name: "node plugin") { root, logs, startingUp in
        let sleeping = Mutex(0)
        let driver = try await DriverAssembly(
            configuration: DriverConfiguration(
                socketPath: root + "/csi.sock",
                nodeID: "node-1",
                providerDirectories: [],
                rotation: RotationPolicy(enabled: true, interval: .seconds(3600)),
                metricsAddress: "127.0.0.1:0",
                builtInAzure: nil
            ),
            seams: DriverAssembly.Seams(
                kubernetes: InMemoryKubernetesAPI(),
                mounter: RecordingMounter(),
                rotationSleep: { duration in
                    sleeping.withLock { $0 += 1 }
                    defer { sleeping.withLock { $0 -= 1 } }
                    try await Task.sleep(for: duration)
                },
                startingUp: startingUp
            ),
            logger: logs.logger()
        )
        return AssemblyUnderTest(
            driver,
            missingParts: { listening in
                (listening.socketPath == root + "/csi.sock" ? [] : ["CSI socket"]) + (listening.metricsPort > 0 ? [] : ["metrics port"])
            },
            busy: { try await eventually("the rotation loop waiting") { sleeping.withLock { $0 } == 1 } },
            unendedWork: {
                (sleeping.withLock { $0 } == 0 ? [] : ["the rotation loop"])
                    + (access(root + "/csi.sock", F_OK) != 0 ? [] : ["the CSI server (its socket is still there)"])
            }
        )
    }

    /// The controller with leader election: it leads while serving, and its work (the controller, the
    /// election and the Lease's release) has ended when `run` returns.
    static let controller = AssemblyCase(name: "controller") { _, logs, startingUp in
        let api = InMemoryKubernetesAPI()
        let election = ControllerConfiguration.LeaderElection(namespace: "kube-system", name: "lifecycle-test", identity: "me")
        let controller = try await ControllerAssembly(
            configuration: ControllerConfiguration(
                kubernetes: .inCluster,
                providerDirectories: [],
                builtInAzure: nil,
                defaultInterval: .seconds(3600),
                namespace: nil,
                driverName: "secrets-store.csi.k8s.io",
                tokenAudiences: [],
                leaderElection: election,
                metricsAddress: "127.0.0.1:0"
            ),
            seams: ControllerAssembly.Seams(kubernetes: api, startingUp: startingUp),
            logger: logs.logger()
        )
        let holder: @Sendable () -> String? = { api.storedLease(namespace: "kube-system", name: "lifecycle-test")?.holderIdentity }
        return AssemblyUnderTest(
            controller,
            missingParts: { $0.metricsPort > 0 ? [] : ["metrics port"] },
            busy: { try await eventually("the controller leading") { holder() == "me" } },
            unendedWork: {
                (logs.all.contains { $0.contains("sync controller stopped") } ? [] : ["the sync controller"])
                    + (holder() == "" ? [] : ["the leader election (the Lease is still held)"])
            }
        )
    }

    /// `provider azure` with its health endpoint and metrics: three parts to listen.
    static let provider = AssemblyCase(name: "provider azure") { root, logs, startingUp in
        let server = try BuiltInProviderServer(
            azure: DriverConfiguration.BuiltInAzure(),
            socketPath: root + "/azure.sock",
            options: .init(healthzAddress: "127.0.0.1:0", healthzPath: "/healthz", healthzTimeout: .seconds(5), metricsAddress: "127.0.0.1:0"),
            seams: BuiltInProviderServer.Seams(startingUp: startingUp),
            logger: logs.logger()
        )
        return AssemblyUnderTest(
            server,
            missingParts: { listening in
                (listening.socketPath == root + "/azure.sock" ? [] : ["provider socket"])
                    + (listening.healthzPort.map { $0 > 0 } == true ? [] : ["healthz port"])
                    + (listening.metricsPort.map { $0 > 0 } == true ? [] : ["metrics port"])
            },
            unendedWork: { access(root + "/azure.sock", F_OK) != 0 ? [] : ["the provider socket server (its socket is still there)"] }
        )
    }
}
