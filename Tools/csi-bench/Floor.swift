import Foundation
import NIOHTTP1
import SecretsStoreAzure

#if canImport(Glibc)
import Glibc
#endif

/// The least work any driver must do for one publish of N Key Vault secrets: N HTTPS GETs to the emulator on
/// a kept-alive connection with a token already in hand, one tmpfs mount, N file writes into a timestamped
/// directory, and the `..data` link swap. Straight syscalls and one HTTP client; no Kubernetes, no gRPC.
struct PublishFloor {
    let http: AzureHTTP
    let vaultURL: String
    let token: String

    /// Gets a token once (client credentials), as a kept-alive client would have it cached.
    static func make(http: AzureHTTP, emulatorURL: String, tenant: String, clientID: String, secret: String) async throws -> PublishFloor {
        let body = FormEncoding.encode([
            ("grant_type", "client_credentials"), ("client_id", clientID), ("client_secret", secret),
            ("scope", "https://vault.azure.net/.default"),
        ])
        let response = try await http.send(
            .POST,
            emulatorURL + "/\(tenant)/oauth2/v2.0/token",
            headers: [("Content-Type", "application/x-www-form-urlencoded")],
            body: body
        )
        let text = String(decoding: response.body, as: UTF8.self)
        guard response.status == 200, let start = text.range(of: "\"access_token\":\"") else {
            throw FloorError(message: "token request failed: HTTP \(response.status)")
        }
        let token = String(text[start.upperBound...].prefix { $0 != "\"" })
        return PublishFloor(http: http, vaultURL: emulatorURL + "/kv1", token: token)
    }

    /// The HTTPS part: `objects` GETs of secrets `s0`…, sequentially, on the pooled connection.
    func fetch(objects: Int) async throws -> [[UInt8]] {
        var bodies: [[UInt8]] = []
        for index in 0..<objects {
            let response = try await http.send(
                .GET,
                vaultURL + "/secrets/s\(index)/?api-version=7.4",
                headers: [("Authorization", "Bearer " + token)]
            )
            guard response.status == 200 else { throw FloorError(message: "GET s\(index): HTTP \(response.status)") }
            bodies.append(response.body)
        }
        return bodies
    }

    /// The file-system part: mount (when `mount`), write `files` under a timestamped directory, swap `..data`,
    /// and link each name to it.
    static func write(_ files: [[UInt8]], into target: String, mount shouldMount: Bool, generation: Int) throws {
        if shouldMount {
            let flags = UInt(MS_NOSUID) | UInt(MS_NODEV) | UInt(MS_NOEXEC)
            guard mount("tmpfs", target, "tmpfs", flags, "mode=0755") == 0 else { throw FloorError(errno: errno, "mount") }
        }
        let directory = "..floor_\(generation)"
        guard mkdir(target + "/" + directory, 0o755) == 0 else { throw FloorError(errno: errno, "mkdir") }
        for (index, contents) in files.enumerated() {
            let descriptor = open(target + "/" + directory + "/secret-\(index)", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            guard descriptor >= 0 else { throw FloorError(errno: errno, "open") }
            let written = contents.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
            close(descriptor)
            guard written == contents.count else { throw FloorError(errno: errno, "write") }
        }
        guard symlink(directory, target + "/..data_tmp") == 0 else { throw FloorError(errno: errno, "symlink") }
        guard rename(target + "/..data_tmp", target + "/..data") == 0 else { throw FloorError(errno: errno, "rename") }
        for index in files.indices {
            guard symlink("..data/secret-\(index)", target + "/secret-\(index)") == 0 else { throw FloorError(errno: errno, "symlink") }
        }
    }

    /// Undoes `write` (not timed).
    static func clean(_ target: String, mounted: Bool, files: Int, generation: Int) {
        if mounted {
            umount2(target, 0)
            return
        }
        for index in 0..<files {
            unlink(target + "/secret-\(index)")
            unlink(target + "/..floor_\(generation)/secret-\(index)")
        }
        unlink(target + "/..data")
        rmdir(target + "/..floor_\(generation)")
    }
}

struct FloorError: Error, CustomStringConvertible {
    var message: String
    init(message: String) { self.message = message }
    init(errno code: Int32, _ call: String) { message = "\(call): \(String(cString: strerror(code)))" }
    var description: String { message }
}
