import CSIProtocol
import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import SecretsStoreCore
import SecretsStoreCoreTesting
import SecretsStoreApplication
import SecretsStoreObservability
import SecretsStoreTesting
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The built-in registrar and the driver's own liveness check, through the assembly over real Unix sockets:
/// what kubelet's plugin watcher and a kubelet liveness probe see.
@Suite("Driver assembly: built-in registrar and /healthz", .timeLimit(.minutes(1)))
struct KubeletRegistrarTests {
    static func configuration(root: String, registration: Bool) -> DriverConfiguration {
        DriverConfiguration(
            socketPath: root + "/csi.sock",
            nodeID: "node-1",
            providerDirectories: [root + "/providers"],
            metricsAddress: "127.0.0.1:0",
            builtInAzure: nil,
            heapTrimInterval: nil,
            kubeletRegistration: registration
                ? .init(directory: root + "/plugins_registry", endpointPath: "/var/lib/kubelet/plugins/csi-secrets-store/csi.sock")
                : nil
        )
    }

    static func driver(root: String, registration: Bool, logs: LogCapture) async throws -> DriverAssembly {
        try await DriverAssembly(
            configuration: configuration(root: root, registration: registration),
            seams: DriverAssembly.Seams(kubernetes: InMemoryKubernetesAPI(), mounter: RecordingMounter()),
            logger: logs.logger(level: .debug)
        )
    }

    @Test("GetInfo names the plugin and kubelet's endpoint; a stale socket file is replaced; verdicts are logged and counted; the socket goes at stop")
    func registersWithKubelet() async throws {
        try await withTemporaryDirectory { root in
            mkdir(root + "/plugins_registry", 0o755)
            let socket = root + "/plugins_registry/secrets-store.csi.k8s.io-reg.sock"
            // What a killed driver leaves behind: a file nobody listens on.
            let stale = open(socket, O_CREAT | O_WRONLY, 0o600)
            close(stale)
            let logs = LogCapture()
            let driver = try await Self.driver(root: root, registration: true, logs: logs)
            try await driver.withRunning { _ in
                try await eventually("the registration socket replacing the stale file") { Self.isSocket(socket) }
                try await withCSIClient(socketPath: socket) { client in
                    let registration = Pluginregistration_Registration.Client(wrapping: client)
                    let info = try await registration.getInfo(Pluginregistration_InfoRequest())
                    #expect(info.type == "CSIPlugin")
                    #expect(info.name == "secrets-store.csi.k8s.io")
                    #expect(info.endpoint == "/var/lib/kubelet/plugins/csi-secrets-store/csi.sock")
                    #expect(info.supportedVersions == ["1.0.0"])

                    var refused = Pluginregistration_RegistrationStatus()
                    refused.pluginRegistered = false
                    refused.error = "RegisterPlugin error -- no handler registered for plugin type: CSIPlugin"
                    _ = try await registration.notifyRegistrationStatus(refused)
                    var accepted = Pluginregistration_RegistrationStatus()
                    accepted.pluginRegistered = true
                    _ = try await registration.notifyRegistrationStatus(accepted)
                }
                let metrics = driver.metrics.render()
                #expect(metrics.contains("kubelet_registration_total{registered=\"false\"} 1"))
                #expect(metrics.contains("kubelet_registration_total{registered=\"true\"} 1"))
            }
            #expect(!Self.exists(socket), "removed at shutdown, so kubelet deregisters the plugin")
            let refusal = logs.all.first { $0.hasPrefix("ERROR kubelet refused the registration") }
            #expect(refusal?.contains("error=RegisterPlugin error -- no handler registered") == true)
            #expect(logs.all.contains { $0.hasPrefix("INFO registered with kubelet") })
        }
    }

    @Test("/healthz is 200 while the CSI socket answers Probe and 503, naming Probe, once it does not")
    func healthzFollowsTheCSISocket() async throws {
        try await withTemporaryDirectory { root in
            let logs = LogCapture()
            let driver = try await Self.driver(root: root, registration: false, logs: logs)
            try await driver.withRunning { listening in
                let port = listening.metricsPort
                let healthy = try await blocking { try fetch("/healthz", port: port) }
                #expect(healthy.status == 200 && healthy.text == "ok")
                // The socket file gone: kubelet (and the check, which dials afresh) can no longer reach the driver.
                unlink(listening.socketPath)
                var last: TestResponse?
                try await eventually("/healthz answering 503", every: .milliseconds(100)) {
                    // A probe slower than the client's timeout is one more try, not a failure.
                    last = try? await blocking { try fetch("/healthz", port: port) }
                    return last?.status == 503
                }
                #expect(last?.text.contains("CSI Probe on \(listening.socketPath) failed") == true)
            }
            #expect(logs.all.contains { $0.hasPrefix("WARNING health check failed") })
        }
    }

    static func exists(_ path: String) -> Bool {
        var status = stat()
        return stat(path, &status) == 0
    }

    static func isSocket(_ path: String) -> Bool {
        var status = stat()
        return stat(path, &status) == 0 && (status.st_mode & S_IFMT) == S_IFSOCK
    }
}
