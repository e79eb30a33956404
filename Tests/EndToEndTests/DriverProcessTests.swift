import CSIProtocol
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import GRPCCore
import GRPCNIOTransportHTTP2
import SecretsStoreTesting
import SwiftProtobuf
import Testing

/// The built `secrets-store-csi-driver` binary, run as a process with upstream-style flags.
@Suite("The driver process", .serialized)
struct DriverProcessTests {
    /// The executable SwiftPM built next to the test bundle.
    static var binary: String {
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for directory in [bundle, bundle.deletingLastPathComponent()] {
            let candidate = directory.appendingPathComponent("secrets-store-csi-driver").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return ".build/debug/secrets-store-csi-driver"
    }

    static func start(_ arguments: [String]) throws -> (Process, Pipe) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        let output = Pipe()
        process.standardError = output
        process.standardOutput = output
        try process.run()
        return (process, output)
    }

    static func waitForSocket(_ path: String) async throws {
        for _ in 0..<500 where !FileManager.default.fileExists(atPath: path) {
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    static func kubeconfig(server: String, in directory: String) throws -> String {
        let path = directory + "/kubeconfig"
        try """
        apiVersion: v1
        kind: Config
        current-context: test
        clusters: [{name: fake, cluster: {server: "\(server)"}}]
        users: [{name: driver, user: {token: driver-token}}]
        contexts: [{name: test, context: {cluster: fake, user: driver}}]
        """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test("Go-style flags, Probe over the socket, a second instance refused, SIGTERM stops it cleanly")
    func servesAndShutsDown() async throws {
        try await withTemporaryDirectory { (root: String) async throws in
            let api = try await FakeKubernetesAPIServer(requiredToken: "driver-token")
            let socket = root + "/csi.sock"
            let arguments = [
                "-endpoint=unix://" + socket, "--nodeid=node-a", "-v=5", "--enable-secret-rotation=false",
                "--rotation-poll-interval=2m", "--provider-volume=" + root, "--kubeconfig=" + (try Self.kubeconfig(server: api.url, in: root)),
                "--log-format-json=true", "--metrics-addr=127.0.0.1:0",
            ]
            let (process, output) = try Self.start(arguments)
            try await Self.waitForSocket(socket)

            try await withGRPCClient(
                transport: .http2NIOPosix(target: .unixDomainSocket(path: socket, authority: "localhost"), transportSecurity: .plaintext)
            ) { (client: GRPCClient<HTTP2ClientTransport.Posix>) async throws in
                let identity = Csi_V1_Identity.Client(wrapping: client)
                #expect(try await identity.probe(Csi_V1_ProbeRequest()).ready.value)
                let node = Csi_V1_Node.Client(wrapping: client)
                #expect(try await node.nodeGetInfo(Csi_V1_NodeGetInfoRequest()).nodeID == "node-a")
            }

            // /metrics and /healthz on the metrics listener (port from the log line).
            let (port, earlyLog) = try await Self.metricsPort(output)
            let metrics = try Self.httpGet("http://127.0.0.1:\(port)/metrics")
            #expect(metrics.status == 200)
            #expect(metrics.body.contains("node_unpublish_total{os_type=\"linux\"} 0"))
            let health = try Self.httpGet("http://127.0.0.1:\(port)/healthz")
            #expect(health.status == 200 && health.body == "ok")

            let (second, secondOutput) = try Self.start(arguments + ["--metrics-addr=127.0.0.1:0"])
            second.waitUntilExit()
            #expect(second.terminationStatus != 0)
            let secondText = String(decoding: secondOutput.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(secondText.contains("another driver instance"))
            #expect(FileManager.default.fileExists(atPath: socket))

            process.terminate()  // SIGTERM
            process.waitUntilExit()
            #expect(process.terminationReason == .exit)
            #expect(process.terminationStatus == 0)
            #expect(!FileManager.default.fileExists(atPath: socket))
            let log = earlyLog + String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(log.contains("\"msg\":\"listening\""))
            #expect(log.contains("\"msg\":\"stopped\""))
            try await api.shutdown()
        }
    }

    /// Reads log lines until the metrics listener reports its address.
    static func metricsPort(_ output: Pipe) async throws -> (Int, String) {
        var seen = ""
        for _ in 0..<200 {
            let data = output.fileHandleForReading.availableData
            seen += String(decoding: data, as: UTF8.self)
            for line in seen.split(separator: "\n") where line.contains("metrics listening") {
                if let range = line.range(of: "\"metrics.address\":\""),
                    let end = line[range.upperBound...].firstIndex(of: "\""),
                    let port = Int(line[range.upperBound..<end].split(separator: ":").last ?? "")
                {
                    return (port, seen)
                }
            }
        }
        throw CocoaError(.fileReadUnknown)
    }

    /// A plain HTTP/1.1 GET over a TCP socket (no client library needed for two lines of protocol).
    static func httpGet(_ url: String) throws -> (status: Int, body: String) {
        let parts = url.dropFirst("http://".count).split(separator: "/", maxSplits: 1)
        let hostPort = parts[0].split(separator: ":")
        let path = "/" + (parts.count > 1 ? parts[1] : "")
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(socket) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(hostPort[1])!).bigEndian
        inet_pton(AF_INET, String(hostPort[0]), &address.sin_addr)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw CocoaError(.fileReadNoPermission) }
        let request = "GET \(path) HTTP/1.1\r\nHost: \(parts[0])\r\nConnection: close\r\n\r\n"
        _ = request.withCString { send(socket, $0, strlen($0), 0) }
        var response = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = recv(socket, &buffer, buffer.count, 0)
            if count <= 0 { break }
            response += buffer[0..<count]
        }
        let text = String(decoding: response, as: UTF8.self)
        let status = Int(text.split(separator: " ").dropFirst().first ?? "") ?? 0
        let body = text.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n")
        return (status, body)
    }

    @Test func versionAndBadFlags() throws {
        let (version, versionOutput) = try Self.start(["--version"])
        version.waitUntilExit()
        let text = String(decoding: versionOutput.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(version.terminationStatus == 0)
        #expect(text.contains("\"BuildVersion\""))

        let (bad, badOutput) = try Self.start(["--rotation-poll-interval=soon", "--kubeconfig=/nonexistent"])
        bad.waitUntilExit()
        #expect(bad.terminationStatus != 0)
        #expect(String(decoding: badOutput.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).contains("--rotation-poll-interval"))
    }
}
