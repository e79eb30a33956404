import SecretsStoreLinux

#if canImport(Glibc)
import Glibc
#endif

/// Runs `body` with a fresh directory under /tmp (short, so Unix socket paths fit in 107 bytes), removed after.
package func withTemporaryDirectory<T>(
    _ body: (String) async throws -> T
) async throws -> T {
    let fileSystem = PosixFileSystem()
    let path = try fileSystem.makeUniqueDirectory(in: "/tmp", prefix: "ssc-")
    defer { try? fileSystem.removeItem(at: path) }
    return try await body(path)
}

/// Whether the tests run as root (real tmpfs mounts are possible).
package var runningAsRoot: Bool { geteuid() == 0 }
