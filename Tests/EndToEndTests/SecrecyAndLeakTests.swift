import CSIProtocol
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import KeyVaultEmulator
import SecretsStoreCore
import SecretsStoreCoreTesting
import SecretsStoreLinux
import SecretsStoreTesting
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// No secret or token anywhere a person can read, with the driver at its highest verbosity; and no resource
/// that grows with the number of publish/unpublish cycles.
@Suite("Secrecy at full verbosity, and no leaks over 1000 cycles", .serialized, .timeLimit(.minutes(3)))
struct SecrecyAndLeakTests {
    static let tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"

    @Test(
        "the driver process at -v=10 with sync and rotation: no seeded secret, client secret, service account token, access token or API token in any log line, event or metric",
        .enabled(if: runningAsRoot, "needs real tmpfs mounts")
    )
    func nothingSecretAtFullVerbosity() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let emulator = try await KeyVaultEmulator(
                seed: EmulatorSeed(
                    tenantID: Self.tenant,
                    clients: [
                        .init(clientID: "sp", secret: "SP-CLIENT-SECRET-SENTINEL"),
                        .init(clientID: "wi-app", federated: [.init(subject: "system:serviceaccount:ns:default", audience: "api://AzureADTokenExchange")]),
                    ],
                    vaults: ["kv1": .init(secrets: ["db-pass": [.init(value: "DB-VALUE-SENTINEL-1")]])]
                )
            )
            let api = try await FakeKubernetesAPIServer(requiredToken: "API-TOKEN-SENTINEL")
            let objects = "array:\n  - |\n    objectName: db-pass\n    objectType: secret\n"
            let spcs = "/apis/secrets-store.csi.x-k8s.io/v1/namespaces/ns/secretproviderclasses"
            api.seed(
                path: spcs,
                object: [
                    "metadata": ["name": "wi"],
                    "spec": [
                        "provider": "azure",
                        "parameters": ["keyvaultName": "kv1", "tenantId": Self.tenant, "clientID": "wi-app", "objects": objects],
                        "secretObjects": [["secretName": "db", "type": "Opaque", "data": [["objectName": "db-pass", "key": "password"]]]],
                    ],
                ]
            )
            api.seed(path: spcs, object: ["metadata": ["name": "sp"], "spec": ["provider": "azure", "parameters": ["keyvaultName": "kv1", "tenantId": Self.tenant, "objects": objects]]])
            for index in 1...3 {
                api.seed(path: "/api/v1/namespaces/ns/pods", object: ["metadata": ["name": "web-\(index)", "uid": "uid-\(index)"]])
            }
            let kubeconfig = root + "/kubeconfig"
            try """
            apiVersion: v1
            kind: Config
            current-context: test
            clusters: [{name: fake, cluster: {server: "\(api.url)"}}]
            users: [{name: driver, user: {token: API-TOKEN-SENTINEL}}]
            contexts: [{name: test, context: {cluster: fake, user: driver}}]
            """.write(toFile: kubeconfig, atomically: true, encoding: .utf8)
            try emulator.certificates.caCertificatePEM.write(toFile: root + "/ca.pem", atomically: true, encoding: .utf8)
            let socket = root + "/csi.sock"
            let logPath = root + "/driver.log"
            _ = FileManager.default.createFile(atPath: logPath, contents: nil)
            let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
            let process = Process()
            process.executableURL = URL(fileURLWithPath: DriverProcessTests.binary)
            process.arguments = [
                "-endpoint=unix://" + socket, "--nodeid=node-a", "-v=10", "--kubeconfig=" + kubeconfig,
                "--enable-secret-sync", "--enable-secret-rotation", "--rotation-poll-interval=1s", "--provider-volume=" + root,
                "--metrics-addr=127.0.0.1:0", "--azure-keyvault-url-template=" + emulator.baseURL + "/{vault}",
                "--azure-authority-host=" + emulator.baseURL + "/", "--azure-ca-bundle=" + root + "/ca.pem",
            ]
            process.standardOutput = log
            process.standardError = log
            try process.run()
            let mounter = LinuxMounter()
            func target(_ index: Int) -> String { root + "/pods/uid-\(index)/volumes/kubernetes.io~csi/secrets/mount" }
            defer {
                if process.isRunning { process.terminate() }
                for index in 1...3 { try? mounter.unmountOnThisThread(target(index)) }
            }
            try await DriverProcessTests.waitForSocket(socket)

            let serviceAccountToken = ServiceAccountToken.make(subject: "system:serviceaccount:ns:default")
            func request(_ index: Int, spc: String, secrets: [String: String] = [:]) -> Csi_V1_NodePublishVolumeRequest {
                var request = Csi_V1_NodePublishVolumeRequest()
                request.volumeID = "csi-\(index)"
                request.targetPath = target(index)
                request.readonly = true
                request.volumeCapability.mount = .init()
                request.volumeContext = [
                    "secretProviderClass": spc, "csi.storage.k8s.io/pod.name": "web-\(index)",
                    "csi.storage.k8s.io/pod.namespace": "ns", "csi.storage.k8s.io/pod.uid": "uid-\(index)",
                    "csi.storage.k8s.io/serviceAccount.name": "default",
                    "csi.storage.k8s.io/serviceAccount.tokens": ServiceAccountToken.volumeContextValue(serviceAccountToken),
                ]
                request.secrets = secrets
                return request
            }
            var errorMessages: [String] = []
            try await withCSIClient(socketPath: socket) { (client: GRPCClient<HTTP2ClientTransport.Posix>) async throws in
                let node = Csi_V1_Node.Client(wrapping: client)
                _ = try await node.nodePublishVolume(request(1, spc: "wi"))
                _ = try await node.nodePublishVolume(request(2, spc: "sp", secrets: ["clientid": "sp", "clientsecret": "SP-CLIENT-SECRET-SENTINEL"]))
                do {
                    _ = try await node.nodePublishVolume(request(3, spc: "sp", secrets: ["clientid": "sp", "clientsecret": "WRONG-SECRET-SENTINEL"]))
                    Issue.record("a wrong client secret was accepted")
                } catch let error as RPCError {
                    errorMessages.append(error.message)
                }
                // Rotation: the new value reaches the file and the synced Secret.
                emulator.setSecret(vault: "kv1", name: "db-pass", value: "DB-VALUE-SENTINEL-2")
                try await eventually("the rotated value in the file", every: .milliseconds(20)) {
                    (try? String(contentsOfFile: target(1) + "/db-pass", encoding: .utf8)) == "DB-VALUE-SENTINEL-2"
                }
                for index in 1...2 {
                    var unpublish = Csi_V1_NodeUnpublishVolumeRequest()
                    unpublish.volumeID = "csi-\(index)"
                    unpublish.targetPath = target(index)
                    // As kubelet does: ABORTED means the rotation cycle that just swapped the files still holds
                    // the volume (writing its pod status and Secret); try again shortly.
                    for attempt in 1...100 {
                        do {
                            _ = try await node.nodeUnpublishVolume(unpublish)
                            break
                        } catch let error as RPCError where error.code == .aborted && attempt < 100 {
                            try await Task.sleep(for: .milliseconds(50))
                        }
                    }
                }
            }
            let synced = try #require(api.object(at: "/api/v1/namespaces/ns/secrets/db"))
            #expect((synced["data"] as? [String: String])?["password"] == Data("DB-VALUE-SENTINEL-2".utf8).base64EncodedString())

            let earlyLog = try String(contentsOfFile: logPath, encoding: .utf8)
            let port = try #require(
                earlyLog.split(separator: "\n").first { $0.contains("metrics listening") }
                    .flatMap { $0.split(separator: "127.0.0.1:").last?.prefix { $0.isNumber } }
                    .flatMap { Int($0) }
            )
            let metrics = try DriverProcessTests.httpGet("http://127.0.0.1:\(port)/metrics").body
            try await terminateAndWait(process)  // SIGTERM, bounded
            let logText = try String(contentsOfFile: logPath, encoding: .utf8)
            let events = api.requests.filter { $0.method == "POST" && $0.path.hasSuffix("/events") }.map(\.body)

            // The run exercised what it claims: trace-level lines, events and metrics were produced.
            #expect(logText.contains("kubernetes API call"), "trace-level lines are present")
            #expect(logText.contains("key vault request"), "debug-level Key Vault lines are present")
            #expect(events.contains { $0.contains("MountRotationComplete") })
            #expect(metrics.contains("rotation_reconcile"))
            let accessTokens = emulator.issuedAccessTokens
            #expect(!accessTokens.isEmpty)

            let secrets = [
                "DB-VALUE-SENTINEL", "SP-CLIENT-SECRET-SENTINEL", "WRONG-SECRET-SENTINEL", "API-TOKEN-SENTINEL",
                serviceAccountToken, String(serviceAccountToken.split(separator: ".").last!),
            ] + accessTokens
            let haystacks: [(String, String)] = [("log", logText), ("metrics", metrics)]
                + events.map { ("event", $0) } + errorMessages.map { ("gRPC error", $0) }
            for (kind, text) in haystacks {
                for secret in secrets {
                    #expect(!text.contains(secret), "\(kind) holds a secret")
                }
            }
            try await api.shutdown()
            try await emulator.shutdown()
        }
    }

    /// The open file descriptors, mounts and resident memory of this process.
    struct Sample {
        var fileDescriptors: Int
        var mounts: Int
        var residentKiB: Int

        /// Mounts are counted under `root` only: other suites mount in parallel.
        static func take(mountsUnder root: String) throws -> Sample {
            let fds = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count
            let mounts = MountInfo.parse(try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8))
                .filter { $0.mountPoint.hasPrefix(root) }.count
            let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
            let rss = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") }
                .flatMap { Int($0.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") } ?? 0
            return Sample(fileDescriptors: fds, mounts: mounts, residentKiB: rss)
        }
    }

    @Test("1000 publish/unpublish cycles through the real server leave the mount table and open descriptors where they were")
    func thousandCyclesLeakNothing() async throws {
        try await withDriver { driver in
            driver.seedSecretProviderClass()
            var samples: [Sample] = []
            for cycle in 0..<1000 {
                let target = driver.targetPath(podUID: "uid-\(cycle % 4)")
                _ = try await driver.node.nodePublishVolume(driver.publishRequest(target: target))
                _ = try await driver.node.nodeUnpublishVolume(driver.unpublishRequest(target: target))
                if cycle % 100 == 99 {
                    // The harness's own recorders (log lines, API and provider requests) are emptied first, so
                    // what remains is the driver's.
                    driver.logs.removeAll()
                    driver.api.removeRecordedRequests()
                    driver.provider.removeRecordedRequests()
                    samples.append(try Sample.take(mountsUnder: driver.root))
                }
            }
            #expect(samples.count == 10 && samples.allSatisfy { $0.mounts == 0 }, "mounts left under the driver's root: \(samples.map(\.mounts))")
            // Other suites open descriptors in parallel, so compare the quietest samples of each half: a leak of
            // one descriptor per 100 cycles would still show.
            let early = samples.prefix(5).map(\.fileDescriptors).min()!
            let late = samples.suffix(5).map(\.fileDescriptors).min()!
            #expect(late <= early + 2, "descriptors: \(samples.map(\.fileDescriptors))")
            // Resident memory is reported, not timed; a leak of a few KiB per cycle would show as megabytes here.
            let growth = samples.last!.residentKiB - samples[1].residentKiB
            print("RSS KiB every 100 cycles: \(samples.map(\.residentKiB)); fds: \(samples.map(\.fileDescriptors))")
            #expect(growth < 16 * 1024, "RSS grew \(growth) KiB from cycle 200 to 1000")
        }
    }
}
