import Foundation
import StarlingCodec

// Types and helpers shared by the codec tests.

func roundTrip<T: Codable>(_ value: T, as type: T.Type = T.self) throws -> T {
    let bytes = try BinaryEncoder().encode(value)
    return try BinaryDecoder().decode(type, from: bytes)
}

/// A small deterministic generator, so failures reproduce.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

enum Activation: String, Codable, Equatable {
    case relu, gelu, tanh
}

struct Layer: Codable, Equatable {
    var width: Int
    var activation: Activation
    var dropout: Double?
    var weights: [Float]
}

struct TrainConfig: Codable, Equatable {
    var name: String
    var layers: [Layer]
    var tags: Set<String>
    var schedule: [String: Double]
    var seed: UInt64?
    var notes: String?
}

func sampleConfig() -> TrainConfig {
    TrainConfig(
        name: "résumé-🚀",
        layers: [
            Layer(width: 128, activation: .relu, dropout: 0.1, weights: [1, 2, 3]),
            Layer(width: 64, activation: .gelu, dropout: nil, weights: []),
            Layer(width: 10, activation: .tanh, dropout: 0.5, weights: [-0.0, .infinity, 7.25]),
        ],
        tags: ["vision", "small"],
        schedule: ["warmup": 0.01, "decay": 0.9],
        seed: 42,
        notes: nil)
}

/// The same shape as `TrainConfig`'s layers, but `width` is a String: decoding it as a `Layer`
/// must fail at `layers[2].width`.
struct WrongLayer: Codable {
    var width: String
    var activation: Activation
    var dropout: Double?
    var weights: [Float]
}

struct WrongConfig: Codable {
    var name: String
    var layers: [WrongLayer]
    var tags: Set<String>
    var schedule: [String: Double]
    var seed: UInt64?
    var notes: String?
}

enum Shape: Codable, Equatable {
    case point
    case circle(radius: Double)
    case rect(width: Double, height: Double)
    case labeled(String, Int)
    case polygon([Shape])
}

indirect enum Expr: Codable, Equatable {
    case number(Int)
    case add(Expr, Expr)
    case negate(Expr)
}

/// Nested enough to exercise the nesting limit.
final class Node: Codable, Equatable {
    let value: Int
    let next: Node?

    init(value: Int, next: Node?) {
        self.value = value
        self.next = next
    }

    static func == (a: Node, b: Node) -> Bool { a.value == b.value && a.next == b.next }

    static func chain(_ length: Int) -> Node {
        var node = Node(value: 0, next: nil)
        for i in 1..<length { node = Node(value: i, next: node) }
        return node
    }
}

class Animal: Codable, Equatable {
    var name: String
    init(name: String) { self.name = name }

    static func == (a: Animal, b: Animal) -> Bool { a.isEqual(b) }
    func isEqual(_ other: Animal) -> Bool { type(of: self) == type(of: other) && name == other.name }
}

/// Encodes its superclass into a `super` entry.
final class Dog: Animal {
    var goodBoy: Bool
    init(name: String, goodBoy: Bool) {
        self.goodBoy = goodBoy
        super.init(name: name)
    }

    enum CodingKeys: String, CodingKey { case goodBoy }

    required init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        goodBoy = try container.decode(Bool.self, forKey: .goodBoy)
        try super.init(from: container.superDecoder())
    }

    override func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(goodBoy, forKey: .goodBoy)
        try super.encode(to: container.superEncoder())
    }

    override func isEqual(_ other: Animal) -> Bool {
        guard let other = other as? Dog else { return false }
        return super.isEqual(other) && goodBoy == other.goodBoy
    }
}

/// Encodes its superclass's keys into the same container (the same encoder, twice).
final class Cat: Animal {
    var lives: Int
    init(name: String, lives: Int) {
        self.lives = lives
        super.init(name: name)
    }

    enum CodingKeys: String, CodingKey { case lives }

    required init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        lives = try container.decode(Int.self, forKey: .lives)
        try super.init(from: decoder)
    }

    override func encode(to encoder: any Encoder) throws {
        try super.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(lives, forKey: .lives)
    }

    override func isEqual(_ other: Animal) -> Bool {
        guard let other = other as? Cat else { return false }
        return super.isEqual(other) && lives == other.lives
    }
}

/// Encodes `a, b, c` and decodes them in the order `c, a, b`, probing optional keys too.
struct Reordered: Codable, Equatable {
    var a: Int
    var b: String
    var c: [Double]
    var missing: Int?

    enum CodingKeys: String, CodingKey { case a, b, c, missing, neverWritten }

    init(a: Int, b: String, c: [Double], missing: Int? = nil) {
        self.a = a
        self.b = b
        self.c = c
        self.missing = missing
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        c = try container.decode([Double].self, forKey: .c)
        precondition(container.contains(.a) && !container.contains(.neverWritten))
        a = try container.decode(Int.self, forKey: .a)
        missing = try container.decodeIfPresent(Int.self, forKey: .missing)
        let never = try container.decodeIfPresent(String.self, forKey: .neverWritten)
        precondition(never == nil)
        b = try container.decode(String.self, forKey: .b)
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(a, forKey: .a)
        try container.encode(b, forKey: .b)
        try container.encode(c, forKey: .c)
        try container.encodeIfPresent(missing, forKey: .missing)
    }
}

/// Fills two nested containers alternately: cannot be written in one pass.
struct Interleaved: Codable, Equatable {
    var xs: [Int]
    var ys: [String]
    var total: Int

    enum CodingKeys: String, CodingKey { case xs, ys, total, meta }
    enum MetaKeys: String, CodingKey { case count }

    init(xs: [Int], ys: [String]) {
        self.xs = xs
        self.ys = ys
        total = xs.reduce(0, +)
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        var xsContainer = container.nestedUnkeyedContainer(forKey: .xs)
        var ysContainer = container.nestedUnkeyedContainer(forKey: .ys)
        var meta = container.nestedContainer(keyedBy: MetaKeys.self, forKey: .meta)
        for (x, y) in zip(xs, ys) {
            try xsContainer.encode(x)
            try ysContainer.encode(y)
        }
        try container.encode(total, forKey: .total)
        try meta.encode(xs.count, forKey: .count)
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        total = try container.decode(Int.self, forKey: .total)
        xs = try container.decode([Int].self, forKey: .xs)
        var ysContainer = try container.nestedUnkeyedContainer(forKey: .ys)
        var ys: [String] = []
        while !ysContainer.isAtEnd { ys.append(try ysContainer.decode(String.self)) }
        self.ys = ys
        let meta = try container.nestedContainer(keyedBy: MetaKeys.self, forKey: .meta)
        let count = try meta.decode(Int.self, forKey: .count)
        precondition(count == xs.count)
    }
}

struct AllIntegers: Codable, Equatable {
    var i: Int, i8: Int8, i16: Int16, i32: Int32, i64: Int64, i128: Int128
    var u: UInt, u8: UInt8, u16: UInt16, u32: UInt32, u64: UInt64, u128: UInt128

    static let min = AllIntegers(i: .min, i8: .min, i16: .min, i32: .min, i64: .min, i128: .min,
                                 u: .min, u8: .min, u16: .min, u32: .min, u64: .min, u128: .min)
    static let max = AllIntegers(i: .max, i8: .max, i16: .max, i32: .max, i64: .max, i128: .max,
                                 u: .max, u8: .max, u16: .max, u32: .max, u64: .max, u128: .max)
}

struct Tensor: Codable, Equatable {
    var shape: [Int]
    var values: [Float]
}

struct Checkpoint: Codable, Equatable {
    var step: Int
    var model: [String: Tensor]
    var optimizer: Optimizer

    struct Optimizer: Codable, Equatable {
        var momentum: [Double]
        var counts: ContiguousArray<UInt32>
        var mask: [Bool]
        var blob: Data
    }
}

struct Point: Codable, Hashable {
    var x: Int
    var y: Int
}
