import Foundation
import StarlingCodec
import Testing

/// Gathered encoding: large arrays referenced in place of a copy must give exactly the bytes of
/// an ordinary encoding, in every container shape, and stay valid after the value is gone.
@Suite("Encoded parts (gathered arrays)")
struct EncodedPartsTests {
    func checkpoint(seed: Float) -> Checkpoint {
        Checkpoint(
            step: 12,
            model: [
                "dense": Tensor(shape: [300, 100], values: (0..<30_000).map { Float($0) * seed }),
                "bias": Tensor(shape: [10], values: (0..<10).map(Float.init)),
                "embedding": Tensor(shape: [5_000], values: (0..<5_000).map { -Float($0) }),
            ],
            optimizer: .init(momentum: (0..<9_000).map { Double($0) / 7 },
                             counts: ContiguousArray((0..<4_000).map(UInt32.init)),
                             mask: [true, false, true],
                             blob: Data((0..<20_000).map { UInt8(truncatingIfNeeded: $0) })))
    }

    func concatenated(_ parts: EncodedParts) -> [UInt8] {
        parts.withParts { $0.reduce(into: [UInt8]()) { $0 += $1 } }
    }

    @Test("nested arrays, Data and ContiguousArray gather and join to the plain encoding")
    func nestedContainers() throws {
        let value = checkpoint(seed: 0.5)
        let plain = try BinaryEncoder().encode(value)
        var parts = EncodedParts()
        try BinaryEncoder().encode(value, into: &parts, gatheringAtLeast: 1024)
        #expect(!parts.isContiguous)
        #expect(parts.count == plain.count)
        #expect(parts.joined() == plain)
        #expect(concatenated(parts) == plain)
        #expect(try BinaryDecoder().decode(Checkpoint.self, from: parts.joined()) == value)
    }

    @Test("values under the threshold are copied: the parts are one contiguous block")
    func underThreshold() throws {
        let value = checkpoint(seed: 2)
        var parts = EncodedParts()
        try BinaryEncoder().encode(value, into: &parts)  // default: 64 KiB, above every array here but one
        // Two arrays reach 64 KiB (`dense` and `momentum`): bytes, block, bytes, block, bytes.
        #expect(parts.withParts { $0.count } == 5)
        var all = EncodedParts()
        try BinaryEncoder().encode(value, into: &all, gatheringAtLeast: .max)
        #expect(all.isContiguous)
        #expect(all.withParts { $0.count } == 1)
        #expect(all.joined() == parts.joined())
    }

    /// A large array written first (gathered while streaming), then containers used out of
    /// order: the whole value is encoded again as a tree, and the blocks gathered before must go.
    struct ArrayThenInterleaved: Codable, Equatable {
        var weights: [Float]
        var rest: Interleaved
    }

    @Test("a value encoded again out of order (tree fallback) drops the blocks gathered before it")
    func treeFallback() throws {
        let value = ArrayThenInterleaved(weights: (0..<50_000).map { Float($0) / 9 },
                                         rest: Interleaved(xs: Array(0..<1_000), ys: (0..<1_000).map { "\($0)" }))
        var parts = EncodedParts()
        try BinaryEncoder().encode(value, into: &parts, gatheringAtLeast: 4096)
        let plain = try BinaryEncoder().encode(value)
        #expect(parts.count == plain.count)
        #expect(parts.joined() == plain)
        #expect(try BinaryDecoder().decode(ArrayThenInterleaved.self, from: parts.joined()) == value)
    }

    @Test("small Data (kept inline in the value) is copied whatever the threshold asked")
    func smallDataNeverGathered() throws {
        let value = [Data([1, 2, 3]), Data(repeating: 9, count: 5_000)]
        var parts = EncodedParts()
        try BinaryEncoder().encode(value, into: &parts, gatheringAtLeast: 1)
        #expect(parts.withParts { $0.count } == 2)  // the bytes, then the 5,000 gathered (they end the value)
        #expect(parts.joined() == (try BinaryEncoder().encode(value)))
    }

    @Test("framing around gathered values: appended lengths, a patched placeholder, a dropped tail")
    func framing() throws {
        let first = (0..<100_000).map(Float.init)
        let second = Tensor(shape: [2], values: (0..<70_000).map { Float($0) / 3 })
        var parts = EncodedParts()
        var expected: [UInt8] = []
        for value in [first, second.values] {
            let placeholder = parts.count
            parts.append(littleEndian: UInt64(0))
            try BinaryEncoder().encode(value, into: &parts, gatheringAtLeast: 1024)
            parts.overwrite(littleEndian: UInt64(parts.count - placeholder - 8), at: placeholder)
            let plain = try BinaryEncoder().encode(value)
            withUnsafeBytes(of: UInt64(plain.count).littleEndian) { expected += $0 }
            expected += plain
        }
        parts.append(littleEndian: UInt32(7))
        parts.append(littleEndian: UInt32(9))
        parts.removeLast(4)
        withUnsafeBytes(of: UInt32(7).littleEndian) { expected += $0 }
        #expect(parts.count == expected.count)
        #expect(parts.joined() == expected)
        #expect(concatenated(parts) == expected)
    }

    @Test("the parts keep the arrays' memory alive and unchanged after the value is gone or mutated")
    func lifetime() throws {
        func makeParts() throws -> (EncodedParts, [UInt8]) {
            var weights = (0..<200_000).map { Float($0) }
            var parts = EncodedParts()
            try BinaryEncoder().encode(weights, into: &parts, gatheringAtLeast: 1024)
            let plain = try BinaryEncoder().encode(weights)
            // Copy-on-write: the parts' copy keeps the old elements.
            weights[0] = -1
            weights.append(5)
            return (parts, plain)
        }
        let (parts, plain) = try makeParts()
        // Churn the allocator so freed memory would be reused.
        var churn: [[Float]] = []
        for i in 0..<20 { churn.append([Float](repeating: Float(i), count: 200_000)) }
        #expect(churn.count == 20)
        #expect(parts.joined() == plain)
    }
}
