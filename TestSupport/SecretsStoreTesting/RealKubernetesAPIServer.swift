import SecretsStoreCommandLine
import Crypto
import Foundation
import Logging
import NIOHTTP1
import SecretsStoreCore
import SecretsStoreApplication
import SecretsStoreKubernetes
import Synchronization

#if canImport(Glibc)
import Glibc
#endif
// sockaddr_in's members may be vended by NIO's C shim, depending on the order a clean build imports modules in
// (MemberImportVisibility then wants that module imported here).
#if canImport(CNIOLinux)
import CNIOLinux
#endif

/// A real Kubernetes API server (etcd + kube-apiserver v1.36, both on loopback) for the tests that only need an
/// API server that works; the faults a real one cannot be made to produce stay with ``FakeKubernetesAPIServer``.
///
/// One instance per test process, started by the first ``shared()`` and reused by every test after it (start-up
/// takes about 5 s). Each test works in its own namespace (``withNamespace(_:)``), so tests running in parallel do
/// not see each other's objects, though cluster-scoped ones (CSIDrivers, CRDs) and cluster-wide lists are shared.
///
/// - Binaries: `$KUBEBUILDER_ASSETS` names the directory with `kube-apiserver` and `etcd` when set; otherwise
///   `<package>/../shared/kube/install.sh` is run and the directory it prints is used. Without either,
///   ``unavailableReason`` says what is missing and the tests that need the server disable themselves with it.
/// - Serving: the API server's own self-signed certificate (`--cert-dir`, SANs 127.0.0.1), which clients trust as
///   their only CA (``certificateAuthorityPEM``); HTTPS only.
/// - Authentication: a static token file (`--token-auth-file`) with two users: `admin` in group `system:masters`
///   (``adminToken``) and `viewer` in no group (``unprivilegedToken``: authenticated, but RBAC lets it do nothing,
///   so every request of it is a real 403). `--authorization-mode Node,RBAC`. Service account tokens are signed
///   with a P-256 key made at start (TokenRequest works).
/// - Resources: the driver's CRDs (SecretProviderClass, SecretProviderClassPodStatus), applied at start with the
///   product's own `crds apply` (``CRDApply``) and waited for until they are served.
/// - What there is not: no controller manager (no garbage collection, no namespace deletion, no `default`
///   ServiceAccount: ``withNamespace(_:)`` creates that one), no scheduler, no nodes.
///
/// Processes: etcd and kube-apiserver each run under a small `/bin/sh` keeper, spawned in a new session
/// (`POSIX_SPAWN_SETSID`: terminal signals do not reach it) whose standard input is one end of a Unix socket pair,
/// the lifeline; only this process holds the other end (`SOCK_CLOEXEC`: no other child inherits it). The keeper
/// starts the component in the background, writes its pid, and blocks reading the lifeline; when that read ends
/// (this process closed its end, exited, or was killed, even with SIGKILL: the kernel closes the descriptor), it
/// kills the component with SIGKILL by that pid, reaps it and removes its directory. At a normal exit an `atexit`
/// handler also kills both components by pid (still unreaped, so the pid cannot have been reused), closes the
/// lifelines and waits up to 5 s for the keepers to remove the directories. Nothing is left behind either way.
package final class RealKubernetesAPIServer: Sendable {
    /// `https://127.0.0.1:<port>`.
    package let url: String
    /// The API server's serving certificate and the CA that signed it, PEM: what clients trust.
    package let certificateAuthorityPEM: [UInt8]
    /// Bearer token of `admin` (group `system:masters`). A credential: never put it in a message or a log.
    package let adminToken: String
    /// Bearer token of `viewer`: authenticated, no RBAC rights (every resource request is 403 Forbidden).
    package let unprivilegedToken: String

    private init(url: String, certificateAuthorityPEM: [UInt8], adminToken: String, unprivilegedToken: String) {
        self.url = url
        self.certificateAuthorityPEM = certificateAuthorityPEM
        self.adminToken = adminToken
        self.unprivilegedToken = unprivilegedToken
    }

    // MARK: Using it

    /// The one server of this process, started on first use.
    ///
    /// - Throws: ``StartError`` when the binaries cannot be found or the server does not come up (the same error
    ///   for every caller of the process).
    package static func shared() async throws -> RealKubernetesAPIServer {
        try await instance.value
    }

    /// Why the server cannot be started on this machine (what is missing), or `nil` when it can. For
    /// `.enabled(if: RealKubernetesAPIServer.unavailableReason == nil, …)`.
    package static let unavailableReason: String? = {
        switch locateAssets() {
        case .success: return nil
        case .failure(let error): return error.description
        }
    }()

    /// A configuration for this server with `token` (by default ``adminToken``) as the credentials.
    package func configuration(token: String? = nil) -> KubernetesConfiguration {
        KubernetesConfiguration(server: url, credentials: .token(token ?? adminToken), certificateAuthorityPEM: certificateAuthorityPEM)
    }

    /// A kubeconfig for this server (CA inline) whose user authenticates with `user` (YAML fields of a kubeconfig
    /// user, e.g. `tokenFile: /path`); by default the admin token.
    package func kubeconfig(user: String? = nil) -> String {
        """
        apiVersion: v1
        kind: Config
        current-context: real
        clusters:
        - name: real
          cluster:
            server: \(url)
            certificate-authority-data: \(Data(certificateAuthorityPEM).base64EncodedString())
        users:
        - name: u
          user:
            \(user ?? "token: \(adminToken)")
        contexts:
        - name: real
          context: {cluster: real, user: u}
        """
    }

    /// Runs `body` with a new client for this server (admin unless `token` says otherwise), shut down afterwards.
    package func withClient<T>(token: String? = nil, _ body: (RESTKubernetesClient) async throws -> T) async throws -> T {
        let client = try RESTKubernetesClient(configuration: configuration(token: token))
        let result: T
        do {
            result = try await body(client)
        } catch {
            try? await client.shutdown()
            throw error
        }
        try await client.shutdown()
        return result
    }

    /// Runs `body` with an admin client and a namespace of its own (new, random name, with a `default`
    /// ServiceAccount so pods can be created). The namespace is not deleted: nothing here would finish deleting
    /// it, and the server goes with the process.
    package func withNamespace<T>(_ body: (RESTKubernetesClient, String) async throws -> T) async throws -> T {
        try await withClient { client in
            let namespace = try await createNamespace(client)
            return try await body(client, namespace)
        }
    }

    /// Creates a namespace with a random name starting with `prefix`, and its `default` ServiceAccount.
    package func createNamespace(_ client: RESTKubernetesClient, prefix: String = "t-") async throws -> String {
        let name = prefix + Self.randomName()
        try await client.create("/api/v1/namespaces", ["apiVersion": "v1", "kind": "Namespace", "metadata": ["name": name]])
        try await client.create(
            "/api/v1/namespaces/\(name)/serviceaccounts",
            ["apiVersion": "v1", "kind": "ServiceAccount", "metadata": ["name": "default"]]
        )
        return name
    }

    /// Ten random lowercase letters and digits: a DNS label for test objects.
    package static func randomName() -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789")
        return String((0..<10).map { _ in alphabet.randomElement()! })
    }

    // MARK: Errors

    /// Why the server could not be found or started (or answered a helper unexpectedly).
    package struct StartError: Error, CustomStringConvertible {
        /// What went wrong; names files and commands, never a token.
        package var description: String
    }

    // MARK: Start-up

    private static let instance = Task<RealKubernetesAPIServer, any Error> {
        var lastError: (any Error)?
        // A port found free can be taken before the component binds it: one more try with new ports.
        for _ in 0..<2 {
            do {
                return try await start()
            } catch {
                lastError = error
            }
        }
        throw lastError!
    }

    /// The directory with `kube-apiserver` and `etcd`, without running anything yet.
    private enum Assets {
        case directory(String)
        case installScript(String)
    }

    /// `<package root>`, from this file's path (Sources/SecretsStoreTesting/<file>).
    private static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    private static func locateAssets() -> Result<Assets, StartError> {
        let files = FileManager.default
        if let directory = ProcessInfo.processInfo.environment["KUBEBUILDER_ASSETS"], !directory.isEmpty {
            for binary in ["kube-apiserver", "etcd"] where !files.isExecutableFile(atPath: directory + "/" + binary) {
                return .failure(StartError(description: "KUBEBUILDER_ASSETS=\(directory) has no executable \(binary)"))
            }
            return .success(.directory(directory))
        }
        let script = URL(fileURLWithPath: packageRoot + "/../shared/kube/install.sh").standardizedFileURL.path
        guard files.isExecutableFile(atPath: script) else {
            return .failure(
                StartError(description: "no real Kubernetes API server: KUBEBUILDER_ASSETS is not set and \(script) does not exist")
            )
        }
        return .success(.installScript(script))
    }

    /// Runs the install script (when that is the source) and returns the directory with the binaries.
    private static func assetsDirectory() throws -> String {
        switch locateAssets() {
        case .failure(let error):
            throw error
        case .success(.directory(let directory)):
            return directory
        case .success(.installScript(let script)):
            let errors = FileManager.default.temporaryDirectory.appendingPathComponent("sscsi-kube-install-\(randomName()).log").path
            _ = FileManager.default.createFile(atPath: errors, contents: nil)
            defer { try? FileManager.default.removeItem(atPath: errors) }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: script)
            let output = Pipe()
            process.standardOutput = output
            process.standardError = FileHandle(forWritingAtPath: errors)
            process.standardInput = FileHandle.nullDevice
            try process.run()
            let printed = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            let directory = printed.split(separator: "\n").last.map(String.init) ?? ""
            guard process.terminationStatus == 0, !directory.isEmpty else {
                let stderr = (try? String(contentsOfFile: errors, encoding: .utf8)) ?? ""
                throw StartError(description: "\(script) failed (exit \(process.terminationStatus)): \(stderr.suffix(2000))")
            }
            for binary in ["kube-apiserver", "etcd"] where !FileManager.default.isExecutableFile(atPath: directory + "/" + binary) {
                throw StartError(description: "\(script) printed \(directory), which has no executable \(binary)")
            }
            return directory
        }
    }

    private static func start() async throws -> RealKubernetesAPIServer {
        let assets = try await onOwnThread { try assetsDirectory() }  // may run the install script to its end
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("sscsi-realapi-\(randomName())").path
        // etcd syncs every write: on tmpfs that costs nothing.
        let shm = FileManager.default.isWritableFile(atPath: "/dev/shm") ? "/dev/shm" : FileManager.default.temporaryDirectory.path
        let etcdDirectory = shm + "/sscsi-realapi-etcd-\(randomName())"
        let apiDirectory = base
        var keepers: [Keeper] = []
        do {
            for directory in [etcdDirectory, apiDirectory] {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            }
            return try await launch(assets: assets, etcdDirectory: etcdDirectory, apiDirectory: apiDirectory, keepers: &keepers)
        } catch {
            // Whatever came up goes now, not at exit.
            for keeper in keepers { keeper.stop() }
            for directory in [etcdDirectory, apiDirectory] where keepers.allSatisfy({ $0.directory != directory }) {
                try? FileManager.default.removeItem(atPath: directory)
            }
            throw error
        }
    }

    private static func launch(assets: String, etcdDirectory: String, apiDirectory: String, keepers: inout [Keeper]) async throws -> RealKubernetesAPIServer {

        let adminToken = randomToken()
        let unprivilegedToken = randomToken()
        try Data("\(adminToken),admin,admin-uid,\"system:masters\"\n\(unprivilegedToken),viewer,viewer-uid\n".utf8)
            .write(to: URL(fileURLWithPath: apiDirectory + "/tokens.csv"))
        let signingKey = P256.Signing.PrivateKey()
        try Data(signingKey.pemRepresentation.utf8).write(to: URL(fileURLWithPath: apiDirectory + "/sa.key"))
        try Data(signingKey.publicKey.pemRepresentation.utf8).write(to: URL(fileURLWithPath: apiDirectory + "/sa.pub"))
        chmod(apiDirectory + "/tokens.csv", 0o600)
        chmod(apiDirectory + "/sa.key", 0o600)

        let clientPort = try freePort()
        let peerPort = try freePort()
        let apiPort = try freePort()
        let etcd = try Keeper.spawn(
            directory: etcdDirectory,
            command: [
                assets + "/etcd", "--data-dir", etcdDirectory + "/data", "--name", "default",
                "--listen-client-urls", "http://127.0.0.1:\(clientPort)", "--advertise-client-urls", "http://127.0.0.1:\(clientPort)",
                "--listen-peer-urls", "http://127.0.0.1:\(peerPort)", "--initial-advertise-peer-urls", "http://127.0.0.1:\(peerPort)",
                "--initial-cluster", "default=http://127.0.0.1:\(peerPort)", "--logger", "zap", "--log-level", "warn",
            ]
        )
        keepers.append(etcd)
        let deadline = ContinuousClock.now + .seconds(90)
        while !canConnect(port: clientPort) {
            try etcd.checkRunning(what: "etcd")
            guard ContinuousClock.now < deadline else { throw StartError(description: "etcd did not listen within 90 s: \(etcd.logTail())") }
            try await Task.sleep(for: .milliseconds(50))
        }

        let api = try Keeper.spawn(
            directory: apiDirectory,
            command: [
                assets + "/kube-apiserver", "--etcd-servers", "http://127.0.0.1:\(clientPort)",
                "--bind-address", "127.0.0.1", "--secure-port", "\(apiPort)", "--advertise-address", "127.0.0.1",
                "--endpoint-reconciler-type", "none", "--service-cluster-ip-range", "10.96.0.0/24",
                "--cert-dir", apiDirectory + "/certs", "--token-auth-file", apiDirectory + "/tokens.csv",
                "--authorization-mode", "Node,RBAC",
                "--service-account-issuer", "https://kubernetes.default.svc",
                "--service-account-key-file", apiDirectory + "/sa.pub", "--service-account-signing-key-file", apiDirectory + "/sa.key",
                "--api-audiences", "https://kubernetes.default.svc", "--profiling=false",
            ]
        )
        keepers.append(api)
        let url = "https://127.0.0.1:\(apiPort)"

        // Readiness is public (`system:public-info-viewer`): probed without credentials, so no token goes to a
        // server whose certificate is not checked yet.
        let probe = try RESTKubernetesClient(configuration: KubernetesConfiguration(server: url, insecureSkipTLSVerify: true), requestTimeout: .seconds(5))
        do {
            while true {
                // A connection refused is retried by the HTTP client until its connect timeout: knock first.
                if canConnect(port: apiPort), (try? await probe.send(.GET, "/readyz", logger: quiet)) != nil { break }
                try api.checkRunning(what: "kube-apiserver")
                try etcd.checkRunning(what: "etcd")
                guard ContinuousClock.now < deadline else {
                    throw StartError(description: "kube-apiserver was not ready within 90 s: \(api.logTail())")
                }
                try await Task.sleep(for: .milliseconds(100))
            }
        } catch {
            try? await probe.shutdown()
            throw error
        }
        try await probe.shutdown()

        let certificate = try Data(contentsOf: URL(fileURLWithPath: apiDirectory + "/certs/apiserver.crt"))
        let server = RealKubernetesAPIServer(
            url: url,
            certificateAuthorityPEM: Array(certificate),
            adminToken: adminToken,
            unprivilegedToken: unprivilegedToken
        )
        let report = await CRDApply.run(kubernetes: .configuration(server.configuration()), logger: quiet)
        guard report.exitCode == 0 else {
            throw StartError(description: "crds apply failed: \(report.failures.joined(separator: "; "))")
        }
        // A new CRD is served a moment after it is created (once Established).
        try await server.withClient { client in
            for resource in ["secretproviderclasses", "secretproviderclasspodstatuses"] {
                while (try? await client.send(.GET, "/apis/secrets-store.csi.x-k8s.io/v1/\(resource)?limit=1", logger: quiet)) == nil {
                    guard ContinuousClock.now < deadline else { throw StartError(description: "\(resource) were not served within 90 s") }
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
        }
        return server
    }

    private static let quiet = Logger(label: "real-apiserver", factory: { _ in SwiftLogNoOpLogHandler() })

    private static func randomToken() -> String {
        (0..<4).map { _ in String(UInt64.random(in: .min ... .max), radix: 16) }.joined()
    }

    /// A TCP port on 127.0.0.1 that nothing listened on a moment ago.
    private static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw StartError(description: "socket: errno \(errno)") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        // inet_pton rather than `sin_addr.s_addr`: which module vends in_addr's member depends on the build order.
        _ = inet_pton(AF_INET, "127.0.0.1", &address.sin_addr)
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                bind(fd, socketAddress, length) == 0 && getsockname(fd, socketAddress, &length) == 0
            }
        }
        guard bound else { throw StartError(description: "bind 127.0.0.1:0: errno \(errno)") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Whether something accepts TCP connections on 127.0.0.1:`port`.
    private static func canConnect(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        // inet_pton rather than `sin_addr.s_addr`: which module vends in_addr's member depends on the build order.
        _ = inet_pton(AF_INET, "127.0.0.1", &address.sin_addr)
        address.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }
}

// MARK: Process keeping

/// One component (etcd or kube-apiserver) under its `/bin/sh` keeper (see ``RealKubernetesAPIServer``).
private struct Keeper: Sendable {
    /// The keeper: `$1` the directory (log, pid, data; removed at the end), the rest the command.
    static let script = """
        dir=$1; shift
        "$@" >"$dir/log" 2>&1 </dev/null &
        child=$!
        echo "$child" >"$dir/pid.new" && mv "$dir/pid.new" "$dir/pid"
        read -r _
        kill -KILL "$child" 2>/dev/null
        wait "$child" 2>/dev/null
        rm -rf "$dir"
        """

    /// What the `atexit` handler needs: our end of each keeper's lifeline, the component's pid, its directory.
    struct Kept: Sendable {
        var lifeline: Int32
        var pid: pid_t
        var directory: String
    }

    static let kept = Mutex<[Kept]>([])
    static let registerAtExit: Void = {
        atexit {
            let all = Keeper.kept.withLock { $0 }
            // By pid first: the keeper reaps the component only after its lifeline closes, so the pid is still ours.
            for one in all where one.pid > 0 { kill(one.pid, SIGKILL) }
            for one in all { close(one.lifeline) }
            let deadline = ContinuousClock.now + .seconds(5)
            while all.contains(where: { access($0.directory, F_OK) == 0 }), ContinuousClock.now < deadline {
                usleep(20_000)
            }
        }
    }()

    /// glibc's `POSIX_SPAWN_SETSID` (spawn.h, `__USE_GNU`, not imported): the child calls `setsid()`.
    static let spawnSetSID: Int32 = 0x80

    var directory: String
    var pid: pid_t
    var lifeline: Int32

    /// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34 and later), which the Glibc module does not import;
    /// `nil` on an older C library, where descriptors without CLOEXEC are inherited.
    private static let closeFrom3: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32)? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32).self)
    }()

    /// Spawns the keeper of `command` in a new session, its stdin one end of a lifeline whose other end only this
    /// process holds, and waits for the component's pid.
    static func spawn(directory: String, command: [String]) throws -> Keeper {
        _ = registerAtExit
        // A socket pair rather than a pipe: it can be made close-on-exec atomically (`pipe2` is not imported).
        var fds: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
            throw RealKubernetesAPIServer.StartError(description: "socketpair: errno \(errno)")
        }
        // Registered before the spawn: whatever happens next, our end is closed at exit.
        kept.withLock { $0.append(Kept(lifeline: fds[1], pid: 0, directory: directory)) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fds[0], 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        // Nothing else of this process reaches the keeper, etcd or the API server: a descriptor opened without
        // CLOEXEC by another test at that moment (a CSI client's socket, say) would otherwise stay open in them for
        // the whole run, and a server waiting for that connection to close at shutdown would wait forever.
        Self.closeFrom3?(&actions, 3)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(Self.spawnSetSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let arguments = ["sscsi-kube-keeper", "-c", script, "sscsi-kube-keeper", directory] + command
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for argument in argv { free(argument) } }
        var keeperPID: pid_t = 0
        let spawned = posix_spawn(&keeperPID, "/bin/sh", &actions, &attributes, &argv, environ)
        close(fds[0])
        guard spawned == 0 else { throw RealKubernetesAPIServer.StartError(description: "posix_spawn /bin/sh: errno \(spawned)") }

        let pidFile = directory + "/pid"
        let deadline = ContinuousClock.now + .seconds(10)
        while true {
            if let text = try? String(contentsOfFile: pidFile, encoding: .utf8), let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
                kept.withLock { list in
                    if let index = list.firstIndex(where: { $0.lifeline == fds[1] }) { list[index].pid = pid }
                }
                return Keeper(directory: directory, pid: pid, lifeline: fds[1])
            }
            guard ContinuousClock.now < deadline else {
                throw RealKubernetesAPIServer.StartError(description: "the keeper of \(command[0]) wrote no pid within 10 s")
            }
            usleep(10_000)
        }
    }

    /// Kills the component by pid and closes the lifeline: the keeper reaps it and removes its directory.
    func stop() {
        kill(pid, SIGKILL)
        Keeper.kept.withLock { list in list.removeAll { $0.lifeline == lifeline } }
        close(lifeline)
    }

    /// Throws when the component has exited (a zombie its keeper has not reaped yet, or gone).
    func checkRunning(what: String) throws {
        let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
        // `pid (comm) S …`: the state follows the last `)`.
        let state = stat.lastIndex(of: ")").map { stat[stat.index($0, offsetBy: 2)...].first } ?? nil
        if state == nil || state == "Z" || state == "X" {
            throw RealKubernetesAPIServer.StartError(description: "\(what) exited: \(logTail())")
        }
    }

    /// The last lines the component wrote.
    func logTail() -> String {
        let log = (try? String(contentsOfFile: directory + "/log", encoding: .utf8)) ?? "(no log)"
        return String(log.suffix(3000))
    }
}

// MARK: JSON through the product's client

extension RESTKubernetesClient {
    private static let quiet = Logger(label: "real-apiserver", factory: { _ in SwiftLogNoOpLogHandler() })

    /// `POST`s `object` (JSON) to `collection`; the object as created.
    @discardableResult
    package func create(_ collection: String, _ object: [String: Any]) async throws -> [String: Any] {
        let body = try JSONSerialization.data(withJSONObject: object)
        return try Self.jsonObject(try await send(.POST, collection, body: Array(body), logger: Self.quiet))
    }

    /// `GET`s the object at `path`; `nil` when it does not exist.
    package func object(at path: String) async throws -> [String: Any]? {
        do {
            return try Self.jsonObject(try await send(.GET, path, logger: Self.quiet))
        } catch KubernetesClientError.notFound {
            return nil
        }
    }

    /// `PATCH`es the object at `path` with a JSON merge patch; the object as written.
    @discardableResult
    package func mergePatch(_ path: String, _ patch: [String: Any]) async throws -> [String: Any] {
        let body = try JSONSerialization.data(withJSONObject: patch)
        return try Self.jsonObject(try await send(.PATCH, path, body: Array(body), contentType: Self.mergePatch, logger: Self.quiet))
    }

    /// `DELETE`s the object at `path`.
    package func delete(_ path: String) async throws {
        _ = try await send(.DELETE, path, logger: Self.quiet)
    }

    private static func jsonObject(_ bytes: [UInt8]) throws -> [String: Any] {
        guard let object = try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else {
            throw RealKubernetesAPIServer.StartError(description: "the API server answered with something other than a JSON object")
        }
        return object
    }
}
