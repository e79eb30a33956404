import SecretsStoreFuzzing
import Testing

/// A bounded, fixed-seed run of every fuzz target: the seeds stay meaningful (accepted), the mutants reach both
/// sides of each parser, and no property breaks (a violation crashes the test process).
@Suite("Fuzzing")
struct FuzzTests {
    static let iterations = 3000
    static let seed: UInt64 = 0x5EC2_E75_0F_C51

    @Test("bounded run", arguments: FuzzTarget.all.map(\.name))
    func boundedRun(_ name: String) throws {
        let target = try #require(FuzzTarget.named(name))
        for (index, seed) in target.seeds.enumerated() {
            #expect(target.check(seed) == .accepted, "seed \(index) of \(name) is no longer accepted")
        }
        let report = Fuzzer.run(target: target, iterations: Self.iterations, seed: Self.seed)
        #expect(report.iterations == Self.iterations)
        #expect(report.accepted + report.rejected == Self.iterations)
        #expect(report.accepted > 0, "no mutant of \(name) was accepted: the mutations only test the first check")
        #expect(report.rejected > 0, "no mutant of \(name) was rejected: the mutations do not reach the checks")
    }

    @Test("the same seed replays the same run")
    func replay() throws {
        let target = try #require(FuzzTarget.named("mount-response"))
        let first = Fuzzer.run(target: target, iterations: 300, seed: 42)
        let second = Fuzzer.run(target: target, iterations: 300, seed: 42)
        #expect(first.accepted == second.accepted)
        #expect(first.distinctErrors == second.distinctErrors)
    }

    @Test("the mutator is deterministic and bounded")
    func mutator() {
        let mutator = Mutator(dictionary: Mutator.commonTokens, maxLength: 512)
        var first = SplitMix64(seed: 7)
        var second = SplitMix64(seed: 7)
        let input = Array("array:\n  - |\n    objectName: a\n    objectType: secret\n".utf8)
        for _ in 0..<500 {
            let a = mutator.mutate(input, corpus: [input], using: &first)
            let b = mutator.mutate(input, corpus: [input], using: &second)
            #expect(a == b)
            #expect(a.count <= 512)
        }
    }
}
