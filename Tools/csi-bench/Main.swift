import CSIProtocol
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import KeyVaultEmulator
import SecretsStoreAzure
import SecretsStoreCore
import SecretsStoreTesting
import SwiftProtobuf

#if canImport(Glibc)
import Glibc
#endif

/// The benchmark: the release `secrets-store-csi-driver` binary run as its own process with the built-in Azure
/// provider, against the Key Vault emulator (loopback HTTPS) and the fake Kubernetes API (loopback HTTP), both
/// hosted by this process; kubelet's side is played over the CSI Unix socket. Each figure is printed next to a
/// floor measured in the same run, and everything is written as JSON.
///
///     csi-bench [--iterations N] [--json PATH] [--driver PATH] [--only controller]   (run by scripts/bench.sh)
///     csi-bench --only burst --iterations ROUNDS [--driver PATH]   (the 100-publish burst, ROUNDS times)
///     csi-bench bare-server SOCKET                 (the floor server; started by the bench itself)
///     csi-bench upstream --work DIR …              (ours against upstream's driver + provider: scripts/bench-upstream.sh)
@main
struct Bench {
    static let tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"

    static func main() async throws {
        var arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.first == "bare-server", arguments.count == 2 {
            try await BareServer.run(socketPath: arguments[1])
            return
        }
        if arguments.first == "upstream" {
            do {
                try await UpstreamBench.run(arguments: Array(arguments.dropFirst()))
            } catch {
                print("upstream benchmark failed: \(error)")
                exit(1)
            }
            return
        }
        var iterations = 200
        var jsonPath = "benchmark-results.json"
        var driverPath: String?
        var only: String?
        while !arguments.isEmpty {
            let flag = arguments.removeFirst()
            guard let value = arguments.first else { break }
            arguments.removeFirst()
            switch flag {
            case "--iterations": iterations = Int(value) ?? iterations
            case "--json": jsonPath = value
            case "--driver": driverPath = value
            case "--only": only = value
            default: print("unknown flag \(flag)")
            }
        }
        let machine = Machine.facts
        print("machine: " + machine.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", "))
        let report = Report()
        print(Report.header())
        let root = "/tmp/csi-bench-\(getpid())"
        try FileManager.default.createDirectory(atPath: root + "/providers", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let bench = try await DriverBench(root: root, report: report, iterations: iterations, driverPath: driverPath)
        do {
            if only == nil || only == "node" { try await bench.run() }
            if only == "burst" { try await bench.runBursts(rounds: iterations) }
            if only == nil || only == "controller" { try await ControllerBench.run(bench: bench, samples: 50) }
        } catch {
            print("benchmark failed: \(error)")
            await bench.shutdown()
            throw error
        }
        await bench.shutdown()
        if only == nil { try await RotationBench.run(volumes: 110, objects: 10, root: root, report: report) }
        try report.write(json: jsonPath, machine: machine)
        print("wrote \(jsonPath)")
    }
}

/// Everything the driver process talks to, and the driver process itself.
final class DriverBench {
    let root: String
    let report: Report
    let iterations: Int
    let emulator: KeyVaultEmulator
    let api: FakeKubernetesAPIServer
    let floorHTTP: AzureHTTP
    let binDirectory: String
    let driverBinary: String
    private var podCounter = 0

    init(root: String, report: Report, iterations: Int, driverPath: String?) async throws {
        self.root = root
        self.report = report
        self.iterations = iterations
        var secrets: [String: [EmulatorSeed.SecretVersion]] = [:]
        for index in 0..<50 { secrets["s\(index)"] = [.init(value: String(repeating: "v", count: 48) + "-\(index)")] }
        emulator = try await KeyVaultEmulator(
            seed: EmulatorSeed(tenantID: Bench.tenant, clients: [.init(clientID: "sp", secret: "pw")], vaults: ["kv1": .init(secrets: secrets)])
        )
        api = try await FakeKubernetesAPIServer(requiredToken: "bench-token")
        for objects in [1, 10, 50] {
            let yaml = "array:\n" + (0..<objects).map { "  - |\n    objectName: s\($0)\n    objectType: secret\n" }.joined()
            api.seed(
                path: "/apis/secrets-store.csi.x-k8s.io/v1/namespaces/ns/secretproviderclasses",
                object: ["metadata": ["name": "obj\(objects)"], "spec": ["provider": AzureKeyVaultProvider.name, "parameters": ["keyvaultName": "kv1", "tenantId": Bench.tenant, "objects": yaml]]]
            )
        }
        try emulator.certificates.caCertificatePEM.write(toFile: root + "/ca.pem", atomically: true, encoding: .utf8)
        try """
        apiVersion: v1
        kind: Config
        current-context: bench
        clusters: [{name: fake, cluster: {server: "\(api.url)"}}]
        users: [{name: driver, user: {token: bench-token}}]
        contexts: [{name: bench, context: {cluster: fake, user: driver}}]
        """.write(toFile: root + "/kubeconfig", atomically: true, encoding: .utf8)
        floorHTTP = try AzureHTTP(extraCABundlePEM: Array(emulator.certificates.caCertificatePEM.utf8))
        binDirectory = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().path
        driverBinary = driverPath ?? binDirectory + "/secrets-store-csi-driver"
        print("driver under test: \(driverBinary)")
    }

    func shutdown() async {
        try? await floorHTTP.shutdown()
        try? await api.shutdown()
        try? await emulator.shutdown()
    }

    var socket: String { root + "/csi.sock" }

    var driverArguments: [String] {
        [
            "-endpoint=unix://" + socket, "--nodeid=bench-node", "--kubeconfig=" + root + "/kubeconfig",
            "--provider-volume=" + root + "/providers", "--metrics-addr=127.0.0.1:0",
            "--azure-keyvault-url-template=" + emulator.baseURL + "/{vault}", "--azure-authority-host=" + emulator.baseURL + "/",
            "--azure-ca-bundle=" + root + "/ca.pem",
        ]
    }

    // MARK: Processes

    /// Starts `executable`, waits for the first successful Probe on `socket`, and returns the process and the
    /// time from just before exec to that answer.
    func start(_ executable: String, _ arguments: [String], socket: String) async throws -> (Process, Duration) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        let log = root + "/\(URL(fileURLWithPath: executable).lastPathComponent).log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        let start = ContinuousClock.now
        try process.run()
        while true {
            if let ready = try? await probeCSI(socketPath: socket), ready { return (process, ContinuousClock.now - start) }
            guard process.isRunning else { throw FloorError(message: "\(executable) exited; see \(log)") }
            if ContinuousClock.now - start > .seconds(20) { throw FloorError(message: "no Probe answer within 20 s") }
            try await Task.sleep(for: .microseconds(500))
        }
    }

    func stop(_ process: Process) {
        process.terminate()
        process.waitUntilExit()
    }

    /// NodeGetCapabilities round trips per second from Python grpcio, or nil when grpcio is not installed.
    func grpcioRoundTrips(_ socket: String) -> Double? {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("scripts/grpc-roundtrips.py").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script, socket, "5"]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        guard (try? process.run()) != nil else { return nil }
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0,
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return nil }
        return object["per_second"] as? Double
    }

    // MARK: The run

    func run() async throws {
        let benchBinary = binDirectory + "/csi-bench"
        let bareSocket = root + "/bare.sock"

        // Start to first Probe, five starts each; the median is reported.
        var driverStarts = Samples()
        var bareStarts = Samples()
        for _ in 0..<5 {
            let (bare, bareTime) = try await start(benchBinary, ["bare-server", bareSocket], socket: bareSocket)
            bareStarts.add(bareTime)
            stop(bare)
            let (driver, driverTime) = try await start(driverBinary, driverArguments, socket: socket)
            driverStarts.add(driverTime)
            stop(driver)
        }
        let startMedian = driverStarts.percentile(0.5)
        report.add("start to first Probe (median of 5)", startMedian, floor: bareStarts.percentile(0.5), unit: "ms", target: "<= 50 ms", met: startMedian <= 50)

        // Idle memory and gRPC round trips, against the bare server as the floor.
        let (bare, _) = try await start(benchBinary, ["bare-server", bareSocket], socket: bareSocket)
        try await Task.sleep(for: .seconds(2))
        let bareFacts = ProcessFacts(pid: bare.processIdentifier)
        let bareIdle = bareFacts.residentMiB
        let bareAnonymous = bareFacts.anonymousMiB
        let bareFileBacked = bareFacts.fileBackedMiB
        let bareRoundTrips = grpcioRoundTrips(bareSocket)
        stop(bare)
        let (driver, _) = try await start(driverBinary, driverArguments, socket: socket)
        defer { if driver.isRunning { stop(driver) } }
        let facts = ProcessFacts(pid: driver.processIdentifier)
        try await Task.sleep(for: .seconds(2))
        let idle = facts.residentMiB
        report.add("RSS idle", idle, floor: bareIdle, unit: "MiB", target: "<= 20 MiB", met: idle <= 20)
        report.add("  of which anonymous (heap, stacks)", facts.anonymousMiB, floor: bareAnonymous, unit: "MiB")
        report.add("  of which file-backed (binary, libraries)", facts.fileBackedMiB, floor: bareFileBacked, unit: "MiB")
        var binaryInfo = stat()
        if stat(driverBinary, &binaryInfo) == 0 {
            report.add("driver binary size", Double(binaryInfo.st_size) / 1_000_000, unit: "MB", target: "reported; smaller is better")
        }
        let breakdown = facts.residentBreakdown()
        report.notes["idle_breakdown_kib"] = Dictionary(uniqueKeysWithValues: breakdown)
        report.notes["idle_threads"] = facts.threads
        for (kind, kib) in breakdown { print("    idle resident \(kind): \(kib) KiB") }
        if let ours = grpcioRoundTrips(socket) {
            report.add("NodeGetCapabilities round trips/s (grpcio)", ours, floor: bareRoundTrips, unit: "calls/s")
        } else {
            print("    grpcio not installed: pip install grpcio to measure round trips")
        }

        try await withCSIClient(socketPath: socket) { (client: GRPCClient<HTTP2ClientTransport.Posix>) async throws in
            let node = Csi_V1_Node.Client(wrapping: client)
            try await publishLatency(node, facts: facts)
            try await quietPublishes(node)
            try await concurrentPublishes(node)
            try await manyVolumes(node, facts: facts)
            try await cycles(node, facts: facts)
        }
        stop(driver)
    }

    // MARK: Phases

    func request(objects: Int, target: String) -> Csi_V1_NodePublishVolumeRequest {
        podCounter += 1
        var request = Csi_V1_NodePublishVolumeRequest()
        request.volumeID = "csi-\(podCounter)"
        request.targetPath = target
        request.readonly = true
        request.volumeCapability.mount = .init()
        request.volumeContext = [
            VolumeContextKey.secretProviderClass: "obj\(objects)", VolumeContextKey.podName: "pod-\(podCounter)",
            VolumeContextKey.podNamespace: "ns", VolumeContextKey.podUID: "uid-\(podCounter)",
            VolumeContextKey.serviceAccountName: "default",
        ]
        request.secrets = ["clientid": "sp", "clientsecret": "pw"]
        return request
    }

    func unpublish(_ node: Csi_V1_Node.Client<HTTP2ClientTransport.Posix>, _ target: String) async throws {
        var request = Csi_V1_NodeUnpublishVolumeRequest()
        request.volumeID = "v"
        request.targetPath = target
        _ = try await node.nodeUnpublishVolume(request)
    }

    func target(_ name: String) -> String { root + "/pods/\(name)/volumes/kubernetes.io~csi/secrets/mount" }

    func publishLatency(_ node: Csi_V1_Node.Client<HTTP2ClientTransport.Posix>, facts: ProcessFacts) async throws {
        let floor = try await PublishFloor.make(http: floorHTTP, emulatorURL: emulator.baseURL, tenant: Bench.tenant, clientID: "sp", secret: "pw")
        let root = getuid() == 0
        for objects in [1, 10, 50] {
            var ours = Samples()
            var floors = Samples()
            var cpuAtStart = facts.cpuSeconds
            for index in 0..<(iterations + 10) {
                if index == 10 { cpuAtStart = facts.cpuSeconds }
                let path = target("lat-\(index % 4)")
                let request = request(objects: objects, target: path)
                let elapsed = try await measure { _ = try await node.nodePublishVolume(request) }
                try await unpublish(node, path)

                let floorPath = self.root + "/floor/\(index % 4)"
                try FileManager.default.createDirectory(atPath: floorPath, withIntermediateDirectories: true)
                let floorElapsed = try await measure {
                    let bodies = try await floor.fetch(objects: objects)
                    try PublishFloor.write(bodies, into: floorPath, mount: root, generation: index)
                }
                PublishFloor.clean(floorPath, mounted: root, files: objects, generation: index)
                if index >= 10 {
                    ours.add(elapsed)
                    floors.add(floorElapsed)
                }
            }
            for (label, p, slack) in [("p50", 0.5, 1.5), ("p90", 0.9, Double.nan), ("p99", 0.99, 5.0)] {
                let value = ours.percentile(p)
                let floorValue = floors.percentile(p)
                let target = slack.isNaN ? "" : "floor + \(Report.format(slack)) ms"
                report.add(
                    "publish \(objects) object\(objects == 1 ? "" : "s") \(label)", value, floor: floorValue, unit: "ms",
                    target: target, met: slack.isNaN ? nil : value <= floorValue + slack
                )
            }
            // Profile: the driver's own CPU time (user + system, from /proc) per publish and its unpublish,
            // background pod status write included; the rest of the latency is waiting (the emulator, the scheduler).
            let driverCPU = facts.cpuSeconds - cpuAtStart
            report.add("  driver CPU per publish + unpublish", driverCPU * 1000 / Double(iterations), unit: "ms")
        }
    }

    /// A publish after the driver was quiet long enough to trim its heap, against one right after it: what
    /// coming back from a trim costs.
    func quietPublishes(_ node: Csi_V1_Node.Client<HTTP2ClientTransport.Posix>) async throws {
        var quiet = Samples()
        var warm = Samples()
        for round in 0..<8 {
            try await Task.sleep(for: .milliseconds(1500))
            let path = target("quiet-\(round)")
            let first = request(objects: 10, target: path)
            quiet.add(try await measure { _ = try await node.nodePublishVolume(first) })
            try await unpublish(node, path)
            let second = request(objects: 10, target: path)
            warm.add(try await measure { _ = try await node.nodePublishVolume(second) })
            try await unpublish(node, path)
        }
        report.add("publish 10 objects after 1.5 s quiet, p50", quiet.percentile(0.5), floor: warm.percentile(0.5), unit: "ms", target: "profile")
        report.add("publish 10 objects after 1.5 s quiet, max", quiet.percentile(1), floor: warm.percentile(1), unit: "ms")
    }

    func concurrentPublishes(_ node: Csi_V1_Node.Client<HTTP2ClientTransport.Posix>) async throws {
        let samples = try await burst(node, name: "conc")
        let succeeded = samples.milliseconds.count
        report.add("100 concurrent publishes (10 objects): succeeded", Double(succeeded), unit: "of 100", target: "100", met: succeeded == 100)
        let p99 = samples.percentile(0.99)
        report.add("100 concurrent publishes: p99", p99, unit: "ms", target: "<= 150 ms", met: p99 <= 150)
    }

    /// 100 publishes of 10 objects at once, each for a pod of its own, then their unpublishes one by one; the
    /// latencies of those that succeeded.
    func burst(_ node: Csi_V1_Node.Client<HTTP2ClientTransport.Posix>, name: String) async throws -> Samples {
        let requests = (0..<100).map { request(objects: 10, target: target("\(name)-\($0)")) }
        let results = await withTaskGroup(of: Duration?.self) { group in
            for request in requests {
                group.addTask {
                    let start = ContinuousClock.now
                    do {
                        _ = try await node.nodePublishVolume(request)
                        return ContinuousClock.now - start
                    } catch {
                        print("    concurrent publish failed: \(error)")
                        return nil
                    }
                }
            }
            var results: [Duration?] = []
            for await result in group { results.append(result) }
            return results
        }
        var samples = Samples()
        for case let duration? in results { samples.add(duration) }
        for request in requests { try await unpublish(node, request.targetPath) }
        return samples
    }

    /// `--only burst`: the 100-publish burst `rounds` times on one driver, 2 s apart, to compare two builds on
    /// the figure that moves most between runs: the median and the spread of the rounds' p99, and the driver's
    /// CPU per burst (its publishes and unpublishes).
    func runBursts(rounds: Int) async throws {
        let (driver, _) = try await start(driverBinary, driverArguments, socket: socket)
        defer { if driver.isRunning { stop(driver) } }
        let facts = ProcessFacts(pid: driver.processIdentifier)
        try await withCSIClient(socketPath: socket) { (client: GRPCClient<HTTP2ClientTransport.Posix>) async throws in
            let node = Csi_V1_Node.Client(wrapping: client)
            _ = try await burst(node, name: "warm")
            var p99s = Samples()
            var cpu = Samples()
            var succeeded = 0
            for round in 0..<rounds {
                try await Task.sleep(for: .seconds(2))
                let cpuAtStart = facts.cpuSeconds
                let samples = try await burst(node, name: "round-\(round)")
                cpu.add(milliseconds: (facts.cpuSeconds - cpuAtStart) * 1000)
                let p99 = samples.percentile(0.99)
                p99s.add(milliseconds: p99)
                succeeded += samples.milliseconds.count
                print("    round \(round): \(samples.milliseconds.count) of 100, p99 \(Report.format(p99)) ms")
            }
            report.add("100 concurrent publishes: succeeded, all rounds", Double(succeeded), unit: "of \(rounds * 100)", target: "all", met: succeeded == rounds * 100)
            let median = p99s.percentile(0.5)
            report.add("100 concurrent publishes: p99, median of \(rounds) rounds", median, unit: "ms", target: "<= 150 ms", met: median <= 150)
            report.add("100 concurrent publishes: p99, lowest round", p99s.percentile(0), unit: "ms")
            report.add("100 concurrent publishes: p99, highest round", p99s.percentile(1), unit: "ms")
            report.add("  driver CPU per burst (median)", cpu.percentile(0.5), unit: "ms")
        }
        stop(driver)
    }

    func manyVolumes(_ node: Csi_V1_Node.Client<HTTP2ClientTransport.Posix>, facts: ProcessFacts) async throws {
        var targets: [String] = []
        for index in 0..<110 {
            let path = target("full-\(index)")
            _ = try await node.nodePublishVolume(request(objects: 10, target: path))
            targets.append(path)
        }
        // Settled: the driver hands freed heap memory back within a second of the last operation (HeapTrimService).
        try await Task.sleep(for: .seconds(3))
        let rss = facts.residentMiB
        report.add("RSS with 110 volumes of 10 objects", rss, unit: "MiB", target: "<= 25 MiB", met: rss <= 25)
        report.add("  of which anonymous (heap, stacks)", facts.anonymousMiB, unit: "MiB")
        report.add("  of which file-backed (binary, libraries)", facts.fileBackedMiB, unit: "MiB")
        for path in targets { try await unpublish(node, path) }
    }

    func cycles(_ node: Csi_V1_Node.Client<HTTP2ClientTransport.Posix>, facts: ProcessFacts) async throws {
        var trace: [[String: Double]] = []
        let mountsBefore = mountCount(under: root + "/pods")
        for cycle in 1...1000 {
            let path = target("cycle-\(cycle % 4)")
            _ = try await node.nodePublishVolume(request(objects: 10, target: path))
            try await unpublish(node, path)
            if cycle % 100 == 0 {
                trace.append([
                    "cycle": Double(cycle), "rss_mib": facts.residentMiB, "fds": Double(facts.openFileDescriptors),
                    "mounts": Double(mountCount(under: root + "/pods")), "threads": Double(facts.threads),
                ])
            }
        }
        report.notes["cycles_trace"] = trace
        let first = trace.first!
        let last = trace.last!
        print("    every 100 cycles: RSS MiB \(trace.map { Report.format($0["rss_mib"]!) }.joined(separator: " ")); fds \(trace.map { Int($0["fds"]!) }); mounts \(trace.map { Int($0["mounts"]!) })")
        let growth = last["rss_mib"]! - first["rss_mib"]!
        report.add("RSS after 1000 publish/unpublish cycles", last["rss_mib"]!, unit: "MiB", target: "flat")
        report.add("RSS growth, cycle 100 to 1000", growth, unit: "MiB", target: "flat (< 1 MiB)", met: growth < 1)
        report.add("open fds growth, cycle 100 to 1000", last["fds"]! - first["fds"]!, unit: "fds", target: "0", met: last["fds"]! == first["fds"]!)
        report.add("mounts left after 1000 cycles", last["mounts"]! - Double(mountsBefore), unit: "mounts", target: "0", met: last["mounts"]! == Double(mountsBefore))
    }
}
