import Foundation
import StarlingCodec
import Testing

/// Malformed and hostile input must throw, never crash, and never allocate more than the input
/// could describe.
@Suite("Hostile input")
struct HostileInputTests {
    /// Decodes `bytes` as several unrelated types; returns how many of them succeeded.
    @discardableResult
    func decodeAsEverything(_ bytes: [UInt8]) -> Int {
        let decoder = BinaryDecoder()
        var successes = 0
        func attempt<T: Decodable>(_ type: T.Type) {
            if (try? decoder.decode(type, from: bytes)) != nil { successes += 1 }
        }
        attempt(TrainConfig.self)
        attempt(Checkpoint.self)
        attempt([Shape].self)
        attempt(Expr.self)
        attempt([String: [Int]].self)
        attempt([Point: String].self)
        attempt(Set<String>.self)
        attempt([Float].self)
        attempt(Data.self)
        attempt(Int??.self)
        attempt(AllIntegers.self)
        attempt(Node.self)
        attempt(Dog.self)
        attempt(Cat.self)
        attempt(Reordered.self)
        attempt(String.self)
        attempt([Bool].self)
        return successes
    }

    @Test func everyTruncationThrows() throws {
        let checkpoint = Checkpoint(
            step: 1, model: ["w": Tensor(shape: [3], values: [1, 2, 3])],
            optimizer: .init(momentum: [1], counts: [1], mask: [true], blob: Data([1, 2])))
        let samples: [(bytes: [UInt8], decode: ([UInt8]) throws -> Void)] = [
            (try BinaryEncoder().encode(sampleConfig()), { _ = try BinaryDecoder().decode(TrainConfig.self, from: $0) }),
            (try BinaryEncoder().encode(checkpoint), { _ = try BinaryDecoder().decode(Checkpoint.self, from: $0) }),
            (try BinaryEncoder().encode(Shape.polygon([.circle(radius: 1), .labeled("x", 2)])),
             { _ = try BinaryDecoder().decode(Shape.self, from: $0) }),
            (try BinaryEncoder().encode(Dog(name: "Rex", goodBoy: true)), { _ = try BinaryDecoder().decode(Dog.self, from: $0) }),
        ]
        for (bytes, decode) in samples {
            try decode(bytes)  // the whole encoding is fine
            for length in 0..<bytes.count {
                #expect(throws: CodecError.self, "prefix of \(length) bytes") { try decode(Array(bytes[..<length])) }
                decodeAsEverything(Array(bytes[..<length]))
            }
        }
    }

    @Test func randomGarbageNeverCrashes() {
        var rng = SplitMix64(seed: 0xC0DEC)
        for round in 0..<4000 {
            let length = Int.random(in: 0...(round % 10 == 0 ? 600 : 48), using: &rng)
            var bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
            // Bias the first byte toward real tags so decoding gets past the first check.
            if !bytes.isEmpty, Bool.random(using: &rng) { bytes[0] = UInt8.random(in: 0...0x12, using: &rng) }
            decodeAsEverything(bytes)
        }
    }

    @Test func mutatedEncodingsNeverCrash() throws {
        let checkpoint = Checkpoint(
            step: 1, model: ["w": Tensor(shape: [3], values: [1, 2, 3]), "b": Tensor(shape: [1], values: [0])],
            optimizer: .init(momentum: [1, 2], counts: [1], mask: [true, false], blob: Data([1, 2])))
        let originals = [
            try BinaryEncoder().encode(sampleConfig()),
            try BinaryEncoder().encode(checkpoint),
            try BinaryEncoder().encode([Shape.point, .rect(width: 1, height: 2), .polygon([.point])]),
            try BinaryEncoder().encode(Node.chain(5)),
            try BinaryEncoder().encode(Cat(name: "c", lives: 3)),
        ]
        var rng = SplitMix64(seed: 99)
        for _ in 0..<3000 {
            var bytes = originals.randomElement(using: &rng)!
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                let index = Int.random(in: 0..<bytes.count, using: &rng)
                switch Int.random(in: 0..<4, using: &rng) {
                case 0: bytes[index] ^= UInt8(1) << UInt8.random(in: 0..<8, using: &rng)
                case 1: bytes[index] = UInt8.random(in: 0...255, using: &rng)
                case 2: bytes[index] = [0x00, 0x7F, 0x80, 0xFF].randomElement(using: &rng)!
                default: bytes.remove(at: index)
                }
                if bytes.isEmpty { break }
            }
            decodeAsEverything(bytes)
        }
    }

    @Test func hugeDeclaredCountsThrowBeforeAllocating() {
        // packed Float, count 2^62 (varint), then four bytes.
        var packed: [UInt8] = [0x11, 0x0C]
        var count: UInt64 = 1 << 62
        while count >= 0x80 { packed.append(UInt8(count & 0x7F) | 0x80); count >>= 7 }
        packed.append(UInt8(count))
        packed += [0, 0, 0, 0]
        #expect(throws: CodecError.countOutOfRange(count: 1 << 62, path: "", available: 4)) {
            try BinaryDecoder().decode([Float].self, from: packed)
        }
        #expect(throws: CodecError.self) { try BinaryDecoder().decode(Data.self, from: packed) }
        #expect(throws: CodecError.self) { try BinaryDecoder().decode(Set<Float>.self, from: packed) }

        // unkeyed container claiming u32.max elements in an 8-byte body.
        var unkeyed: [UInt8] = [0x10]
        unkeyed += withUnsafeBytes(of: UInt32.max.littleEndian, Array.init)
        unkeyed += withUnsafeBytes(of: UInt64(8).littleEndian, Array.init)
        unkeyed += [UInt8](repeating: 0, count: 8)
        #expect(throws: CodecError.countOutOfRange(count: UInt64(UInt32.max), path: "", available: 8)) {
            try BinaryDecoder().decode([Int?].self, from: unkeyed)
        }

        // A container whose body length runs past the input.
        var long: [UInt8] = [0x0F]
        long += withUnsafeBytes(of: UInt32(1).littleEndian, Array.init)
        long += withUnsafeBytes(of: UInt64.max.littleEndian, Array.init)
        #expect(throws: CodecError.self) { try BinaryDecoder().decode([String: Int].self, from: long) }

        // A string claiming an exabyte.
        var string: [UInt8] = [0x0E, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x41]
        #expect(throws: CodecError.self) { try BinaryDecoder().decode(String.self, from: string) }
        string = [0x0E, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]  // overlong varint
        #expect(throws: CodecError.self) { try BinaryDecoder().decode(String.self, from: string) }
    }

    @Test func deepHostileNestingThrows() {
        // 100,000 nested keyed containers, each {"next": ...}: a stack overflow if unchecked.
        let depth = 100_000
        var bytes: [UInt8] = []
        var headers: [Int] = []
        for _ in 0..<depth {
            headers.append(bytes.count)
            bytes += [0x0F, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
            bytes += [4] + Array("next".utf8)
        }
        bytes.append(0x00)
        for header in headers.reversed() {
            let body = UInt64(bytes.count - header - 13)
            withUnsafeBytes(of: body.littleEndian) { raw in
                for i in 0..<8 { bytes[header + 5 + i] = raw[i] }
            }
        }
        final class Link: Decodable {
            let next: Link?
        }
        #expect(throws: CodecError.nestingTooDeep(limit: BinaryDecoder.defaultMaxDepth,
                                                  path: Array(repeating: "next", count: BinaryDecoder.defaultMaxDepth).joined(separator: "."))) {
            try BinaryDecoder().decode(Link.self, from: bytes)
        }
        #expect(throws: CodecError.self) { try BinaryDecoder().decode(Expr.self, from: bytes) }

        // 100,000 `some` tags: handled without recursion.
        let somes = [UInt8](repeating: 0x12, count: 100_000) + [0x00]
        #expect(throws: CodecError.self) { try BinaryDecoder().decode(Int?.self, from: somes) }
    }
}
