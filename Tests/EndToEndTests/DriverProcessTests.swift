import CSIProtocol
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import GRPCCore
import GRPCNIOTransportHTTP2
import SecretsStoreCore
import SecretsStoreCoreTesting
import SecretsStoreLinux
import SecretsStoreTesting
import SwiftProtobuf
import Testing

/// The built `secrets-store-csi-driver` binary, run as a process with upstream-style flags.
@Suite("The driver process", .serialized, .timeLimit(.minutes(3)))
struct DriverProcessTests {
    /// The executable SwiftPM built next to the test bundle.
    static var binary: String {
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for directory in [bundle, bundle.deletingLastPathComponent()] {
            let candidate = directory.appendingPathComponent("secrets-store-csi-driver").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return ".build/debug/secrets-store-csi-driver"
    }

    static func start(_ arguments: [String]) throws -> (Process, Pipe) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        let output = Pipe()
        process.standardError = output
        process.standardOutput = output
        try process.run()
        return (process, output)
    }

    static func waitForSocket(_ path: String) async throws {
        try await eventually("the socket at \(path)") { FileManager.default.fileExists(atPath: path) }
    }

    /// Writes a kubeconfig for `server` with the bearer `token` into `directory` and returns its path.
    static func kubeconfig(server: String, in directory: String, token: String = "driver-token") throws -> String {
        let path = directory + (token == "driver-token" ? "/kubeconfig" : "/kubeconfig-" + token)
        try """
        apiVersion: v1
        kind: Config
        current-context: test
        clusters: [{name: fake, cluster: {server: "\(server)"}}]
        users: [{name: driver, user: {token: \(token)}}]
        contexts: [{name: test, context: {cluster: fake, user: driver}}]
        """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test("Go-style flags, Probe over the socket, a second instance refused, SIGTERM stops it cleanly, concurrency on the event loops")
    func servesAndShutsDown() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let api = try await FakeKubernetesAPIServer(requiredToken: "driver-token")
            let socket = root + "/csi.sock"
            let registry = root + "/plugins_registry"
            let registrationSocket = registry + "/secrets-store.csi.k8s.io-reg.sock"
            mkdir(registry, 0o755)
            let arguments = [
                "-endpoint=unix://" + socket, "--nodeid=node-a", "-v=5", "--enable-secret-rotation=false",
                "--rotation-poll-interval=2m", "--provider-volume=" + root, "--kubeconfig=" + (try Self.kubeconfig(server: api.url, in: root)),
                "--log-format-json=true", "--metrics-addr=127.0.0.1:0", "--plugin-registration-dir=" + registry,
                "--kubelet-registration-path=/var/lib/kubelet/plugins/csi-secrets-store/csi.sock",
            ]
            let (process, output) = try Self.start(arguments)
            try await Self.waitForSocket(socket)
            try await Self.waitForSocket(registrationSocket)

            // The built-in registrar answers kubelet's GetInfo with the path kubelet dials.
            let info = try await withCSIClient(socketPath: registrationSocket) { client in
                try await Pluginregistration_Registration.Client(wrapping: client).getInfo(Pluginregistration_InfoRequest())
            }
            #expect(info.type == "CSIPlugin" && info.name == "secrets-store.csi.k8s.io")
            #expect(info.endpoint == "/var/lib/kubelet/plugins/csi-secrets-store/csi.sock")
            #expect(info.supportedVersions == ["1.0.0"])
            let registrationInode = Self.inode(registrationSocket)

            try await withCSIClient(socketPath: socket) { (client: GRPCClient<HTTP2ClientTransport.Posix>) async throws in
                let identity = Csi_V1_Identity.Client(wrapping: client)
                #expect(try await identity.probe(Csi_V1_ProbeRequest()).ready.value)
                let node = Csi_V1_Node.Client(wrapping: client)
                #expect(try await node.nodeGetInfo(Csi_V1_NodeGetInfoRequest()).nodeID == "node-a")
            }

            // /metrics and /healthz on the metrics listener (port from the log line).
            let (port, earlyLog) = try await Self.metricsPort(output)
            let metrics = try Self.httpGet("http://127.0.0.1:\(port)/metrics")
            #expect(metrics.status == 200)
            #expect(metrics.body.contains("node_unpublish_total{os_type=\"linux\"} 0"))
            let health = try Self.httpGet("http://127.0.0.1:\(port)/healthz")
            #expect(health.status == 200 && health.body == "ok")

            let (second, secondOutput) = try Self.start(arguments + ["--metrics-addr=127.0.0.1:0"])
            try await onOwnThread { second.waitUntilExit() }
            #expect(second.terminationStatus != 0)
            let secondText = String(decoding: secondOutput.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(secondText.contains("another driver instance"))
            #expect(FileManager.default.fileExists(atPath: socket))
            // The refused instance never bound (so never replaced) the running one's registration socket.
            #expect(Self.inode(registrationSocket) == registrationInode)

            // A second after recovery, with nothing in flight, the driver trims its heap and marks its code
            // pages cold (HeapTrimService, CodePages); once it logged the trim, it goes on serving.
            var log = earlyLog
            try await eventually("the heap trim's log line") {
                log += Self.availableOutput(output)
                return log.contains("returned freed memory")
            }
            try await withCSIClient(socketPath: socket) { (client: GRPCClient<HTTP2ClientTransport.Posix>) async throws in
                #expect(try await Csi_V1_Identity.Client(wrapping: client).probe(Csi_V1_ProbeRequest()).ready.value)
            }

            try await terminateAndWait(process)  // SIGTERM, bounded
            #expect(process.terminationReason == .exit)
            #expect(process.terminationStatus == 0)
            #expect(!FileManager.default.fileExists(atPath: socket))
            #expect(!FileManager.default.fileExists(atPath: registrationSocket), "kubelet learns the plugin is gone")
            log += Self.remainingOutput(output)
            #expect(log.contains("\"msg\":\"listening\""))
            #expect(log.contains("\"msg\":\"stopped\""))
            // Swift concurrency ran on the event loops (EventLoopConcurrency) for all of the above.
            #expect(log.contains("\"concurrency.executor\":\"event-loops\""))
            let trim = try #require(log.split(separator: "\n").first { $0.contains("returned freed memory") })
            #expect(!trim.contains("errno"))
            let coldKiB = try #require(Self.number(trim, "code.cold.kib"))
            #expect(coldKiB > 1024, "the executable's read-only mappings were advised")
            try await api.shutdown()
        }
    }

    @Test("--rotation-poll-interval=0 is refused with a message, as the controller refuses it", .timeLimit(.minutes(1)))
    func zeroRotationIntervalIsRefused() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let (process, output) = try Self.start([
                "--endpoint=unix://" + root + "/csi.sock", "--nodeid=node-a", "--enable-secret-rotation=true",
                "--rotation-poll-interval=0", "--metrics-addr=127.0.0.1:0",
            ])
            try await onOwnThread { process.waitUntilExit() }
            let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(process.terminationStatus != 0)
            #expect(text.contains("--rotation-poll-interval 0: not a positive duration"))
            #expect(!FileManager.default.fileExists(atPath: root + "/csi.sock"), "refused before serving")
        }
    }

    /// The inode of `path`, or `nil` when there is no such file.
    static func inode(_ path: String) -> UInt? {
        var status = stat()
        return stat(path, &status) == 0 ? UInt(status.st_ino) : nil
    }

    /// The number in a JSON log line's `"key":"123"`.
    static func number(_ line: Substring, _ key: String) -> Int? {
        guard let range = line.range(of: "\"\(key)\":\"") else { return nil }
        return Int(line[range.upperBound...].prefix { $0.isNumber })
    }

    /// What `output` holds now, without waiting for more (the read end is made non-blocking).
    static func availableOutput(_ output: Pipe) -> String {
        let descriptor = output.fileHandleForReading.fileDescriptor
        _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while case let count = read(descriptor, &buffer, buffer.count), count > 0 { bytes += buffer[0..<count] }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Everything `output` still holds, up to its end (the writer has exited), after ``availableOutput(_:)``.
    static func remainingOutput(_ output: Pipe) -> String {
        let descriptor = output.fileHandleForReading.fileDescriptor
        _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) & ~O_NONBLOCK)
        return String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    }

    /// Reads log lines until the metrics listener reports its address; returns the port and what was read. The
    /// reads do not block (a blocked cooperative thread can starve the in-process fakes the driver is waiting
    /// on); the pipe is left blocking again for the caller's later reads.
    static func metricsPort(_ output: Pipe) async throws -> (Int, String) {
        var seen = ""
        var port: Int?
        defer {
            let descriptor = output.fileHandleForReading.fileDescriptor
            _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) & ~O_NONBLOCK)
        }
        try await eventually("the metrics listener's address in the log") {
            seen += availableOutput(output)
            for line in seen.split(separator: "\n") where line.contains("metrics listening") {
                if let range = line.range(of: "\"metrics.address\":\""),
                    let end = line[range.upperBound...].firstIndex(of: "\""),
                    let found = Int(line[range.upperBound..<end].split(separator: ":").last ?? "")
                {
                    port = found
                }
            }
            return port != nil
        }
        guard let port else { throw CocoaError(.fileReadUnknown) }
        return (port, seen)
    }

    /// A plain HTTP/1.1 GET over a TCP socket (no client library needed for two lines of protocol).
    static func httpGet(_ url: String) throws -> (status: Int, body: String) {
        let parts = url.dropFirst("http://".count).split(separator: "/", maxSplits: 1)
        let hostPort = parts[0].split(separator: ":")
        let path = "/" + (parts.count > 1 ? parts[1] : "")
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(socket) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(hostPort[1])!).bigEndian
        inet_pton(AF_INET, String(hostPort[0]), &address.sin_addr)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw CocoaError(.fileReadNoPermission) }
        let request = "GET \(path) HTTP/1.1\r\nHost: \(parts[0])\r\nConnection: close\r\n\r\n"
        _ = request.withCString { send(socket, $0, strlen($0), 0) }
        var response = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = recv(socket, &buffer, buffer.count, 0)
            if count <= 0 { break }
            response += buffer[0..<count]
        }
        let text = String(decoding: response, as: UTF8.self)
        let status = Int(text.split(separator: " ").dropFirst().first ?? "") ?? 0
        let body = text.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n")
        return (status, body)
    }

    @Test func versionAndBadFlags() async throws {
        let (version, versionOutput) = try Self.start(["--version"])
        try await onOwnThread { version.waitUntilExit() }
        let text = String(decoding: versionOutput.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(version.terminationStatus == 0)
        #expect(text.contains("\"BuildVersion\""))

        let (bad, badOutput) = try Self.start(["--rotation-poll-interval=soon", "--kubeconfig=/nonexistent"])
        try await onOwnThread { bad.waitUntilExit() }
        #expect(bad.terminationStatus != 0)
        #expect(String(decoding: badOutput.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).contains("--rotation-poll-interval"))
    }

    /// How many times `path` appears as a mount point (a stacked mount would show twice).
    static func mountCount(_ path: String) throws -> Int {
        // A read of mountinfo while other suites mount and unmount can skip lines (the kernel hands out the table
        // in chunks), so one read may undercount: take the largest of a few.
        var largest = 0
        for _ in 0..<5 {
            // Read to the end with read(2) (as the driver does), not with a one-shot file read sized by st_size,
            // which is 0 for /proc files.
            let text = try PosixFileSystem.readText(at: "/proc/self/mountinfo")
            largest = max(largest, MountInfo.parse(text).filter { $0.mountPoint == path }.count)
        }
        return largest
    }

    @Test(
        "SIGKILL between mount and write, then a restart: kubelet's retry fills the volume once, or its unpublish removes it",
        .enabled(if: runningAsRoot, "needs real tmpfs mounts")
    )
    func killedBetweenMountAndWrite() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let api = try await FakeKubernetesAPIServer(requiredToken: "driver-token")
            api.seed(
                path: "/apis/secrets-store.csi.x-k8s.io/v1/namespaces/ns/secretproviderclasses",
                object: ["metadata": ["name": "spc", "namespace": "ns"], "spec": ["provider": "test", "parameters": ["a": "b"]]]
            )
            try FileManager.default.createDirectory(atPath: root + "/providers", withIntermediateDirectories: true)
            let provider = try await TestProviderServer(socketPath: root + "/providers/test.sock", behaviour: .hang)
            let socket = root + "/csi.sock"
            let arguments = [
                "-endpoint=unix://" + socket, "--nodeid=node-a", "-v=5", "--provider-volume=" + root + "/providers",
                "--kubeconfig=" + (try Self.kubeconfig(server: api.url, in: root)),
                // Not the default :8095: another suite's driver may hold it, and a listener that cannot bind stops the driver.
                "--metrics-addr=127.0.0.1:0",
            ]
            let target = root + "/pods/uid-1/volumes/kubernetes.io~csi/secrets/mount"
            let mounter = LinuxMounter()
            defer { try? mounter.unmountOnThisThread(target) }
            let request: Csi_V1_NodePublishVolumeRequest = {
                var request = Csi_V1_NodePublishVolumeRequest()
                request.volumeID = "csi-1"
                request.targetPath = target
                request.readonly = true
                request.volumeCapability.mount = .init()
                request.volumeContext = [
                    "secretProviderClass": "spc", "csi.storage.k8s.io/pod.name": "web-0",
                    "csi.storage.k8s.io/pod.namespace": "ns", "csi.storage.k8s.io/pod.uid": "uid-1",
                ]
                return request
            }()
            var unpublish = Csi_V1_NodeUnpublishVolumeRequest()
            unpublish.volumeID = "csi-1"
            unpublish.targetPath = target

            /// Starts the driver, publishes with the provider hanging, and kills the driver once the tmpfs is
            /// mounted and the provider has been asked (so nothing has been written yet).
            func killMidPublish() async throws {
                provider.setBehaviour(.hang)
                let before = provider.requests.count
                let (process, _) = try Self.start(arguments)
                try await Self.waitForSocket(socket)
                let call = Task {
                    try await withCSIClient(socketPath: socket) { (client: GRPCClient<HTTP2ClientTransport.Posix>) async throws in
                        _ = try await Csi_V1_Node.Client(wrapping: client).nodePublishVolume(request)
                    }
                }
                try await eventually("the provider asked") { provider.requests.count != before }
                #expect(provider.requests.count == before + 1)
                #expect(try Self.mountCount(target) == 1, "the tmpfs is mounted before the provider is asked")
                kill(process.processIdentifier, SIGKILL)
                try await onOwnThread { process.waitUntilExit() }
                #expect(process.terminationReason == .uncaughtSignal)
                _ = await call.result
                #expect(try FileManager.default.contentsOfDirectory(atPath: target).isEmpty, "killed before any write")
            }

            /// Restarts the driver (it takes over the stale socket) and runs `body` against it, then stops it.
            func restarted(_ body: (Csi_V1_Node.Client<HTTP2ClientTransport.Posix>) async throws -> Void) async throws {
                let (process, _) = try Self.start(arguments)
                do {
                    try await eventually("the restarted driver answering Probe") { (try? await probeCSI(socketPath: socket)) == true }
                    try await withCSIClient(socketPath: socket) { (client: GRPCClient<HTTP2ClientTransport.Posix>) async throws in
                        try await body(Csi_V1_Node.Client(wrapping: client))
                    }
                } catch {
                    try? await terminateAndWait(process)
                    throw error
                }
                try await terminateAndWait(process)  // SIGTERM, bounded, waited on a thread of its own
            }

            // The pod went away while the driver was down: kubelet unpublishes, and nothing is left.
            try await killMidPublish()
            try await restarted { node in
                _ = try await node.nodeUnpublishVolume(unpublish)
            }
            #expect(try Self.mountCount(target) == 0)
            #expect(!FileManager.default.fileExists(atPath: target))

            // The pod is still there: kubelet retries the publish, which fills the same tmpfs (no second mount).
            try await killMidPublish()
            provider.setBehaviour(.respond(TestProviderServer.response(files: [("username", "admin"), ("password", "pw")])))
            try await restarted { node in
                _ = try await node.nodePublishVolume(request)
                #expect(try Self.mountCount(target) == 1)
                #expect(try String(contentsOfFile: target + "/password", encoding: .utf8) == "pw")
                #expect(try FileManager.default.destinationOfSymbolicLink(atPath: target + "/..data").hasPrefix("..20"))
                _ = try await node.nodeUnpublishVolume(unpublish)
            }
            #expect(try Self.mountCount(target) == 0)
            provider.shutdown()
            try await api.shutdown()
        }
    }
}
