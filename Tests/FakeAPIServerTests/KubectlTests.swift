import Foundation
import SecretsStoreCoreTesting
import SecretsStoreTesting
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// kubectl from PATH (or /usr/bin, /usr/local/bin), if there is one.
private let kubectlOnPath: String? = {
    let directories = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init) + ["/usr/bin", "/usr/local/bin"]
    return directories.map { $0 + "/kubectl" }.first { FileManager.default.isExecutableFile(atPath: $0) }
}()

/// The real kubectl against the fake: discovery, apply (create, then patch), get, get --watch, create token.
@Suite("kubectl against the fake API server", .enabled(if: kubectlOnPath != nil, "kubectl is not on PATH"), .timeLimit(.minutes(3)))
struct KubectlTests {
    static var kubectl: String? { kubectlOnPath }

    /// A kubectl run: pid and the files its output goes to.
    struct Run {
        var pid: pid_t
        var output: String

        var text: String { (try? String(contentsOfFile: output, encoding: .utf8)) ?? "" }

        /// Waits for exit; the exit status.
        func wait() -> Int32 {
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            return (status >> 8) & 0xff
        }

        func kill() {
            _ = Glibc.kill(pid, SIGKILL)
            _ = wait()
        }
    }

    /// Starts kubectl with `arguments`, stdout and stderr into one temporary file.
    static func spawn(_ kubectl: String, _ arguments: [String], directory: String) throws -> Run {
        let output = directory + "/out-\(UUID().uuidString)"
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let words: [String] = [kubectl] + arguments
        let argv: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let variables: [String] = ["HOME=" + directory, "PATH=/usr/bin:/bin"]
        let environment: [UnsafeMutablePointer<CChar>?] = variables.map { strdup($0) } + [nil]
        defer { environment.forEach { free($0) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, kubectl, &actions, nil, argv, environment)
        guard result == 0 else { throw SocketError(call: "posix_spawn", code: result) }
        return Run(pid: pid, output: output)
    }

    @Test func kubectlAppliesGetsWatchesAndCreatesTokens() async throws {
        let kubectl = try #require(Self.kubectl)
        // No required token: this kubectl build (v1.32.4-dispatcher) sent no Authorization header over plain http.
        let server = try await FakeKubernetesAPIServer(tokenIssuer: { ns, sa, audiences, _ in
            "issued.\(ns).\(sa).\(audiences.joined(separator: ","))"
        })
        let directory = NSTemporaryDirectory() + "kubectl-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let kubeconfig = directory + "/config"
        try """
            apiVersion: v1
            kind: Config
            clusters: [{name: fake, cluster: {server: "\(server.url)"}}]
            users: [{name: u, user: {token: kube-token}}]
            contexts: [{name: c, context: {cluster: fake, user: u}}]
            current-context: c
            """.write(toFile: kubeconfig, atomically: true, encoding: .utf8)
        func run(_ arguments: [String]) async throws -> (Int32, String) {
            let process = try Self.spawn(kubectl, ["--kubeconfig", kubeconfig, "--cache-dir", directory + "/cache"] + arguments, directory: directory)
            let status = try await blocking { process.wait() }
            return (status, process.text)
        }
        do {
            let manifest = directory + "/spc.yaml"
            func writeManifest(provider: String) throws {
                try """
                    apiVersion: secrets-store.csi.x-k8s.io/v1
                    kind: SecretProviderClass
                    metadata: {name: spc, namespace: ns}
                    spec: {provider: \(provider), parameters: {keyvaultName: kv}}
                    ---
                    apiVersion: v1
                    kind: Secret
                    metadata: {name: s, namespace: ns}
                    stringData: {k: \(provider)}
                    """.write(toFile: manifest, atomically: true, encoding: .utf8)
            }
            try writeManifest(provider: "azure")
            let first = try await run(["apply", "--validate=false", "-f", manifest])
            #expect(first.0 == 0, "\(first.1) \(server.requests.map { "\($0.method) \($0.path)" })")
            try writeManifest(provider: "vault")
            let second = try await run(["apply", "--validate=false", "-f", manifest])
            #expect(second.0 == 0, "\(second.1) \(server.requests.map { "\($0.method) \($0.path) \($0.contentType ?? "")" })")
            let spcPath = "/apis/secrets-store.csi.x-k8s.io/v1/namespaces/ns/secretproviderclasses/spc"
            #expect((server.object(at: spcPath)?["spec"] as? [String: Any])?["provider"] as? String == "vault")
            #expect((server.object(at: "/api/v1/namespaces/ns/secrets/s")?["stringData"] as? [String: Any])?["k"] as? String == "vault")
            #expect(server.requests.contains { $0.method == "PATCH" && $0.path.hasSuffix("/secretproviderclasses/spc") })

            let get = try await run(["get", "secretproviderclasses", "-n", "ns", "-o", "json"])
            #expect(get.0 == 0, "\(get.1)")
            #expect(get.1.contains("\"provider\": \"vault\""), "\(get.1)")

            let watch = try Self.spawn(kubectl, ["--kubeconfig", kubeconfig, "--cache-dir", directory + "/cache", "get", "secretproviderclasses", "-n", "ns", "--watch", "-o", "json"], directory: directory)
            do {
                try await eventually("kubectl's watch open", within: .seconds(30)) { server.openWatchCount > 0 }
                server.seed(path: "/apis/secrets-store.csi.x-k8s.io/v1/namespaces/ns/secretproviderclasses", object: [
                    "apiVersion": "secrets-store.csi.x-k8s.io/v1", "kind": "SecretProviderClass",
                    "metadata": ["name": "watched"], "spec": ["provider": "gcp"],
                ])
                try await eventually("the watched class in kubectl's output", within: .seconds(30)) { watch.text.contains("\"watched\"") }
            } catch {
                watch.kill()
                throw error
            }
            watch.kill()

            server.seed(path: "/api/v1/namespaces/ns/serviceaccounts", object: ["metadata": ["name": "sa"]])
            let token = try await run(["create", "token", "sa", "-n", "ns", "--audience=x"])
            let tokenContentType = server.requests.last { $0.path.hasSuffix("/token") }?.contentType ?? "none"
            // kubectl posts the TokenRequest as Kubernetes protobuf; the fake reads it and answers JSON.
            #expect(tokenContentType.hasPrefix("application/vnd.kubernetes.protobuf"))
            #expect(token.0 == 0, "\(token.1)")
            #expect(token.1.trimmingCharacters(in: .whitespacesAndNewlines) == "issued.ns.sa.x")
            #expect(server.tokenRequests.last?.audiences == ["x"])
        } catch {
            try await server.shutdown()
            throw error
        }
        try await server.shutdown()
    }
}
