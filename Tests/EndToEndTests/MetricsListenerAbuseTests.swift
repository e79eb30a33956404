import Foundation
#if canImport(Glibc)
import Glibc
#endif
import SecretsStoreCoreTesting
import SecretsStoreTesting
import Testing

/// The metrics and health listener of the real driver process under the two attacks issue #10 measured: an
/// unauthenticated `POST /metrics` that announces 4 GB and keeps streaming, and 3 000 idle connections. The
/// driver's own RSS (from `/proc/<pid>/status`, so no other suite's allocations count) stays within a few MiB
/// of idle, and `/healthz` keeps answering.
@Suite("The metrics listener of the driver process, abused", .serialized, .timeLimit(.minutes(3)))
struct MetricsListenerAbuseTests {
    /// Starts the driver with its listener on a free loopback port and runs `body` with its pid and port.
    static func withDriverProcess(_ body: (Int32, Int) async throws -> Void) async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let api = try await FakeKubernetesAPIServer(requiredToken: "driver-token")
            let socket = root + "/csi.sock"
            let (process, output) = try DriverProcessTests.start([
                "--endpoint=unix://" + socket, "--nodeid=node-a", "--provider-volume=" + root,
                "--kubeconfig=" + (try DriverProcessTests.kubeconfig(server: api.url, in: root)), "--metrics-addr=127.0.0.1:0",
                "--log-format-json=true",
            ])
            let (port, _) = try await DriverProcessTests.metricsPort(output)
            do {
                try await body(process.processIdentifier, port)
            } catch {
                try? await terminateAndWait(process)  // SIGTERM, bounded, waited on a thread of its own
                try? await api.shutdown()
                throw error
            }
            try await terminateAndWait(process)  // SIGTERM, bounded
            #expect(process.terminationStatus == 0)
            try await api.shutdown()
        }
    }

    /// The driver's RSS once it settled (the largest of three readings 100 ms apart, after a first scrape).
    static func settledRSS(_ pid: Int32, port: Int) async throws -> Int {
        _ = try await blocking { try fetch("/metrics", port: port) }
        var largest = 0
        for _ in 0..<3 {
            try await Task.sleep(for: .milliseconds(100))
            largest = max(largest, residentBytes(pid: pid))
        }
        return largest
    }

    @Test("a POST announcing 4 GB is refused unread: the driver's RSS stays flat and /healthz answers")
    func streamedBody() async throws {
        try await Self.withDriverProcess { pid, port in
            let before = try await Self.settledRSS(pid, port: port)
            let outcome = try await blocking { () throws -> (sent: Int, peak: Int) in
                let socket = try LoopbackSocket(port: port, timeout: .seconds(2))
                try socket.send("POST /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4000000000\r\n\r\n")
                let chunk = [UInt8](repeating: 0x41, count: 64 << 10)
                var sent = 0
                var peak = 0
                // Bounded: at most 256 MiB or 4 096 chunks; stops as soon as the driver closes the connection.
                for index in 0..<4096 {
                    guard let count = socket.sendSome(chunk), count > 0 else { break }
                    sent += count
                    if index % 64 == 0 { peak = max(peak, residentBytes(pid: pid)) }
                }
                return (sent, max(peak, residentBytes(pid: pid)))
            }
            let health = try await blocking { try fetch("/healthz", port: port) }
            let after = residentBytes(pid: pid)
            print("driver RSS, streamed 4 GB POST: before \(mebibytes(before)), peak \(mebibytes(outcome.peak)), after \(mebibytes(after)); the client sent \(mebibytes(outcome.sent)) before the driver closed")
            #expect(health.status == 200 && health.text == "ok")
            #expect(outcome.sent < 64 << 20, "the driver read the body")
            #expect(max(outcome.peak, after) - before < 16 << 20)
        }
    }

    @Test(
        "3 000 idle connections: the driver's RSS stays within a few MiB and /healthz answers while they are held",
        .enabled(if: raiseOpenFileLimit(to: 3_000 + 256) >= 3_000 + 64, "RLIMIT_NOFILE cannot be raised to the 3 064 this test needs")
    )
    func idleConnections() async throws {
        try await Self.withDriverProcess { pid, port in
            let before = try await Self.settledRSS(pid, port: port)
            let outcome = try await blocking { () throws -> (held: Int, peak: Int, statuses: [Int]) in
                var held: [LoopbackSocket] = []
                var statuses: [Int] = []
                var peak = 0
                for index in 0..<3_000 {
                    let socket = try LoopbackSocket(port: port, timeout: .seconds(2))
                    // A third of them start a request head and never finish it.
                    if index % 3 == 0 { _ = socket.sendSome(Array("GET /metrics HTTP/1.1\r\nHost: x\r\n".utf8)) }
                    held.append(socket)
                    if index % 500 == 499 {
                        statuses.append(try fetch("/healthz", port: port).status)
                        peak = max(peak, residentBytes(pid: pid))
                    }
                }
                statuses.append(try fetch("/healthz", port: port).status)
                return (held.count, max(peak, residentBytes(pid: pid)), statuses)
            }
            let after = residentBytes(pid: pid)
            print("driver RSS, 3 000 idle connections: before \(mebibytes(before)), peak while held \(mebibytes(outcome.peak)), after \(mebibytes(after))")
            #expect(outcome.held == 3_000)
            #expect(outcome.statuses == Array(repeating: 200, count: 7), "\(outcome.statuses)")
            #expect(outcome.peak - before < 16 << 20)
        }
    }
}
