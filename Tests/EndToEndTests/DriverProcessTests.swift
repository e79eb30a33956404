import CSIProtocol
import Foundation
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
                "--log-format-json=true",
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

            let (second, secondOutput) = try Self.start(arguments)
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
            let log = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            #expect(log.contains("\"msg\":\"listening\""))
            #expect(log.contains("\"msg\":\"stopped\""))
            try await api.shutdown()
        }
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
