/// A seeded pseudo-random generator (SplitMix64): one seed gives one sequence, on every platform and every Swift
/// release, so a fuzz run is replayed by its seed alone. Not for anything secret.
package struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    /// The generator whose whole sequence `seed` fixes.
    package init(seed: UInt64) {
        state = seed
    }

    /// The next 64 bits of the sequence.
    package mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var mixed = state
        mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
        mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
        return mixed ^ (mixed >> 31)
    }

    /// A uniformly drawn value in `0..<bound`; `bound` must be positive.
    package mutating func below(_ bound: Int) -> Int {
        precondition(bound > 0, "SplitMix64.below needs a positive bound")
        let range = UInt64(bound)
        // Draws under `threshold` (2^64 mod range) would favour small results; drawing again removes the bias.
        let threshold = (0 &- range) % range
        while true {
            let draw = next()
            if draw >= threshold { return Int(draw % range) }
        }
    }

    /// A value in `range` (inclusive), uniformly drawn.
    package mutating func within(_ range: ClosedRange<Int>) -> Int {
        range.lowerBound + below(range.upperBound - range.lowerBound + 1)
    }

    /// True with probability `numerator / denominator`.
    package mutating func chance(_ numerator: Int, in denominator: Int) -> Bool {
        below(denominator) < numerator
    }

    /// One element of a non-empty array.
    package mutating func element<Element>(of array: [Element]) -> Element {
        array[below(array.count)]
    }
}
