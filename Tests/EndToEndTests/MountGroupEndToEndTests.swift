#if canImport(Glibc)
import Glibc
#endif
import CSIProtocol
import Foundation
import SecretsStoreCore
import SecretsStoreCoreTesting
import SecretsStoreLinux
import SecretsStoreTesting
import Testing

/// util-linux's setpriv (Essential on Debian), which switches the child to an unprivileged uid and groups.
private let setpriv = "/usr/bin/setpriv"

/// Runs `cat path` as uid 1000 / gid 1000 with exactly `groups` as supplementary groups (none when empty),
/// through util-linux's setpriv; returns its exit status and standard output. Spawned with posix_spawn rather
/// than Foundation's Process, which crashed (memcpy inside Process.run) while other suites opened and closed
/// thousands of sockets in this process.
private func catAsUser1000(_ path: String, groups: [UInt32]) throws -> (status: Int32, output: String) {
    let groupArgument = groups.isEmpty ? "--clear-groups" : "--groups=" + groups.map(String.init).joined(separator: ",")
    let arguments = [setpriv, "--reuid=1000", "--regid=1000", groupArgument, "--", "/bin/cat", path]
    var fds: [Int32] = [-1, -1]
    guard pipe(&fds) == 0 else { throw POSIXError(.EMFILE) }
    // Close-on-exec, so children other tests spawn meanwhile do not inherit them (dup2 clears it on fd 1).
    for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
    let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
    defer { for argument in argv { free(argument) } }
    var pid: pid_t = 0
    let spawned = posix_spawn(&pid, setpriv, &actions, nil, argv, environ)
    close(fds[1])
    guard spawned == 0 else {
        close(fds[0])
        throw POSIXError(POSIXErrorCode(rawValue: spawned) ?? .EINVAL)
    }
    var output: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let count = read(fds[0], &buffer, buffer.count)
        if count > 0 { output += buffer[..<count] } else if count < 0 && errno == EINTR { continue } else { break }
    }
    close(fds[0])
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    // WIFEXITED / WEXITSTATUS by hand (macros are not imported): a signal is reported as 128 + its number.
    let exitStatus = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    return (exitStatus, String(decoding: output, as: UTF8.self))
}

/// Creates the target directory as kubelet would, with it and every directory from `root` down traversable
/// by anyone (0755 whatever the umask; the temporary root is mkdtemp's 0700), so that only the volume's own
/// permissions decide what uid 1000 may read.
private func makeTraversableTarget(_ target: String, under root: String) throws {
    try PosixFileSystem().createDirectories(at: target, permissions: 0o755)
    var directory = root
    chmod(directory, 0o755)
    for component in target.dropFirst(root.count).split(separator: "/") {
        directory += "/" + component
        chmod(directory, 0o755)
    }
}

/// The pod's fsGroup through the whole driver as root: real socket, real assembly, real tmpfs and chown, and
/// a real unprivileged process reading the files.
@Suite(
    "fsGroup end to end (root only)",
    .serialized,
    .timeLimit(.minutes(3)),
    .enabled(
        if: runningAsRoot && FileManager.default.isExecutableFile(atPath: setpriv),
        "needs root (real tmpfs, chown, switching to uid 1000) and /usr/bin/setpriv; skipped"
    )
)
struct MountGroupEndToEndTests {
    /// One file per mode the test cares about; `config` is 0640 as the provider sends it.
    static func response(generation: String) -> V1alpha1_MountResponse {
        var response = V1alpha1_MountResponse()
        let files: [(String, Int32)] = [("username", 0o644), ("password", 0o600), ("config", 0o640), ("certs/tls.key", 0o400)]
        for (path, mode) in files {
            var file = V1alpha1_File()
            file.path = path
            file.mode = mode
            file.contents = Data("\(path)-\(generation)".utf8)
            response.files.append(file)
            var version = V1alpha1_ObjectVersion()
            version.id = "secret/\(path)"
            version.version = generation
            response.objectVersion.append(version)
        }
        return response
    }

    static let paths = ["username", "password", "config", "certs/tls.key"]

    @Test("uid 1000 with supplementary group 2000 reads every file, before and after a rotation; without it, not a 0640 file")
    func nonRootApplicationReadsItsSecrets() async throws {
        try await withDriver(
            rotation: RotationPolicy(enabled: true, interval: .milliseconds(1)),
            providerBehaviour: .respond(Self.response(generation: "v1"))
        ) { driver in
            driver.seedSecretProviderClass()
            let target = driver.targetPath()
            try makeTraversableTarget(target, under: driver.root)

            var request = driver.publishRequest()
            request.volumeCapability.mount.volumeMountGroup = "2000"
            _ = try await driver.node.nodePublishVolume(request)

            #expect(try PosixFileSystem().ownerGroup(of: target) == 2000)
            let mountLine = try PosixFileSystem.readText(at: "/proc/self/mountinfo").split(separator: "\n")
                .first { $0.contains(" " + target + " ") }
            #expect(mountLine?.contains("gid=2000") == true)

            for path in Self.paths {
                let read = try catAsUser1000(target + "/" + path, groups: [2000])
                #expect(read.status == 0, "\(path)")
                #expect(read.output == "\(path)-v1")
            }
            // A uid without the group reaches the volume (a 0644 file reads) but not a 0640 or 0600 one.
            #expect(try catAsUser1000(target + "/username", groups: []).status == 0)
            #expect(try catAsUser1000(target + "/config", groups: []).status != 0)
            #expect(try catAsUser1000(target + "/password", groups: []).status != 0)
            #expect(try catAsUser1000(target + "/config", groups: [3000]).status != 0)

            driver.provider.setBehaviour(.respond(Self.response(generation: "v2")))
            try await Task.sleep(for: .milliseconds(5))
            let outcomes = await driver.publisher.rotate(logger: driver.logs.logger())
            #expect(outcomes[target] == .refreshed(changed: true))
            for path in Self.paths {
                let read = try catAsUser1000(target + "/" + path, groups: [2000])
                #expect(read.status == 0, "\(path) after rotation")
                #expect(read.output == "\(path)-v2")
            }
            #expect(try catAsUser1000(target + "/config", groups: []).status != 0)

            _ = try await driver.node.nodeUnpublishVolume(driver.unpublishRequest())
            #expect(try await !driver.isMounted(target))
        }
    }

    @Test("without volume_mount_group the files stay root's with the provider's modes")
    func withoutGroupNothingChanges() async throws {
        try await withDriver(providerBehaviour: .respond(Self.response(generation: "v1"))) { driver in
            driver.seedSecretProviderClass()
            let target = driver.targetPath()
            try makeTraversableTarget(target, under: driver.root)
            _ = try await driver.node.nodePublishVolume(driver.publishRequest())
            let fileSystem = PosixFileSystem()
            #expect(try fileSystem.ownerGroup(of: target) == 0)
            #expect(try fileSystem.permissions(of: target + "/password") == 0o600)
            #expect(try fileSystem.permissions(of: target + "/config") == 0o640)
            #expect(try fileSystem.ownerGroup(of: target + "/config") == 0)
            #expect(try catAsUser1000(target + "/config", groups: [2000]).status != 0)
            #expect(try catAsUser1000(target + "/username", groups: [2000]).status == 0)
            _ = try await driver.node.nodeUnpublishVolume(driver.unpublishRequest())
        }
    }
}
