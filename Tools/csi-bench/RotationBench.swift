import KeyVaultEmulator
import Logging
import SecretsStoreAzure
import SecretsStoreCore
import SecretsStoreCoreTesting
import SecretsStoreApplication
import SecretsStoreLinux
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One rotation cycle over `volumes` volumes sharing one SecretProviderClass of `objects` secrets, with the
/// built-in Azure provider against the Key Vault emulator on loopback HTTPS: duration, CPU time and the Key
/// Vault requests the emulator counted.
enum RotationBench {
    static func run(volumes: Int, objects: Int, root: String, report: Report) async throws {
        let tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
        var secrets: [String: [EmulatorSeed.SecretVersion]] = [:]
        for index in 0..<objects { secrets["s\(index)"] = [.init(value: "value-\(index)")] }
        let emulator = try await KeyVaultEmulator(
            seed: EmulatorSeed(tenantID: tenant, clients: [.init(clientID: "sp", secret: "pw")], vaults: ["kv1": .init(secrets: secrets)])
        )
        let http = try AzureHTTP(extraCABundlePEM: Array(emulator.certificates.caCertificatePEM.utf8))
        let azure = AzureKeyVaultProvider(
            http: http,
            overrides: AzureEndpointOverrides(keyVaultURLTemplate: emulator.baseURL + "/{vault}", authorityHost: emulator.baseURL + "/")
        )
        let objectsYAML = "array:\n" + (0..<objects).map { "  - |\n    objectName: s\($0)\n    objectType: secret\n" }.joined()
        let kubernetes = InMemoryKubernetesAPI([
            SecretProviderClass(namespace: "ns", name: "spc", provider: AzureKeyVaultProvider.name, parameters: ["keyvaultName": "kv1", "tenantId": tenant, "objects": objectsYAML])
        ])
        let fileSystem = PosixFileSystem()
        let mounter: any Mounter = runningAsRoot ? LinuxMounter() : RecordingMounter(fileSystem: fileSystem)
        let clock = MonotonicOffset()
        let logger = Logger(label: "bench", factory: { _ in SwiftLogNoOpLogHandler() })
        // The production assembly with its group running (the rotation loop parked: the bench times one cycle
        // it starts itself), the emulator-backed Azure provider and an in-memory Kubernetes API injected.
        let driver = try await DriverAssembly(
            configuration: DriverConfiguration(
                socketPath: root + "/rot.sock",
                nodeID: "bench",
                providerDirectories: [],
                rotation: RotationPolicy(enabled: true, interval: .seconds(120)),
                metricsAddress: "127.0.0.1:0",
                builtInAzure: nil
            ),
            seams: DriverAssembly.Seams(
                kubernetes: kubernetes,
                builtInProviders: [AzureKeyVaultProvider.name: azure],
                mounter: mounter,
                fileSystem: fileSystem,
                monotonicNow: clock.now,
                rotationSleep: DriverAssembly.Seams.parkedRotation
            ),
            logger: logger
        )
        let publisher = driver.publisher
        try await driver.withRunning { _ in
            var targets: [String] = []
            for index in 0..<volumes {
                let target = root + "/rot/pods/uid-\(index)/mount"
                targets.append(target)
                try await publisher.publish(
                    PublishRequest(
                        volumeID: "v\(index)", targetPath: target, accessType: .mount, readOnly: true,
                        volumeContext: [
                            VolumeContextKey.secretProviderClass: "spc", VolumeContextKey.podName: "p\(index)",
                            VolumeContextKey.podNamespace: "ns", VolumeContextKey.podUID: "uid-\(index)",
                            VolumeContextKey.serviceAccountName: "default",
                        ],
                        secrets: ["clientid": "sp", "clientsecret": "pw"]
                    ),
                    logger: logger
                )
            }
            for index in 0..<objects { emulator.setSecret(vault: "kv1", name: "s\(index)", value: "rotated-\(index)") }
            emulator.resetCounters()
            clock.advance(.seconds(121))
            let cpuBefore = cpuSeconds()
            let start = ContinuousClock.now
            let outcomes = await publisher.rotate(logger: logger)
            let elapsed = ContinuousClock.now - start
            let cpu = cpuSeconds() - cpuBefore
            let changed = outcomes.values.filter { $0 == .refreshed(changed: true) }.count
            report.notes["rotation_volumes_rotated"] = changed
            let keyVaultRequests = emulator.keyVaultRequestCount
            report.add(
                "rotation cycle (\(volumes) vol x \(objects) obj): Key Vault GETs", Double(keyVaultRequests), floor: Double(objects),
                unit: "requests", target: "one per distinct object (upstream: \(volumes * objects))", met: keyVaultRequests == objects
            )

            // The floor: the same GETs on a kept-alive connection, then every volume's files written and swapped.
            let floorFetcher = try await PublishFloor.make(http: http, emulatorURL: emulator.baseURL, tenant: tenant, clientID: "sp", secret: "pw")
            var floorTargets: [String] = []
            for index in 0..<volumes {
                let path = root + "/rot-floor/\(index)"
                try PosixFileSystem().createDirectories(at: path, permissions: 0o755)
                try await mounter.mountTmpfs(at: path)  // like the volumes, the floor writes into tmpfs (not timed)
                floorTargets.append(path)
            }
            let floorCPUBefore = cpuSeconds()
            let floorElapsed = try await measure {
                let bodies = try await floorFetcher.fetch(objects: objects)
                for path in floorTargets { try PublishFloor.write(bodies, into: path, mount: false, generation: 1) }
            }
            let floorCPU = cpuSeconds() - floorCPUBefore
            for path in floorTargets { try? await mounter.unmount(path) }
            report.add("rotation cycle: wall time", elapsed.milliseconds, floor: floorElapsed.milliseconds, unit: "ms")
            report.add("rotation cycle: CPU time", cpu * 1000, floor: floorCPU * 1000, unit: "ms")
            for target in targets { try? await mounter.unmount(target) }
        }
        try await http.shutdown()
        try await emulator.shutdown()
    }

    static func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }
}

/// A monotonic clock the bench can move forward.
final class MonotonicOffset: Sendable {
    private let offset = Mutex<Duration>(.zero)
    private let origin = ContinuousClock.now
    var now: @Sendable () -> Duration { { [self] in (ContinuousClock.now - origin) + offset.withLock { $0 } } }
    func advance(_ duration: Duration) { offset.withLock { $0 += duration } }
}
