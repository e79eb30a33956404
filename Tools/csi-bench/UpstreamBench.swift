import CSIProtocol
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import KeyVaultEmulator
import SecretsStoreCore
import SecretsStoreTesting

#if canImport(Glibc)
import Glibc
#endif

/// `csi-bench upstream …` (run by `scripts/bench-upstream.sh`, which starts the API server, applies the CRDs and
/// the SecretProviderClass, makes the service account token and the /etc/hosts entries): our driver with its
/// built-in provider against upstream's node plugin + Azure provider, alternating, each side in its own memory
/// cgroup (v1), page cache dropped before each side starts. This process hosts the Key Vault emulator on
/// 127.0.0.1:443 with a server certificate for the hosts upstream's provider reaches (login.microsoftonline.com,
/// kv1.vault.azure.net), and plays kubelet over each side's CSI socket: the same volume context (workload
/// identity token included) and the same calls for both.
///
/// Every figure is printed for ours, theirs and the ratio ours/theirs: the median over the rounds of each side.
enum UpstreamBench {
    struct Options {
        var work = ""
        var volumes = 20
        var rounds = 2
        var ours = ""
        var theirsDriver = ""
        var theirsProvider = ""
        var tenant = ""
        var json = "benchmarks/upstream.json"
        /// Publish + unpublish cycles of the 10-object class after the other phases, before the last memory figures.
        var cycles = 1000
    }

    static func run(arguments: [String]) async throws {
        var options = Options()
        var rest = arguments
        while rest.count >= 2 {
            let flag = rest.removeFirst()
            let value = rest.removeFirst()
            switch flag {
            case "--work": options.work = value
            case "--volumes": options.volumes = Int(value) ?? options.volumes
            case "--rounds": options.rounds = Int(value) ?? options.rounds
            case "--ours": options.ours = value
            case "--theirs-driver": options.theirsDriver = value
            case "--theirs-provider": options.theirsProvider = value
            case "--tenant": options.tenant = value
            case "--json": options.json = value
            case "--cycles": options.cycles = Int(value) ?? options.cycles
            default: throw FloorError(message: "unknown flag \(flag)")
            }
        }
        let work = options.work
        var secrets: [String: [EmulatorSeed.SecretVersion]] = [:]
        for index in 0..<49 { secrets["s\(index)"] = [.init(value: String(repeating: "v", count: 48) + "-\(index)")] }
        let pfx = try Data(contentsOf: URL(fileURLWithPath: work + "/web.pfx")).base64EncodedString()
        let seed = EmulatorSeed(
            tenantID: options.tenant,
            clients: [.init(clientID: "wi-app", federated: [.init(subject: "system:serviceaccount:bench:app", audience: "api://AzureADTokenExchange")])],
            vaults: ["kv1": .init(secrets: secrets, certificates: ["web": [.init(pkcs12: pfx)]])],
            issuers: [.init(issuer: "https://kubernetes.default.svc", publicKeyFile: work + "/sa.pub")]
        )
        let certificates = try EmulatorCertificates.generate(hostNames: ["localhost", "login.microsoftonline.com", "kv1.vault.azure.net"])
        let emulator = try await KeyVaultEmulator(seed: seed, port: 443, certificates: certificates)
        try certificates.caCertificatePEM.write(toFile: work + "/ca.pem", atomically: true, encoding: .utf8)
        let token = try String(contentsOfFile: work + "/sa-token", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let bench = SideBySide(options: options, emulator: emulator, token: token)
        do {
            try await bench.run()
        } catch {
            try? await emulator.shutdown()
            throw error
        }
        try await emulator.shutdown()
    }
}

/// One side's processes, started in a memory cgroup of their own.
struct Side {
    var name: String
    /// (executable, arguments, environment additions, socket to wait for)
    var processes: [(String, [String], [String: String], String)]
    var socket: String
    var root: String
}

/// A cgroup v1 memory group for one side's processes.
struct MemoryGroup {
    let path: String

    init(name: String) throws {
        path = "/sys/fs/cgroup/memory/" + name
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
    }

    func read(_ file: String) -> String { readProc(path + "/" + file) ?? "" }

    /// `memory.usage_in_bytes − total_inactive_file`, as the kubelet and `kubectl top` report a container's
    /// working set on cgroup v1.
    var workingSetMiB: Double {
        let usage = Double(read("memory.usage_in_bytes").trimmingCharacters(in: .whitespacesAndNewlines)) ?? .nan
        return (usage - stat("total_inactive_file")) / 1_048_576
    }

    /// The `memory.stat` keys printed beside each working-set figure (hierarchical totals, in bytes): anonymous
    /// memory, the file pages on the active and the inactive list (the working set counts the active ones), and
    /// the file pages mapped into the processes. The figure names use the part after `total_`, with `rss` as `anon`.
    static let breakdownKeys: [(key: String, figure: String)] = [
        ("total_rss", "anon"), ("total_active_file", "active_file"), ("total_inactive_file", "inactive_file"),
        ("total_mapped_file", "mapped_file"),
    ]

    func stat(_ key: String) -> Double {
        for line in read("memory.stat").split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2, parts[0] == key { return Double(parts[1]) ?? .nan }
        }
        return .nan
    }

    var pids: [Int32] { read("cgroup.procs").split(separator: "\n").compactMap { Int32($0) } }

    /// Removes the group once its processes have gone (rmdir fails while any remain).
    func remove() {
        for _ in 0..<100 {
            if rmdir(path) == 0 || errno == ENOENT { return }
            usleep(50_000)
        }
        print("    could not remove \(path): errno \(errno)")
    }
}

/// Figures of one side in one round.
struct SideFigures {
    var values: [String: Double] = [:]
}

final class SideBySide {
    let options: UpstreamBench.Options
    let emulator: KeyVaultEmulator
    let token: String
    /// Figures per side, one entry per round.
    var results: [String: [SideFigures]] = ["ours": [], "theirs": []]
    var fileListings: [String: [String]] = [:]
    /// The emulator's requests during the first round's publishes, by `METHOD path`, per side.
    var requestsByPath: [String: [String: Int]] = [:]
    /// The emulator's requests over the first round's rotation cycle, by `METHOD path`, per side.
    var rotationRequestsByPath: [String: [String: Int]] = [:]
    /// Publishes answered Aborted and retried (sequential publishes only), since the last reset.
    var abortedRetries = 0

    init(options: UpstreamBench.Options, emulator: KeyVaultEmulator, token: String) {
        self.options = options
        self.emulator = emulator
        self.token = token
    }

    var work: String { options.work }

    /// The rotation phase's poll interval, passed to both drivers as `--rotation-poll-interval`.
    static let rotationPollSeconds = 5

    /// `rotation`: both drivers with `--enable-secret-rotation --rotation-poll-interval=5s` (the same flag names
    /// on both sides).
    func side(_ name: String, rotation: Bool = false) -> Side {
        let rotationFlags = rotation ? ["--enable-secret-rotation=true", "--rotation-poll-interval=\(Self.rotationPollSeconds)s"] : []
        let root = work + "/" + name
        let socket = root + "/csi.sock"
        let kubeconfig = work + "/kubeconfig"
        if name == "ours" {
            return Side(
                name: name,
                processes: [(
                    options.ours,
                    [
                        "-endpoint=unix://" + socket, "--nodeid=bench-node", "--kubeconfig=" + kubeconfig,
                        "--provider-volume=" + root + "/providers", "--metrics-addr=127.0.0.1:0", "--azure-ca-bundle=" + work + "/ca.pem",
                    ] + rotationFlags,
                    [:], socket
                )],
                socket: socket, root: root
            )
        }
        let goEnvironment = ["SSL_CERT_FILE": work + "/ca.pem", "KUBE_FEATURE_WatchListClient": "false"]
        let providerSocket = root + "/providers/azure.sock"
        return Side(
            name: name,
            processes: [
                (
                    options.theirsProvider,
                    ["--endpoint", "unix://" + providerSocket, "--healthz-port", "0", "--metrics-backend", "prometheus", "--prometheus-port", "0", "--construct-pem-chain"],
                    goEnvironment, providerSocket
                ),
                (
                    options.theirsDriver,
                    ["--endpoint", "unix://" + socket, "--nodeid", "bench-node", "--provider-volume", root + "/providers", "--kubeconfig", kubeconfig, "--metrics-addr", "127.0.0.1:0"] + rotationFlags,
                    goEnvironment, socket
                ),
            ],
            socket: socket, root: root
        )
    }

    /// Stops `processes`, the last started first: SIGTERM, then SIGKILL for one still running after 10 s.
    static func stop(_ processes: [Process]) {
        for process in processes.reversed() where process.isRunning {
            process.terminate()
            let deadline = ContinuousClock.now + .seconds(10)
            while process.isRunning, ContinuousClock.now < deadline { usleep(20_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }
    }

    func run() async throws {
        print("upstream side by side: \(options.volumes) volumes of 10 objects (9 secrets, 1 PFX certificate), then as many of 1 and of 50 (49 secrets, the PFX), workload identity, \(options.rounds) rounds a side, alternating; then \(options.cycles) publish + unpublish cycles, \(Self.cycleConcurrency) at a time")
        for round in 0..<options.rounds {
            for name in ["ours", "theirs"] {
                var figures = try await measureSide(side(name), round: round)
                figures.values.merge(try await measureRotation(side(name, rotation: true), round: round).values) { $1 }
                results[name, default: []].append(figures)
                print("  round \(round + 1) \(name): " + figures.values.sorted { $0.key < $1.key }.map { "\($0.key)=\(Report.format($0.value))" }.joined(separator: " "))
            }
        }
        printTable()
    }

    static let figureOrder: [(String, String)] = [
        ("pod_statuses_deleted_before_start", "obj"), ("start_to_probe_ms", "ms"), ("working_set_idle_mib", "MiB"), ("rss_idle_mib", "MiB"),
        ("anon_idle_mib", "MiB"), ("active_file_idle_mib", "MiB"), ("inactive_file_idle_mib", "MiB"), ("mapped_file_idle_mib", "MiB"),
        ("working_set_mounted_mib", "MiB"), ("rss_mounted_mib", "MiB"),
        ("anon_mounted_mib", "MiB"), ("active_file_mounted_mib", "MiB"), ("inactive_file_mounted_mib", "MiB"), ("mapped_file_mounted_mib", "MiB"),
        ("cache_mounted_mib", "MiB"), ("shmem_mounted_mib", "MiB"), ("working_set_after_unpublish_mib", "MiB"), ("rss_after_unpublish_mib", "MiB"),
        ("publish_p50_ms", "ms"), ("publish_p99_ms", "ms"), ("first_publish_ms", "ms"), ("cpu_per_publish_unpublish_ms", "ms"),
        ("keyvault_requests_per_publish", "req"), ("token_requests_per_publish", "req"),
        ("class_1_publish_p50_ms", "ms"), ("class_1_publish_p99_ms", "ms"), ("class_10_publish_p50_ms", "ms"), ("class_10_publish_p99_ms", "ms"),
        ("class_50_publish_p50_ms", "ms"), ("class_50_publish_p99_ms", "ms"), ("class_50_keyvault_requests_per_publish", "req"), ("class_50_files_first_volume", "files"),
        ("burst_100_publish_p50_ms", "ms"), ("burst_100_publish_p99_ms", "ms"), ("burst_100_cpu_per_publish_unpublish_ms", "ms"), ("burst_100_keyvault_requests", "req"),
        ("rotation_volumes_updated_by_own_loop", "vol"), ("rotation_keyvault_requests_own_loop", "req"), ("rotation_keyvault_requests_republish", "req"), ("rotation_republish_aborted_retries", "req"),
        ("rotation_keyvault_requests_per_cycle", "req"), ("rotation_token_requests_per_cycle", "req"), ("rotation_entra_other_requests_per_cycle", "req"),
        ("rotation_volumes_with_new_value", "vol"),
        ("cycles_seconds", "s"), ("cycles_cpu_per_cycle_ms", "ms"), ("cycles_publish_p50_ms", "ms"), ("cycles_publish_p99_ms", "ms"),
        ("cycles_aborted_retries", "req"),
        ("working_set_after_cycles_mib", "MiB"), ("rss_after_cycles_mib", "MiB"),
        ("anon_after_cycles_mib", "MiB"), ("active_file_after_cycles_mib", "MiB"), ("inactive_file_after_cycles_mib", "MiB"),
        ("mapped_file_after_cycles_mib", "MiB"),
    ]

    /// A figure for JSON: null where it is not a number (a ratio 0/0), which JSONSerialization refuses.
    static func jsonNumber(_ value: Double) -> Any { value.isFinite ? value : NSNull() }

    /// The median over the rounds.
    func median(_ name: String, _ key: String) -> Double {
        Self.median(of: (results[name] ?? []).compactMap { $0.values[key] })
    }

    /// The median (the mean of the middle two for an even count); not a number for none.
    static func median(of values: [Double]) -> Double {
        let values = values.sorted()
        guard !values.isEmpty else { return .nan }
        let middle = values.count / 2
        return values.count % 2 == 1 ? values[middle] : (values[middle - 1] + values[middle]) / 2
    }

    /// Memory samples per memory figure, and the pause between two.
    static let memorySamples = 3
    static let memorySampleInterval: Duration = .seconds(2)

    /// Records `working_set_<point>_mib` and `rss_<point>_mib` and, with `breakdown`, the
    /// ``MemoryGroup/breakdownKeys`` as `<figure>_<point>_mib` (e.g. `anon_idle_mib`): each the median of
    /// ``memorySamples`` samples ``memorySampleInterval`` apart, the first taken at once.
    func recordMemory(
        _ point: String,
        group: MemoryGroup,
        rss: () -> Double,
        breakdown: Bool,
        into figures: inout SideFigures
    ) async throws {
        var samples: [String: [Double]] = [:]
        for sample in 0..<Self.memorySamples {
            if sample > 0 { try await Task.sleep(for: Self.memorySampleInterval) }
            samples["working_set_\(point)_mib", default: []].append(group.workingSetMiB)
            samples["rss_\(point)_mib", default: []].append(rss())
            if breakdown {
                for (key, figure) in MemoryGroup.breakdownKeys {
                    samples["\(figure)_\(point)_mib", default: []].append(group.stat(key) / 1_048_576)
                }
            }
        }
        for (key, values) in samples { figures.values[key] = Self.median(of: values) }
    }

    /// Publish + unpublish cycles running at once, and cycles per CSI connection (upstream's driver closed the
    /// stream of about the 200th call on one connection).
    static let cycleConcurrency = 8
    static let cyclesPerConnection = 40

    /// `count` publish + unpublish cycles of the 10-object class, ``cycleConcurrency`` at a time: each a new
    /// pod's volume (pod names `pod-10000` on), published, then unpublished, as pods come and go on a busy node.
    /// A publish answered Aborted is retried every 100 ms, as kubelet retries. Returns the publishes' latencies
    /// and the retries.
    func cycle(_ side: Side, count: Int) async throws -> (latencies: Samples, abortedRetries: Int) {
        let concurrency = Self.cycleConcurrency
        let perConnection = Self.cyclesPerConnection
        let socket = side.socket
        let requests = (0..<count).map { request(side, index: 10_000 + $0) }
        return try await withThrowingTaskGroup(of: (Samples, Int).self) { group in
            for lane in 0..<min(concurrency, count) {
                let laneRequests = Array(stride(from: lane, to: count, by: concurrency).map { requests[$0] })
                group.addTask {
                    var latencies = Samples()
                    var retries = 0
                    var next = 0
                    while next < laneRequests.count {
                        let chunk = laneRequests[next..<min(next + perConnection, laneRequests.count)]
                        next += chunk.count
                        (latencies, retries) = try await withCSIClient(socketPath: socket) {
                            (client: GRPCClient<HTTP2ClientTransport.Posix>) async throws -> (Samples, Int) in
                            let node = Csi_V1_Node.Client(wrapping: client)
                            var latencies = latencies
                            var retries = retries
                            for request in chunk {
                                var attempts = 0
                                while true {
                                    do {
                                        latencies.add(try await measure { _ = try await node.nodePublishVolume(request) })
                                        break
                                    } catch let error as RPCError where error.code == .aborted && attempts < 100 {
                                        attempts += 1
                                        retries += 1
                                        try await Task.sleep(for: .milliseconds(100))
                                    }
                                }
                                var unpublish = Csi_V1_NodeUnpublishVolumeRequest()
                                unpublish.volumeID = request.volumeID
                                unpublish.targetPath = request.targetPath
                                _ = try await node.nodeUnpublishVolume(unpublish)
                            }
                            return (latencies, retries)
                        }
                    }
                    return (latencies, retries)
                }
            }
            var latencies = Samples()
            var retries = 0
            for try await (lane, laneRetries) in group {
                for value in lane.milliseconds { latencies.add(milliseconds: value) }
                retries += laneRetries
            }
            return (latencies, retries)
        }
    }

    func printTable() {
        print("")
        print(Report.pad("figure (median of \(options.rounds) rounds)", 50) + Report.pad("ours", 12) + Report.pad("theirs", 12) + "ours/theirs")
        var rows: [[String: Any]] = []
        for (key, unit) in Self.figureOrder {
            let ours = median("ours", key)
            let theirs = median("theirs", key)
            let ratio = theirs == 0 ? Double.nan : ours / theirs
            print(Report.pad("\(key) (\(unit))", 50) + Report.pad(Report.format(ours), 12) + Report.pad(Report.format(theirs), 12) + Report.format(ratio))
            rows.append(["figure": key, "unit": unit, "ours": Self.jsonNumber(ours), "theirs": Self.jsonNumber(theirs), "ratio": Self.jsonNumber(ratio)])
        }
        for (name, files) in fileListings.sorted(by: { $0.key < $1.key }) {
            print("  \(name)'s first volume: \(files.joined(separator: ", "))")
        }
        for (name, counts) in requestsByPath.sorted(by: { $0.key < $1.key }) {
            let perPublish = counts.sorted { $0.key < $1.key }.map { "\($0.key) \(Report.format(Double($0.value) / Double(options.volumes)))" }
            print("  \(name)'s emulator requests per publish (round 1): \(perPublish.joined(separator: "; "))")
        }
        for (name, counts) in rotationRequestsByPath.sorted(by: { $0.key < $1.key }) {
            let all = counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
            print("  \(name)'s emulator requests over the rotation cycle of \(options.volumes) volumes (round 1): \(all.joined(separator: "; "))")
        }
        let same = fileListings["ours"] != nil && fileListings["ours"] == fileListings["theirs"]
        print("  same file names, sizes and contents on both sides: \(same ? "yes" : "NO")")
        let document: [String: Any] = [
            "volumes": options.volumes, "rounds": options.rounds, "cycles": options.cycles, "cycle_concurrency": Self.cycleConcurrency, "objects_per_volume": 10, "classes": ["wi1": 1, "wi10": 10, "wi50": 50], "machine": Machine.facts, "rows": rows,
            "rounds_raw": results.mapValues { $0.map { $0.values.mapValues(Self.jsonNumber) } }, "first_volume_files": fileListings, "same_files_both_sides": same, "requests_by_path_round1": requestsByPath, "rotation_requests_by_path_round1": rotationRequestsByPath, "rotation_poll_interval_s": Self.rotationPollSeconds,
        ]
        if let data = try? JSONSerialization.data(withJSONObject: document, options: [.prettyPrinted, .sortedKeys]) {
            _ = FileManager.default.createFile(atPath: options.json, contents: data)
            print("wrote \(options.json)")
        } else {
            print("could not encode the JSON document; \(options.json) not written")
        }
    }

    /// The other classes the script applies, published after the 10-object one's figures are taken: name, objects.
    static let otherClasses: [(String, Int)] = [("wi1", 1), ("wi50", 50)]

    func request(_ side: Side, index: Int, className: String = "wi10") -> Csi_V1_NodePublishVolumeRequest {
        let uid = UUID().uuidString.lowercased()
        let target = side.root + "/pods/\(uid)/volumes/kubernetes.io~csi/secrets-store-inline/mount"
        try? FileManager.default.createDirectory(atPath: side.root + "/pods/\(uid)/volumes/kubernetes.io~csi/secrets-store-inline", withIntermediateDirectories: true)
        let expiry = ISO8601DateFormatter().string(from: Date().addingTimeInterval(3600))
        var request = Csi_V1_NodePublishVolumeRequest()
        request.volumeID = "csi-\(uid)"
        request.targetPath = target
        request.readonly = true
        request.volumeCapability.mount = .init()
        request.volumeContext = [
            VolumeContextKey.secretProviderClass: className, VolumeContextKey.podName: "pod-\(index)",
            VolumeContextKey.podNamespace: "bench", VolumeContextKey.podUID: uid,
            VolumeContextKey.serviceAccountName: "app", VolumeContextKey.ephemeral: "true",
            VolumeContextKey.serviceAccountTokens: "{\"api://AzureADTokenExchange\":{\"token\":\"\(token)\",\"expirationTimestamp\":\"\(expiry)\"}}",
        ]
        return request
    }

    /// Starts `side`'s processes in `group`, each once the one before has made its socket; returns once the last
    /// answers Probe (30 s at most).
    func startProcesses(_ side: Side, group: MemoryGroup, label: String, into processes: inout [Process]) async throws {
        let start = ContinuousClock.now
        for (index, (executable, arguments, environment, socket)) in side.processes.enumerated() {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            // The shell joins the group, then becomes the program: every page it touches is charged there.
            process.arguments = ["-c", "echo $$ > \"$0/cgroup.procs\" && exec \"$@\"", group.path, executable] + arguments
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
            let log = work + "/\(label)-\(index).log"
            _ = FileManager.default.createFile(atPath: log, contents: nil)
            process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
            process.standardError = process.standardOutput
            try process.run()
            processes.append(process)
            let isLast = index == side.processes.count - 1
            while true {
                if isLast {
                    if let ready = try? await probeCSI(socketPath: socket), ready { break }
                } else if FileManager.default.fileExists(atPath: socket) {
                    break
                }
                guard process.isRunning else { throw FloorError(message: "\(executable) exited; see \(log)") }
                if ContinuousClock.now - start > .seconds(30) { throw FloorError(message: "\(side.name): not ready within 30 s; see \(log)") }
                try await Task.sleep(for: .milliseconds(1))
            }
        }
    }

    /// Publishes every request (at once when `concurrently`) over a connection of its own; returns each publish's
    /// latency. (One connection per batch of at most ~110 calls: upstream's driver closed the stream of about the
    /// 200th call on one connection in a run of 110 volumes.)
    func publish(_ requests: [Csi_V1_NodePublishVolumeRequest], socket: String, concurrently: Bool) async throws -> Samples {
        try await withCSIClient(socketPath: socket) { (client: GRPCClient<HTTP2ClientTransport.Posix>) async throws in
            try await publish(requests, node: Csi_V1_Node.Client(wrapping: client), concurrently: concurrently)
        }
    }

    func publish(_ requests: [Csi_V1_NodePublishVolumeRequest], node: Csi_V1_Node.Client<HTTP2ClientTransport.Posix>, concurrently: Bool) async throws -> Samples {
        var samples = Samples()
        if concurrently {
            try await withThrowingTaskGroup(of: Duration.self) { group in
                for request in requests { group.addTask { try await measure { _ = try await node.nodePublishVolume(request) } } }
                for try await elapsed in group { samples.add(elapsed) }
            }
        } else {
            for request in requests {
                // Aborted ("an operation on target path … is already in progress": a refresh of the driver's own is
                // running on it) is retried as kubelet retries, every 100 ms; the retries are counted.
                var attempts = 0
                while true {
                    do {
                        samples.add(try await measure { _ = try await node.nodePublishVolume(request) })
                        break
                    } catch let error as RPCError where error.code == .aborted && attempts < 100 {
                        attempts += 1
                        abortedRetries += 1
                        try await Task.sleep(for: .milliseconds(100))
                    }
                }
            }
        }
        return samples
    }

    /// Unpublishes every target, in order, over a connection of its own.
    func unpublish(_ targets: [String], socket: String) async throws {
        try await withCSIClient(socketPath: socket) { (client: GRPCClient<HTTP2ClientTransport.Posix>) async throws in
            try await unpublish(targets, node: Csi_V1_Node.Client(wrapping: client))
        }
    }

    func unpublish(_ targets: [String], node: Csi_V1_Node.Client<HTTP2ClientTransport.Posix>) async throws {
        for target in targets {
            var request = Csi_V1_NodeUnpublishVolumeRequest()
            request.volumeID = "v"
            request.targetPath = target
            _ = try await node.nodeUnpublishVolume(request)
        }
    }

    /// Rotation: `side` started with rotation on (poll interval 5 s) in a fresh memory group; `options.volumes`
    /// volumes of the 10-object class (one service account, so all share the same objects) published; then one
    /// secret (s0) gets a new version and the emulator's counters are reset; the driver's own loop, where it has
    /// one, gets until every volume shows the new value (three poll intervals at most), then kubelet's republish
    /// (`requiresRepublish`) of every volume follows. Counts the emulator's requests over that cycle and the volumes whose s0 has the new value; s0 gets
    /// its old value back (a new version with the old content) before returning.
    func measureRotation(_ side: Side, round: Int) async throws -> SideFigures {
        _ = try deletePodStatuses()
        try? FileManager.default.removeItem(atPath: side.root)
        try FileManager.default.createDirectory(atPath: side.root + "/providers", withIntermediateDirectories: true)
        let group = try MemoryGroup(name: "bench-upstream-\(side.name)-rotation-\(round)-\(getpid())")
        var processes: [Process] = []
        defer {
            Self.stop(processes)
            group.remove()
        }
        try await startProcesses(side, group: group, label: "\(side.name)-rotation-\(round)", into: &processes)
        var figures = SideFigures()
        let oldValue = String(repeating: "v", count: 48) + "-0"
        let newValue = "rotated-\(side.name)-\(round)-" + String(repeating: "n", count: 30)
        try await withCSIClient(socketPath: side.socket) { (client: GRPCClient<HTTP2ClientTransport.Posix>) async throws in
            _ = client  // each batch below opens a connection of its own
            let requests = (0..<options.volumes).map { request(side, index: $0) }
            _ = try await publish(requests, socket: side.socket, concurrently: false)
            func updated() -> Int {
                requests.filter { (try? String(contentsOfFile: $0.targetPath + "/s0", encoding: .utf8)) == newValue }.count
            }
            _ = emulator.setSecret(vault: "kv1", name: "s0", value: newValue)
            emulator.resetCounters()
            // The driver's own loop (ours; upstream v1.6.0 has none): until every volume shows the new value, or
            // three poll intervals.
            let loopStart = ContinuousClock.now
            while updated() < requests.count, ContinuousClock.now - loopStart < .seconds(3 * Self.rotationPollSeconds) {
                try await Task.sleep(for: .milliseconds(100))
            }
            figures.values["rotation_volumes_updated_by_own_loop"] = Double(updated())
            figures.values["rotation_keyvault_requests_own_loop"] = Double(emulator.keyVaultRequestCount)
            // Then kubelet's republish of every volume, once each (every volume is due by then where the loop did not refresh it).
            abortedRetries = 0
            _ = try await publish(requests, socket: side.socket, concurrently: false)
            try await Task.sleep(for: .seconds(1))
            figures.values["rotation_republish_aborted_retries"] = Double(abortedRetries)
            figures.values["rotation_keyvault_requests_republish"] = Double(emulator.keyVaultRequestCount) - figures.values["rotation_keyvault_requests_own_loop"]!
            figures.values["rotation_keyvault_requests_per_cycle"] = Double(emulator.keyVaultRequestCount)
            figures.values["rotation_token_requests_per_cycle"] = Double(emulator.tokenRequestCount)
            let counts = emulator.requestCounts
            figures.values["rotation_entra_other_requests_per_cycle"] = Double(counts.filter { $0.key.contains("discovery") || $0.key.contains("openid-configuration") }.values.reduce(0, +))
            if round == 0 { rotationRequestsByPath[side.name] = counts }
            figures.values["rotation_volumes_with_new_value"] = Double(updated())
            _ = emulator.setSecret(vault: "kv1", name: "s0", value: oldValue)
            try await unpublish(requests.map(\.targetPath), socket: side.socket)
        }
        let left = mountCount(under: side.root + "/pods")
        if left != 0 { print("    \(side.name) rotation: \(left) mounts left after unpublish") }
        return figures
    }

    /// Deletes every SecretProviderClassPodStatus in the bench namespace (one `deletecollection`) and returns how
    /// many there were. Both drivers leave the statuses of unpublished volumes for the garbage collector, which
    /// deletes them once their pods are gone; the bench has no pods and no garbage collector, so without this a side
    /// would start with the previous sides' statuses (about 430 with 110 volumes), and ours lists them and checks
    /// their targets before it answers Probe (upstream's driver reads them in the background): every side starts
    /// with none instead.
    func deletePodStatuses() throws -> Int {
        let kubectl = "kubectl --kubeconfig \"$0\" -n bench"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = [
            "-c",
            "\(kubectl) get secretproviderclasspodstatuses -o name | wc -l && "
                + "\(kubectl) delete --raw /apis/secrets-store.csi.x-k8s.io/v1/namespaces/bench/secretproviderclasspodstatuses >/dev/null",
            work + "/kubeconfig",
        ]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0, let count = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw FloorError(message: "could not delete the pod statuses (kubectl exited \(process.terminationStatus))")
        }
        return count
    }

    /// Starts `side` in a fresh memory group, publishes and unpublishes the volumes, and stops it.
    func measureSide(_ side: Side, round: Int) async throws -> SideFigures {
        let leftoverStatuses = try deletePodStatuses()
        try? FileManager.default.removeItem(atPath: side.root)
        try FileManager.default.createDirectory(atPath: side.root + "/providers", withIntermediateDirectories: true)
        sync()
        try "3".write(toFile: "/proc/sys/vm/drop_caches", atomically: false, encoding: .utf8)
        let group = try MemoryGroup(name: "bench-upstream-\(side.name)-\(round)-\(getpid())")
        var processes: [Process] = []
        defer {
            Self.stop(processes)
            group.remove()
        }
        var figures = SideFigures()
        figures.values["pod_statuses_deleted_before_start"] = Double(leftoverStatuses)
        let start = ContinuousClock.now
        try await startProcesses(side, group: group, label: "\(side.name)-\(round)", into: &processes)
        figures.values["start_to_probe_ms"] = (ContinuousClock.now - start).milliseconds
        let facts = processes.map { ProcessFacts(pid: $0.processIdentifier) }
        func rss() -> Double { facts.reduce(0) { $0 + $1.residentMiB } }
        func cpu() -> Double { facts.reduce(0) { $0 + $1.cpuSeconds } }
        try await Task.sleep(for: .seconds(5))
        try await recordMemory("idle", group: group, rss: rss, breakdown: true, into: &figures)

        emulator.resetCounters()
        let cpuAtStart = cpu()
        var latencies = Samples()
        var targets: [String] = []
        try await withCSIClient(socketPath: side.socket) { (client: GRPCClient<HTTP2ClientTransport.Posix>) async throws in
            let node = Csi_V1_Node.Client(wrapping: client)
            for index in 0..<options.volumes {
                let request = request(side, index: index)
                let elapsed = try await measure { _ = try await node.nodePublishVolume(request) }
                if index == 0 { figures.values["first_publish_ms"] = elapsed.milliseconds }
                latencies.add(elapsed)
                targets.append(request.targetPath)
            }
            figures.values["keyvault_requests_per_publish"] = Double(emulator.keyVaultRequestCount) / Double(options.volumes)
            figures.values["token_requests_per_publish"] = Double(emulator.tokenRequestCount) / Double(options.volumes)
            if round == 0 { requestsByPath[side.name] = emulator.requestCounts }
            if round == 0, let first = targets.first {
                fileListings[side.name] = ((try? FileManager.default.contentsOfDirectory(atPath: first)) ?? []).filter { !$0.hasPrefix(".") }.sorted().map { file in
                    // Read through the atomic writer's symlinks (both sides publish `name -> ..data/name`).
                    let contents = FileManager.default.contents(atPath: first + "/" + file)
                    // Hasher is seeded per process and both sides are read by this one: equal digests, equal bytes.
                    var hasher = Hasher()
                    hasher.combine(contents)
                    return "\(file) (\(contents?.count ?? -1) B, #\(String(UInt(bitPattern: hasher.finalize()) % 0x10000, radix: 16)))"
                }
            }
            try await Task.sleep(for: .seconds(3))
            try await recordMemory("mounted", group: group, rss: rss, breakdown: true, into: &figures)
            figures.values["cache_mounted_mib"] = group.stat("total_cache") / 1_048_576
            figures.values["shmem_mounted_mib"] = group.stat("total_shmem") / 1_048_576
            try await unpublish(targets, socket: side.socket)
        }
        figures.values["cpu_per_publish_unpublish_ms"] = (cpu() - cpuAtStart) * 1000 / Double(options.volumes)
        // Idle again, once the unpublishes have settled: what stays charged after the side has done work.
        try await Task.sleep(for: .seconds(5))
        figures.values["working_set_after_unpublish_mib"] = group.workingSetMiB
        figures.values["rss_after_unpublish_mib"] = rss()
        figures.values["publish_p50_ms"] = latencies.percentile(0.5)
        figures.values["publish_p99_ms"] = latencies.percentile(0.99)
        figures.values["class_10_publish_p50_ms"] = figures.values["publish_p50_ms"]
        figures.values["class_10_publish_p99_ms"] = figures.values["publish_p99_ms"]
        // The 1- and 50-object classes: the same number of volumes each, published one after another, then unpublished.
        try await withCSIClient(socketPath: side.socket) { (client: GRPCClient<HTTP2ClientTransport.Posix>) async throws in
            _ = client  // each batch below opens a connection of its own
            for (className, objects) in Self.otherClasses {
                emulator.resetCounters()
                let requests = (0..<options.volumes).map { request(side, index: $0, className: className) }
                let classLatencies = try await publish(requests, socket: side.socket, concurrently: false)
                let classTargets = requests.map(\.targetPath)
                figures.values["class_\(objects)_publish_p50_ms"] = classLatencies.percentile(0.5)
                figures.values["class_\(objects)_publish_p99_ms"] = classLatencies.percentile(0.99)
                if objects == 50, let first = classTargets.first {
                    figures.values["class_50_keyvault_requests_per_publish"] = Double(emulator.keyVaultRequestCount) / Double(options.volumes)
                    figures.values["class_50_files_first_volume"] = Double(((try? FileManager.default.contentsOfDirectory(atPath: first)) ?? []).filter { !$0.hasPrefix(".") }.count)
                }
                try await unpublish(classTargets, socket: side.socket)
            }
            // A burst: 100 publishes of the 10-object class at once (new pods), then their unpublishes.
            let burst = (0..<100).map { request(side, index: 1000 + $0) }
            emulator.resetCounters()
            let cpuBeforeBurst = cpu()
            let burstLatencies = try await publish(burst, socket: side.socket, concurrently: true)
            try await unpublish(burst.map(\.targetPath), socket: side.socket)
            figures.values["burst_100_cpu_per_publish_unpublish_ms"] = (cpu() - cpuBeforeBurst) * 1000 / 100
            figures.values["burst_100_keyvault_requests"] = Double(emulator.keyVaultRequestCount)
            figures.values["burst_100_publish_p50_ms"] = burstLatencies.percentile(0.5)
            figures.values["burst_100_publish_p99_ms"] = burstLatencies.percentile(0.99)
        }
        // Pods coming and going: `options.cycles` publish + unpublish cycles, then the memory that stays.
        let cpuBeforeCycles = cpu()
        let cyclesStart = ContinuousClock.now
        let cycles = try await cycle(side, count: options.cycles)
        figures.values["cycles_seconds"] = (ContinuousClock.now - cyclesStart).milliseconds / 1000
        figures.values["cycles_cpu_per_cycle_ms"] = (cpu() - cpuBeforeCycles) * 1000 / Double(max(1, options.cycles))
        figures.values["cycles_publish_p50_ms"] = cycles.latencies.percentile(0.5)
        figures.values["cycles_publish_p99_ms"] = cycles.latencies.percentile(0.99)
        figures.values["cycles_aborted_retries"] = Double(cycles.abortedRetries)
        try await Task.sleep(for: .seconds(5))
        try await recordMemory("after_cycles", group: group, rss: rss, breakdown: true, into: &figures)
        let left = mountCount(under: side.root + "/pods")
        if left != 0 { print("    \(side.name): \(left) mounts left after unpublish") }
        return figures
    }
}
