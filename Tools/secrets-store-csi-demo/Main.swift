import CSIProtocol
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import KeyVaultEmulator
import Logging
import SecretsStoreAzure
import SecretsStoreCore
import SecretsStoreCoreTesting
import SecretsStoreApplication
import SecretsStoreKubernetes
import SecretsStoreLinux
import SecretsStoreTesting

/// `swift run secrets-store-csi-demo`: the real driver on embedded defaults, with nothing to install.
///
/// Starts the Key Vault emulator (HTTPS on loopback, seeded from examples/emulator-seed.yaml plus a fresh
/// certificate chain), runs the driver's own assembly (``DriverAssembly``: start-up recovery, CSI server on a
/// temporary Unix socket, metrics listener on a loopback port, rotation loop) with the built-in Azure provider
/// and an in-memory Kubernetes API injected, and acts
/// as kubelet: publishes a volume for examples/secretproviderclass.yaml (a real tmpfs as root, a plain
/// directory otherwise), prints the mounted tree, changes a secret in the vault, runs one rotation cycle and
/// shows the change, then unpublishes. Without a cluster the SecretProviderClass comes from the file and the
/// driver's Kubernetes writes (pod status, synced Secret, events) go to an in-memory API.
@main
struct Demo {
    static func main() async throws {
        let root = FileManager.default.currentDirectoryPath
        let spcPath = CommandLine.arguments.dropFirst().first ?? root + "/examples/secretproviderclass.yaml"
        let seedPath = root + "/examples/emulator-seed.yaml"
        let logs = LogCapture()
        let logger = logs.logger(level: .info)

        // 1. The vault.
        var seed = try EmulatorSeed.load(path: seedPath)
        let chain = try TestCertificateChain.make(commonName: "demo.contoso.com")
        seed.vaults?["kv1"]?.certificates = ["web": [.init(pkcs12: try chain.pkcs12Base64(certificates: [chain.leaf, chain.root, chain.intermediate]))]]
        let emulator = try await KeyVaultEmulator(seed: seed)
        say("Key Vault emulator on \(emulator.baseURL) (vault kv1, tenant \(seed.tenantID ?? "-"))")

        // 2. The cluster: the SecretProviderClass from the file, everything else in memory.
        let spc = try SecretProviderClass(manifest: String(contentsOfFile: spcPath, encoding: .utf8), namespace: "default", name: "demo")
        let kubernetes = InMemoryKubernetesAPI([spc])
        kubernetes.add(PodInfo(namespace: spc.namespace, name: "demo-app", uid: "0f3c-demo-uid", ownerReferences: []))
        say("SecretProviderClass \(spc.namespace)/\(spc.name) from \(spcPath) (provider \(spc.provider))")

        // 3. The driver: the production assembly on a temporary socket, the built-in Azure provider pointed at
        //    the emulator. The rotation loop is parked so the demo runs its one cycle when it chooses.
        let fileSystem = PosixFileSystem()
        let work = try fileSystem.makeUniqueDirectory(in: "/tmp", prefix: "csi-demo-")
        let mounter: any Mounter = runningAsRoot ? LinuxMounter() : RecordingMounter(fileSystem: fileSystem)
        let driver = try await DriverAssembly(
            configuration: DriverConfiguration(
                socketPath: work + "/csi.sock",
                nodeID: "demo-node",
                providerDirectories: [],
                rotation: RotationPolicy(enabled: true, interval: .milliseconds(200)),
                syncSecrets: true,
                metricsAddress: "127.0.0.1:0",
                builtInAzure: .init(
                    overrides: AzureEndpointOverrides(
                        keyVaultURLTemplate: emulator.baseURL + "/{vault}",
                        authorityHost: emulator.baseURL + "/",
                        caBundlePEM: Array(emulator.certificates.caCertificatePEM.utf8)
                    )
                )
            ),
            seams: DriverAssembly.Seams(
                kubernetes: kubernetes,
                mounter: mounter,
                fileSystem: fileSystem,
                rotationSleep: DriverAssembly.Seams.parkedRotation
            ),
            logger: logger
        )
        let publisher = driver.publisher
        let target = work + "/pods/0f3c-demo-uid/volumes/kubernetes.io~csi/secrets-store-inline/mount"

        try await driver.withRunning { listening in
            let socket = listening.socketPath
            try await withCSIClient(socketPath: socket) { client in
                say("driver serving CSI on unix://\(socket) (\(runningAsRoot ? "real tmpfs mounts" : "not root: a plain directory stands in for the tmpfs"))")
                let node = Csi_V1_Node.Client(wrapping: client)
                let info = try await Csi_V1_Identity.Client(wrapping: client).getPluginInfo(Csi_V1_GetPluginInfoRequest())
                say("GetPluginInfo: \(info.name) \(info.vendorVersion)")

                // 4. Kubelet publishes the pod's inline volume, with the workload identity token it requested.
                var request = Csi_V1_NodePublishVolumeRequest()
                request.volumeID = "csi-demo-volume"
                request.targetPath = target
                request.readonly = true
                request.volumeCapability.mount = .init()
                request.volumeContext = [
                    VolumeContextKey.secretProviderClass: spc.name,
                    VolumeContextKey.podName: "demo-app",
                    VolumeContextKey.podNamespace: spc.namespace,
                    VolumeContextKey.podUID: "0f3c-demo-uid",
                    VolumeContextKey.serviceAccountName: "demo",
                    VolumeContextKey.ephemeral: "true",
                    VolumeContextKey.serviceAccountTokens: ServiceAccountToken.volumeContextValue(
                        ServiceAccountToken.make(subject: "system:serviceaccount:default:demo")
                    ),
                ]
                let start = ContinuousClock.now
                _ = try await node.nodePublishVolume(request)
                say("NodePublishVolume: OK in \(milliseconds(ContinuousClock.now - start)) ms, \(emulator.keyVaultRequestCount) Key Vault requests, \(emulator.tokenRequestCount) token request")
                printTree(target)
                if let secret = kubernetes.secrets["\(spc.namespace)/app-db"] {
                    say("synced Kubernetes Secret \(spc.namespace)/app-db (labels \(secret.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")))")
                }

                // 5. Rotate: a new version in the vault, one rotation cycle.
                let before = (try? fileSystem.symbolicLinkDestination(at: target + "/..data")) ?? nil
                emulator.setSecret(vault: "kv1", name: "db-pass", value: "rotated-password")
                emulator.resetCounters()
                say("set a new version of db-pass in the vault; waiting one rotation interval")
                try await Task.sleep(for: .milliseconds(250))
                _ = await publisher.rotate(logger: logger)
                let after = (try? fileSystem.symbolicLinkDestination(at: target + "/..data")) ?? nil
                say("rotation cycle: \(emulator.keyVaultRequestCount) Key Vault requests; ..data: \(before ?? "-") -> \(after ?? "-")")
                say("DB_PASSWORD now: \(String(decoding: (try? fileSystem.readFile(at: target + "/DB_PASSWORD")) ?? [], as: UTF8.self))")
                say("synced Secret app-db password now: \(String(decoding: kubernetes.secrets["\(spc.namespace)/app-db"]?.data["password"] ?? [], as: UTF8.self))")
                for event in kubernetes.events { say("event on pod: \(event.kind.rawValue) \(event.reason): \(event.message)") }

                var unpublish = Csi_V1_NodeUnpublishVolumeRequest()
                unpublish.volumeID = "csi-demo-volume"
                unpublish.targetPath = target
                _ = try await node.nodeUnpublishVolume(unpublish)
                say("NodeUnpublishVolume: OK (target removed: \((try? fileSystem.kind(of: target)) == nil))")
            }
        }
        try await ControllerDemo.run(emulator: emulator, spcPath: root + "/examples/secretproviderclass-sync.yaml", logs: logs)
        try await emulator.shutdown()
        try? fileSystem.removeItem(at: work)
    }

    static func say(_ text: String) {
        FileHandle.standardOutput.write(Data(("==> " + text + "\n").utf8))
    }

    static func printTree(_ target: String) {
        let fileSystem = PosixFileSystem()
        var lines = ["mounted at \(target):"]
        let names = ((try? fileSystem.contentsOfDirectory(at: target)) ?? []).sorted()
        for name in names {
            let path = target + "/" + name
            if let link = try? fileSystem.symbolicLinkDestination(at: path) {
                lines.append("  \(name) -> \(link)")
            } else {
                lines.append("  \(name)/")
            }
        }
        if let data = try? fileSystem.symbolicLinkDestination(at: target + "/..data") {
            for file in walk(target + "/" + data) {
                let bytes = (try? fileSystem.readFile(at: target + "/" + data + "/" + file)) ?? []
                let mode = String((try? fileSystem.permissions(of: target + "/" + data + "/" + file)) ?? 0, radix: 8)
                let text = String(decoding: bytes, as: UTF8.self)
                let summary = text.hasPrefix("-----BEGIN")
                    ? PEM.decode(text).map(\.type).joined(separator: " + ")
                    : "\"\(text)\""
                lines.append("  \(data)/\(file)  mode 0\(mode)  \(bytes.count) bytes  \(summary)")
            }
        }
        FileHandle.standardOutput.write(Data((lines.joined(separator: "\n") + "\n").utf8))
    }

    static func walk(_ directory: String, prefix: String = "") -> [String] {
        let fileSystem = PosixFileSystem()
        var result: [String] = []
        for name in ((try? fileSystem.contentsOfDirectory(at: directory)) ?? []).sorted() {
            let relative = prefix.isEmpty ? name : prefix + "/" + name
            if (try? fileSystem.kind(of: directory + "/" + name)) == .directory {
                result += walk(directory + "/" + name, prefix: relative)
            } else {
                result.append(relative)
            }
        }
        return result
    }

    static func milliseconds(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        return String(Double(Int((Double(seconds) * 1000 + Double(attoseconds) / 1e15) * 10)) / 10)
    }
}

