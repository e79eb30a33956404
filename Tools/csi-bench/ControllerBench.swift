import Foundation
import KeyVaultEmulator
import NIOHTTP1
import SecretsStoreAzure
import SecretsStoreTesting

#if canImport(Glibc)
import Glibc
#endif

/// The sync controller's figures: the release binary run as `controller` against the fake API and the Key
/// Vault emulator hosted here, with service-principal auth from a `nodePublishSecretRef` Secret.
///
/// - SPC created → Secret present, p50/p99 over sequential creations, next to a floor of what the work
///   needs at the least: one Key Vault GET on a kept-alive connection plus one Secret POST to the fake API;
/// - Key Vault requests per refresh for 100 SPCs (one object each: the ideal is 1.0);
/// - RSS idle (no SPC) and with 1 000 SPCs synced.
enum ControllerBench {
    static let namespace = "apps"
    static let collection = "/apis/secrets-store.csi.x-k8s.io/v1/namespaces/\(namespace)/secretproviderclasses"

    static func run(bench: DriverBench, samples: Int) async throws {
        let api = bench.api
        let emulator = bench.emulator
        api.seed(
            path: "/api/v1/namespaces/\(namespace)/secrets",
            object: ["apiVersion": "v1", "kind": "Secret", "metadata": ["name": "kv-creds"], "type": "Opaque", "data": ["clientid": base64("sp"), "clientsecret": base64("pw")]]
        )
        api.seed(path: "/api/v1/namespaces/\(namespace)/serviceaccounts", object: ["metadata": ["name": "app"]])
        let arguments = [
            "controller", "--kubeconfig=" + bench.root + "/kubeconfig", "--leader-elect=false", "--token-requests=api://AzureADTokenExchange",
            "--provider-volume=" + bench.root + "/providers", "--metrics-addr=127.0.0.1:0", "--rotation-poll-interval=1h",
            "--azure-keyvault-url-template=" + emulator.baseURL + "/{vault}", "--azure-authority-host=" + emulator.baseURL + "/",
            "--azure-ca-bundle=" + bench.root + "/ca.pem",
        ]
        let process = Process()
        process.executableURL = URL(fileURLWithPath: bench.driverBinary)
        process.arguments = arguments
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        let log = bench.root + "/controller.log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        try process.run()
        defer {
            process.terminate()
            process.waitUntilExit()
        }
        try await Task.sleep(for: .seconds(2))
        guard process.isRunning else { throw FloorError(message: "the controller exited; see \(log)") }
        let idle = ProcessFacts(pid: process.processIdentifier).residentMiB
        bench.report.add("controller RSS idle (no SPC)", idle, unit: "MiB")

        // SPC created -> Secret present, one at a time.
        var latency = Samples()
        for index in 0..<samples {
            let name = "lat\(index)"
            let start = ContinuousClock.now
            api.seed(path: collection, object: spc(name: name, secret: "s\(index % 50)", refreshInterval: nil))
            try await waitFor("secret \(name)", process: process, log: log) {
                api.object(at: "/api/v1/namespaces/\(namespace)/secrets/\(name)-synced") != nil
            }
            latency.add(ContinuousClock.now - start)
        }
        let vault = try await PublishFloor.make(http: bench.floorHTTP, emulatorURL: emulator.baseURL, tenant: Bench.tenant, clientID: "sp", secret: "pw")
        var floor = Samples()
        for index in 0..<samples {
            let duration = try await measure {
                _ = try await vault.fetch(objects: 1)
                let body = Array(#"{"metadata":{"name":"f\#(index)"},"data":{"k":"dg=="}}"#.utf8)
                let response = try await bench.floorHTTP.send(
                    .POST,
                    api.url + "/api/v1/namespaces/floor/secrets",
                    headers: [("Authorization", "Bearer bench-token"), ("Content-Type", "application/json")],
                    body: body
                )
                guard response.status == 201 else { throw FloorError(message: "floor POST: HTTP \(response.status)") }
            }
            floor.add(duration)
        }
        bench.report.add("controller: SPC created -> Secret present p50", latency.percentile(0.5), floor: floor.percentile(0.5), unit: "ms")
        bench.report.add("controller: SPC created -> Secret present p99", latency.percentile(0.99), floor: floor.percentile(0.99), unit: "ms")

        // Key Vault requests per refresh, 100 SPCs refreshed every 5 s.
        for index in 0..<100 {
            api.seed(path: collection, object: spc(name: "ref\(index)", secret: "s\(index % 50)", refreshInterval: "5s"))
        }
        try await waitFor("100 refreshing SPCs synced", process: process, log: log) {
            (0..<100).allSatisfy { api.object(at: "/api/v1/namespaces/\(namespace)/secrets/ref\($0)-synced") != nil }
        }
        try await Task.sleep(for: .seconds(1))
        emulator.resetCounters()
        try await Task.sleep(for: .seconds(10))
        let perRefresh = Double(emulator.keyVaultRequestCount) / 100.0 / 2.0
        bench.report.add("controller: Key Vault requests per SPC refresh (100 SPCs, 1 object)", perRefresh, floor: 1, unit: "req")
        bench.report.add("controller: Entra token requests in 10 s (100 SPCs)", Double(emulator.tokenRequestCount), unit: "req")

        // RSS with 1 000 SPCs synced.
        for index in 0..<1000 {
            api.seed(path: collection, object: spc(name: "mem\(index)", secret: "s\(index % 50)", refreshInterval: nil))
        }
        let start = ContinuousClock.now
        try await waitFor("1000 SPCs synced", limit: .seconds(300), process: process, log: log) {
            (0..<1000).allSatisfy { api.object(at: "/api/v1/namespaces/\(namespace)/secrets/mem\($0)-synced") != nil }
        }
        let burst = ContinuousClock.now - start
        try await Task.sleep(for: .seconds(2))
        let loaded = ProcessFacts(pid: process.processIdentifier).residentMiB
        bench.report.add("controller: 1 000 SPCs created -> all Secrets present", burst.milliseconds, unit: "ms")
        bench.report.add("controller RSS with 1 100 SPCs synced", loaded, floor: idle, unit: "MiB")
    }

    static func spc(name: String, secret: String, refreshInterval: String?) -> [String: Any] {
        var spec: [String: Any] = [
            "provider": AzureKeyVaultProvider.name,
            "parameters": [
                "keyvaultName": "kv1", "tenantId": Bench.tenant,
                "objects": "array:\n  - |\n    objectName: \(secret)\n    objectType: secret\n    objectAlias: value\n",
            ],
            "secretObjects": [["secretName": name + "-synced", "type": "Opaque", "data": [["objectName": "value", "key": "value"]]]],
            "sync": ["serviceAccountName": "app", "nodePublishSecretRef": ["name": "kv-creds"]],
        ]
        if let refreshInterval { spec["refreshInterval"] = refreshInterval }
        return ["apiVersion": "secrets-store.csi.x-k8s.io/v1", "kind": "SecretProviderClass", "metadata": ["name": name], "spec": spec]
    }

    static func base64(_ text: String) -> String { Data(text.utf8).base64EncodedString() }

    static func waitFor(_ what: String, limit: Duration = .seconds(30), process: Process, log: String, _ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + limit
        while !condition() {
            guard process.isRunning else { throw FloorError(message: "the controller exited; see \(log)") }
            if ContinuousClock.now > deadline {
                let kept = "/tmp/csi-bench-controller-\(getpid()).log"
                try? FileManager.default.copyItem(atPath: log, toPath: kept)
                throw FloorError(message: "timed out waiting for \(what); the controller's log is in \(kept)")
            }
            try await Task.sleep(for: .microseconds(500))
        }
    }
}
