import Foundation

/// A small, fast, seedable generator (SplitMix64), so sampling is reproducible from a seed
/// and its state can be saved with an experiment.
public struct SeededRandom: RandomNumberGenerator, Sendable, Codable, Hashable {
    public private(set) var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform double in [0, 1).
    mutating func unit() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// A standard normal sample (Box–Muller).
    mutating func normal() -> Double {
        let u1 = max(unit(), 1e-300), u2 = unit()
        return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }

    /// A generator derived from this seed and a label, independent of draws made so far.
    static func derived(from seed: UInt64, _ label: UInt64) -> SeededRandom {
        var mixer = SeededRandom(seed: seed ^ (label &* 0xD6E8_FEB8_6659_FD93))
        return SeededRandom(seed: mixer.next())
    }
}

