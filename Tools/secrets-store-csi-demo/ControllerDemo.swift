import Foundation
import KeyVaultEmulator
import Logging
import SecretsStoreAzure
import SecretsStoreCore
import SecretsStoreCoreTesting
import SecretsStoreApplication
import SecretsStoreKubernetes
import SecretsStoreTesting
import Yams

/// The demo's second part: the sync controller (``ControllerAssembly``, as `secrets-store-csi-driver
/// controller` runs it) against a fake API server over HTTP and the same emulator. An SPC with `spec.sync`
/// gets its Secret before any pod exists; its status is printed; a change in the vault reaches the Secret
/// within `spec.refreshInterval`.
enum ControllerDemo {
    static func run(emulator: KeyVaultEmulator, spcPath: String, logs: LogCapture) async throws {
        let api = try await FakeKubernetesAPIServer(tokenIssuer: { namespace, serviceAccount, audiences, seconds in
            ServiceAccountToken.make(
                subject: "system:serviceaccount:\(namespace):\(serviceAccount)",
                audience: audiences.first ?? "",
                expiresIn: TimeInterval(seconds)
            )
        })
        guard let document = try Yams.load(yaml: String(contentsOfFile: spcPath, encoding: .utf8)) as? [String: Any],
            let metadata = document["metadata"] as? [String: Any], let name = metadata["name"] as? String
        else { throw CocoaError(.fileReadCorruptFile) }
        let namespace = metadata["namespace"] as? String ?? "default"
        api.seed(path: "/api/v1/namespaces/\(namespace)/serviceaccounts", object: ["metadata": ["name": "demo"]])
        api.seed(
            path: "/apis/storage.k8s.io/v1/csidrivers",
            object: ["metadata": ["name": "secrets-store.csi.k8s.io"], "spec": ["tokenRequests": [["audience": "api://AzureADTokenExchange"]]]]
        )
        let controller = try await ControllerAssembly(
            configuration: ControllerConfiguration(
                kubernetes: .configuration(KubernetesConfiguration(server: api.url)),
                providerDirectories: [],
                builtInAzure: .init(
                    overrides: AzureEndpointOverrides(
                        keyVaultURLTemplate: emulator.baseURL + "/{vault}",
                        authorityHost: emulator.baseURL + "/",
                        caBundlePEM: Array(emulator.certificates.caCertificatePEM.utf8)
                    )
                ),
                defaultInterval: .seconds(120),
                namespace: nil,
                driverName: "secrets-store.csi.k8s.io",
                tokenAudiences: nil,
                leaderElection: .init(namespace: "kube-system", name: "secrets-store-csi-driver-controller"),
                metricsAddress: "127.0.0.1:0"
            ),
            logger: logs.logger(level: .info)
        )
        let secretName = ((document["spec"] as? [String: Any])?["secretObjects"] as? [[String: Any]])?.first?["secretName"] as? String ?? name
        let secretPath = "/api/v1/namespaces/\(namespace)/secrets/\(secretName)"
        let spcPathInAPI = "/apis/secrets-store.csi.x-k8s.io/v1/namespaces/\(namespace)/secretproviderclasses/\(name)"
        try await controller.withRunning { _ in
            Demo.say("sync controller running against a fake API server on \(api.url) (leader election on a Lease)")
            emulator.resetCounters()
            let start = ContinuousClock.now
            api.seed(path: "/apis/secrets-store.csi.x-k8s.io/v1/namespaces/\(namespace)/secretproviderclasses", object: document)
            Demo.say("applied SecretProviderClass \(namespace)/\(name) with spec.sync (serviceAccountName demo, refreshInterval 5s); no pod exists")
            try await waitFor { api.object(at: secretPath) != nil }
            Demo.say("Secret \(namespace)/\(secretName) exists after \(Demo.milliseconds(ContinuousClock.now - start)) ms, before any pod: keys \(keys(api.object(at: secretPath)))")
            try await waitFor { ready(api.object(at: spcPathInAPI)) != nil }
            printStatus(api.object(at: spcPathInAPI))
            let synced = objects(api.object(at: spcPathInAPI))
            emulator.setSecret(vault: "kv1", name: "db-pass", value: "controller-rotated")
            Demo.say("set a new version of db-pass in the vault; waiting for the next refresh (spec.refreshInterval 5s)")
            let rotated = ContinuousClock.now
            try await waitFor(limit: .seconds(20)) { value(api.object(at: secretPath), "password") == "controller-rotated" }
            Demo.say("Secret \(secretName) password now: controller-rotated (after \(Demo.milliseconds(ContinuousClock.now - rotated)) ms)")
            // The controller writes the Secret first, then the class's status: wait for the status of this refresh.
            try await waitFor { objects(api.object(at: spcPathInAPI)) != synced }
            printStatus(api.object(at: spcPathInAPI))
        }
        try await api.shutdown()
    }

    static func waitFor(limit: Duration = .seconds(15), _ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + limit
        while !condition() {
            guard ContinuousClock.now < deadline else { throw CancellationError() }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    static func keys(_ secret: [String: Any]?) -> String {
        ((secret?["data"] as? [String: Any])?.keys.sorted() ?? []).joined(separator: ", ")
    }

    static func value(_ secret: [String: Any]?, _ key: String) -> String? {
        guard let encoded = (secret?["data"] as? [String: Any])?[key] as? String, let data = Data(base64Encoded: encoded) else { return nil }
        return String(decoding: data, as: UTF8.self)
    }

    static func ready(_ spc: [String: Any]?) -> [String: Any]? {
        ((spc?["status"] as? [String: Any])?["conditions"] as? [[String: Any]])?.first { $0["type"] as? String == "Ready" }
    }

    /// `status.objects` of the class as `id@version` (the version's first eight characters).
    static func objects(_ spc: [String: Any]?) -> [String] {
        ((spc?["status"] as? [String: Any])?["objects"] as? [[String: Any]] ?? []).map {
            "\($0["id"] ?? "")@\(String(describing: $0["version"] ?? "").prefix(8))"
        }
    }

    static func printStatus(_ spc: [String: Any]?) {
        let status = spc?["status"] as? [String: Any] ?? [:]
        let ready = ready(spc) ?? [:]
        Demo.say(
            "SPC status: Ready=\(ready["status"] ?? "?") reason \(ready["reason"] ?? "?") (\(ready["message"] ?? "")), lastSyncTime \(status["lastSyncTime"] ?? "-"), objects \(objects(spc).joined(separator: ", ")), syncedSecrets \(status["syncedSecrets"] ?? [])"
        )
    }
}
