import Foundation
import SecretsStoreTesting
import Testing

/// The Go forms of every boolean flag reach the parser: the hand-written `booleanFlagNames` /
/// `invertedBooleanFlagNames` lists of the commands are checked against the flags the commands declare, as
/// ArgumentParser describes them (`--experimental-dump-help`). A flag missing from its list would be refused
/// with "does not take any value".
@Suite("Go-form booleans of every declared flag", .timeLimit(.minutes(2)))
struct GoBooleanFlagsTests {
    /// Each subcommand, with arguments that make it stop at validation, and the text of that refusal.
    static let refusals: [String: (arguments: [String], message: String)] = [
        "serve": (["--rotation-poll-interval=0"], "--rotation-poll-interval 0: not a positive duration"),
        "controller": (["--rotation-poll-interval=0"], "--rotation-poll-interval 0: not a positive duration"),
        "provider": (["azure", "--healthz-timeout=0"], "--healthz-timeout 0: not a positive duration"),
        "render": (["-f", "/nonexistent", "--timeout=0"], "--timeout 0: not a positive duration"),
    ]

    /// The long names of the flags (options without a value) each subcommand declares, `--no-<name>`
    /// inversions and help left out.
    static func declaredFlags() async throws -> [String: [String]] {
        let data = try await onOwnThread {
            let (process, output) = try DriverProcessTests.start(["--experimental-dump-help"])
            let data = output.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return data
        }
        let root = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let command = try #require(root["command"] as? [String: Any])
        let subcommands = try #require(command["subcommands"] as? [[String: Any]])
        var flags: [String: [String]] = [:]
        for subcommand in subcommands {
            let name = try #require(subcommand["commandName"] as? String)
            let arguments = subcommand["arguments"] as? [[String: Any]] ?? []
            let names = arguments.filter { $0["kind"] as? String == "flag" }
                .compactMap { ($0["names"] as? [[String: Any]])?.compactMap { $0["name"] as? String } }
                .flatMap { $0 }
                .filter { $0 != "help" && $0 != "h" }
            flags[name] = names.filter { !($0.hasPrefix("no-") && names.contains(String($0.dropFirst(3)))) }
        }
        return flags
    }

    @Test("--name=false and --name=T of every declared flag parse, on every subcommand that serves or checks")
    func everyDeclaredFlagTakesTheGoForm() async throws {
        let flags = try await Self.declaredFlags()
        for (subcommand, refusal) in Self.refusals {
            let names = try #require(flags[subcommand], "\(subcommand) is described")
            #expect(!names.isEmpty, "\(subcommand) declares flags")
            for name in names {
                for value in ["false", "T"] {
                    let arguments = [subcommand, "--\(name)=\(value)"] + refusal.arguments
                    // A process run to its end blocks a thread: not one of the two cooperative ones.
                    let text = try await onOwnThread {
                        let (process, output) = try DriverProcessTests.start(arguments)
                        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                        process.waitUntilExit()
                        return text
                    }
                    #expect(text.contains(refusal.message), "\(subcommand) --\(name)=\(value): \(text.prefix(200))")
                }
            }
        }
    }
}
