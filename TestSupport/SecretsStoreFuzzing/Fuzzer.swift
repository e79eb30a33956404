#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What production code made of one input.
package enum FuzzOutcome: Sendable, Equatable {
    /// The input was taken as valid and every property held.
    case accepted
    /// The input was refused with this message (a refusal is a correct answer, not a finding).
    case rejected(String)
}

/// One piece of production code under fuzzing.
///
/// `check` feeds the bytes to the production code path and asserts the target's properties with `precondition`,
/// so a violation stops the process the way a crash in production would. It must be deterministic: the same bytes
/// always give the same outcome.
package struct FuzzTarget: Sendable {
    /// What `csi-fuzz` calls the target on its command line (e.g. `objects-yaml`); unique within ``all``.
    package var name: String
    /// One line for `csi-fuzz --list`.
    package var summary: String
    /// Realistic valid inputs; each is accepted by `check`.
    package var seeds: [[UInt8]]
    /// Inputs that once broke a property; `check` must survive them (they may be rejected).
    package var regressions: [[UInt8]]
    /// Format-specific tokens, added to ``Mutator/commonTokens``.
    package var dictionary: [[UInt8]]
    /// The longest input the target is given.
    package var maxInputLength: Int
    /// Feeds one input to the production code: returns the outcome, or stops the process on a broken property.
    package var check: @Sendable ([UInt8]) -> FuzzOutcome

    /// A target; traps when `seeds` is empty.
    package init(
        name: String,
        summary: String,
        seeds: [[UInt8]],
        regressions: [[UInt8]] = [],
        dictionary: [[UInt8]] = [],
        maxInputLength: Int = 64 * 1024,
        check: @escaping @Sendable ([UInt8]) -> FuzzOutcome
    ) {
        precondition(!seeds.isEmpty, "fuzz target \(name) needs at least one seed")
        self.name = name
        self.summary = summary
        self.seeds = seeds
        self.regressions = regressions
        self.dictionary = dictionary
        self.maxInputLength = maxInputLength
        self.check = check
    }
}

/// The tally of one run.
package struct FuzzReport: Sendable {
    /// The target's ``FuzzTarget/name``.
    package var target: String
    /// The run's seed as given (the generator also mixes in a hash of the target's name).
    package var seed: UInt64
    /// Mutated inputs checked (seeds and regressions not counted).
    package var iterations: Int
    /// Mutated inputs accepted.
    package var accepted: Int
    /// Mutated inputs rejected; `accepted + rejected == iterations`.
    package var rejected: Int
    /// How many different rejection messages were seen (each cut to its first 160 characters).
    package var distinctErrors: Int
    /// How long the whole run took, seeds and regressions included.
    package var elapsed: Duration
}

/// Runs mutation fuzzing: deterministic for a given target, iteration count and seed, so a failing run is
/// replayed by passing the same three again.
package enum Fuzzer {
    /// The most accepted mutants kept as further parents next to the seeds.
    package static let mutantPoolSize = 256
    /// Accepted mutants longer than this many times the longest seed (and than 4 KiB) are not kept as parents, so
    /// the corpus does not drift towards ever larger inputs; long inputs are still made afresh by the mutator.
    package static let parentGrowthLimit = 4

    /// Checks the target's regressions and seeds, then `iterations` mutants. Returns only if no property broke.
    package static func run(target: FuzzTarget, iterations: Int, seed: UInt64) -> FuzzReport {
        let clock = ContinuousClock()
        let start = clock.now
        for input in target.regressions + target.seeds {
            _ = target.check(input)
        }
        var rng = SplitMix64(seed: seed ^ stableHash(target.name))
        let mutator = Mutator(dictionary: Mutator.commonTokens + target.dictionary, maxLength: target.maxInputLength)
        // Seeds first, then accepted mutants; a full pool replaces a random mutant, never a seed.
        var corpus = target.seeds
        let longestParent = max(4096, parentGrowthLimit * (target.seeds.map(\.count).max() ?? 0))
        var accepted = 0
        var rejected = 0
        var errors = Set<String>()
        for _ in 0..<iterations {
            let parent = rng.element(of: corpus)
            let input = mutator.mutate(parent, corpus: corpus, using: &rng)
            switch target.check(input) {
            case .accepted:
                accepted += 1
                guard input != parent, input.count <= longestParent else { break }
                if corpus.count < target.seeds.count + mutantPoolSize {
                    corpus.append(input)
                } else if rng.chance(1, in: 4) {
                    corpus[target.seeds.count + rng.below(mutantPoolSize)] = input
                }
            case .rejected(let message):
                rejected += 1
                errors.insert(String(message.prefix(160)))
            }
        }
        return FuzzReport(
            target: target.name,
            seed: seed,
            iterations: iterations,
            accepted: accepted,
            rejected: rejected,
            distinctErrors: errors.count,
            elapsed: clock.now - start
        )
    }

    /// FNV-1a of the name, so each target draws its own stream from one seed.
    static func stableHash(_ name: String) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in name.utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01B3
        }
        return hash
    }
}

/// Stops the process with `message` and the offending input when `condition` is false: a property violation is
/// reported exactly like a crash in production, with what is needed to turn it into a regression seed.
func require(
    _ condition: @autoclosure () -> Bool,
    _ message: @autoclosure () -> String,
    target: String,
    input: [UInt8]
) {
    guard !condition() else { return }
    preconditionFailure(
        "fuzz target \(target): property violated: \(message())\ninput (\(input.count) bytes, base64): \(Data(input).base64EncodedString())"
    )
}
