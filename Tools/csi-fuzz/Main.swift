import ArgumentParser
import Foundation
import SecretsStoreFuzzing

/// `csi-fuzz`: deterministic mutation fuzzing of the driver's input parsers and validators.
///
/// Prints the seed first and one line per target as it finishes. A property violation stops the process with the
/// violated property and the input (base64); a run that finds nothing exits 0, so a crash is the only finding.
@main
struct FuzzCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "csi-fuzz",
        abstract: "Fuzz the driver's parsers and validators with mutated realistic inputs.",
        discussion: """
            The same --seed and --iterations replay a run exactly. A property violation crashes the process and \
            prints the input as base64; add it to the target's regressions once fixed.
            """
    )

    @Option(help: "Mutated inputs per target.")
    var iterations = 100_000

    @Option(help: "Seed of the run (default: taken from the clock and printed, so the run can be replayed).")
    var seed: UInt64?

    @Flag(help: "List the targets and exit.")
    var list = false

    @Argument(help: "Targets to run (default: all).")
    var targets: [String] = []

    func validate() throws {
        guard iterations >= 0 else { throw ValidationError("--iterations must not be negative") }
        let unknown = targets.filter { FuzzTarget.named($0) == nil }
        guard unknown.isEmpty else {
            let known = FuzzTarget.all.map(\.name).joined(separator: ", ")
            throw ValidationError("unknown target \(unknown.joined(separator: ", ")); known: \(known)")
        }
    }

    func run() {
        if list {
            let width = FuzzTarget.all.map(\.name.count).max() ?? 0
            for target in FuzzTarget.all {
                emit(target.name.padding(toLength: width + 2, withPad: " ", startingAt: 0) + target.summary)
            }
            return
        }
        let seed = seed ?? UInt64(Date().timeIntervalSince1970 * 1_000_000)
        let selected = targets.isEmpty ? FuzzTarget.all : targets.compactMap(FuzzTarget.named)
        let names = targets.isEmpty ? "" : " " + targets.joined(separator: " ")
        emit("csi-fuzz seed \(seed) (replay: csi-fuzz --seed \(seed) --iterations \(iterations)\(names))")
        let width = FuzzTarget.all.map(\.name.count).max() ?? 0
        for target in selected {
            let report = Fuzzer.run(target: target, iterations: iterations, seed: seed)
            emit(
                report.target.padding(toLength: width + 2, withPad: " ", startingAt: 0)
                    + "iterations=\(report.iterations) accepted=\(report.accepted) rejected=\(report.rejected) "
                    + "distinct-errors=\(report.distinctErrors) elapsed=\(seconds(report.elapsed))"
            )
        }
    }

    /// Writes a line at once, so the lines before a crash are never lost in a buffer.
    private func emit(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    private func seconds(_ duration: Duration) -> String {
        let milliseconds = duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
        let fraction = String(milliseconds % 1000)
        return "\(milliseconds / 1000).\(String(repeating: "0", count: 3 - fraction.count))\(fraction)s"
    }
}
