import Foundation
import StarlingCodec
import Testing

@Suite("Round trips")
struct RoundTripTests {
    @Test func nestedStructs() throws {
        let config = sampleConfig()
        #expect(try roundTrip(config) == config)
    }

    @Test func enumsWithAndWithoutPayloads() throws {
        let shapes: [Shape] = [
            .point, .circle(radius: 2.5), .rect(width: 3, height: 4), .labeled("door", 7),
            .polygon([.point, .circle(radius: 1), .polygon([])]),
        ]
        #expect(try roundTrip(shapes) == shapes)
        #expect(try roundTrip(Activation.gelu) == .gelu)
        let expr = Expr.add(.number(1), .negate(.add(.number(2), .number(-3))))
        #expect(try roundTrip(expr) == expr)
    }

    @Test func optionals() throws {
        #expect(try roundTrip(Int?.none) == nil)
        #expect(try roundTrip(Int?.some(5)) == 5)
        // Nested optionals keep `.some(nil)` apart from `nil`.
        #expect(try roundTrip(Int??.none) == .none)
        #expect(try roundTrip(Int??.some(.none)) == .some(.none))
        #expect(try roundTrip(Int??.some(.some(3))) == .some(.some(3)))
        let list: [Int??] = [nil, .some(nil), 4]
        #expect(try roundTrip(list) == list)

        struct Fields: Codable, Equatable {
            var a: Int?
            var b: String??
            var c: [Float]?
            var d: Layer?
        }
        for value in [
            Fields(a: nil, b: nil, c: nil, d: nil),
            Fields(a: 1, b: .some(nil), c: [], d: Layer(width: 1, activation: .relu, dropout: nil, weights: [1])),
            Fields(a: 0, b: .some("x"), c: [1, 2], d: nil),
        ] {
            #expect(try roundTrip(value) == value)
        }
    }

    @Test func dictionaries() throws {
        let byString = ["a": 1, "": 0, "ünï": -5]
        #expect(try roundTrip(byString) == byString)
        let byInt = [1: "one", -2: "minus two", Int.max: "max"]
        #expect(try roundTrip(byInt) == byInt)
        let byPoint = [Point(x: 1, y: 2): "a", Point(x: -1, y: 0): "b"]  // unkeyed key/value pairs
        #expect(try roundTrip(byPoint) == byPoint)
        let byUUID = [UUID(): 1.5, UUID(): 2.5]
        #expect(try roundTrip(byUUID) == byUUID)
        let nested = ["outer": ["inner": [1, 2, 3]]]
        #expect(try roundTrip(nested) == nested)
        #expect(try roundTrip([String: Int]()) == [:])
    }

    @Test func sets() throws {
        let strings: Set = ["a", "b", "ç"]
        #expect(try roundTrip(strings) == strings)
        let ints = Set(0..<1000)
        #expect(try roundTrip(ints) == ints)
        #expect(try roundTrip(Set<Point>()) == [])
    }

    @Test(arguments: ["", "a", "hello, world", "héllo wörld", "日本語のテキスト", "🚀👩‍👩‍👧‍👦🏳️‍🌈", "e\u{301}", "nul\0inside",
                      String(repeating: "long ", count: 1000)])
    func strings(_ string: String) throws {
        #expect(try roundTrip(string) == string)
        #expect(try roundTrip([string, string]) == [string, string])
    }

    @Test func data() throws {
        #expect(try roundTrip(Data()) == Data())
        var rng = SplitMix64(seed: 7)
        let big = Data((0..<1_000_003).map { _ in UInt8.random(in: .min ... .max, using: &rng) })
        #expect(try roundTrip(big) == big)
        // Data and [UInt8] share an encoding.
        let bytes = try BinaryEncoder().encode(Data([1, 2, 3]))
        #expect(try BinaryDecoder().decode([UInt8].self, from: bytes) == [1, 2, 3])
        // A slice with a non-zero start index.
        let slice = big[10..<20]
        #expect(try roundTrip(slice) == slice)
    }

    @Test func foundationValues() throws {
        let date = Date(timeIntervalSinceReferenceDate: 123_456.789)
        #expect(try roundTrip(date) == date)
        let url = URL(string: "https://example.com/a/b?q=1#frag")!
        #expect(try roundTrip(url) == url)
        let uuid = UUID()
        #expect(try roundTrip(uuid) == uuid)
    }

    @Test func millionFloatsBitExact() throws {
        var rng = SplitMix64(seed: 1)
        var values = (0..<1_000_000).map { _ in Float(bitPattern: UInt32.random(in: .min ... .max, using: &rng)) }
        let specials: [Float] = [.nan, -.nan, .signalingNaN, Float(bitPattern: 0x7FC0_1234), Float(bitPattern: 0xFFBF_FFFF),
                                 .infinity, -.infinity, 0, -0.0, .leastNonzeroMagnitude, -.leastNormalMagnitude,
                                 .greatestFiniteMagnitude]
        values.replaceSubrange(0..<specials.count, with: specials)
        let decoded = try roundTrip(values)
        #expect(decoded.count == values.count)
        #expect(decoded.map(\.bitPattern) == values.map(\.bitPattern))

        // The same as a field deep in a struct, and in a ContiguousArray.
        let tensor = Tensor(shape: [1000, 1000], values: values)
        let decodedTensor = try roundTrip(["layer": [tensor]])
        #expect(decodedTensor["layer"]![0].values.map(\.bitPattern) == values.map(\.bitPattern))
        let contiguous = ContiguousArray(values)
        #expect(try roundTrip(contiguous).map(\.bitPattern) == values.map(\.bitPattern))
    }

    @Test func packedArraysOfEveryType() throws {
        #expect(try roundTrip([Double.pi, -0.0, .infinity, .nan].map(\.bitPattern)) == [Double.pi, -0.0, .infinity, .nan].map(\.bitPattern))
        let doubles: [Double] = [1.5, -2, .greatestFiniteMagnitude, .leastNonzeroMagnitude]
        #expect(try roundTrip(doubles) == doubles)
        #expect(try roundTrip([Int.min, -1, 0, Int.max]) == [Int.min, -1, 0, Int.max])
        #expect(try roundTrip([Int8.min, 0, Int8.max]) == [Int8.min, 0, Int8.max])
        #expect(try roundTrip([Int16.min, 0, Int16.max]) == [Int16.min, 0, Int16.max])
        #expect(try roundTrip([Int32.min, 0, Int32.max]) == [Int32.min, 0, Int32.max])
        #expect(try roundTrip([Int64.min, 0, Int64.max]) == [Int64.min, 0, Int64.max])
        #expect(try roundTrip([UInt.min, UInt.max]) == [UInt.min, UInt.max])
        #expect(try roundTrip([UInt8.min, UInt8.max]) == [UInt8.min, UInt8.max])
        #expect(try roundTrip([UInt16.min, UInt16.max]) == [UInt16.min, UInt16.max])
        #expect(try roundTrip([UInt32.min, UInt32.max]) == [UInt32.min, UInt32.max])
        #expect(try roundTrip([UInt64.min, UInt64.max]) == [UInt64.min, UInt64.max])
        #expect(try roundTrip([Int128.min, 0, Int128.max]) == [Int128.min, 0, Int128.max])
        #expect(try roundTrip([true, false, true]) == [true, false, true])
        #expect(try roundTrip([Float]()) == [])
        #expect(try roundTrip([[Float]]([[1], [], [2, 3]])) == [[1], [], [2, 3]])

        let checkpoint = Checkpoint(
            step: 10,
            model: ["w": Tensor(shape: [2], values: [1, 2]), "b": Tensor(shape: [0], values: [])],
            optimizer: .init(momentum: [0.9, 0.99], counts: [1, 2, UInt32.max], mask: [true, false], blob: Data([0xFF, 0])))
        #expect(try roundTrip(checkpoint) == checkpoint)
    }

    @Test func integerExtremes() throws {
        #expect(try roundTrip(AllIntegers.min) == AllIntegers.min)
        #expect(try roundTrip(AllIntegers.max) == AllIntegers.max)
        #expect(try roundTrip([AllIntegers.min, AllIntegers.max]) == [AllIntegers.min, AllIntegers.max])
        #expect(try roundTrip(Int64.min) == Int64.min)
        #expect(try roundTrip(UInt64.max) == UInt64.max)
        #expect(try roundTrip(Int8.min) == Int8.min)
        #expect(try roundTrip(UInt128.max) == UInt128.max)
        #expect(try roundTrip(true) == true)
        #expect(try roundTrip(Float.greatestFiniteMagnitude) == .greatestFiniteMagnitude)
        #expect(try roundTrip(-Double.leastNonzeroMagnitude) == -.leastNonzeroMagnitude)
    }

    @Test func decodingInAnotherKeyOrder() throws {
        let value = Reordered(a: 1, b: "two", c: [3, 4])
        #expect(try roundTrip(value) == value)
        let withOptional = Reordered(a: -1, b: "", c: [], missing: 9)
        #expect(try roundTrip(withOptional) == withOptional)
    }

    @Test func decodeIfPresentOfMissingKeys() throws {
        struct Old: Codable { var a: Int }
        struct New: Codable, Equatable {
            var a: Int
            var b: String?
            var c: [Float]?
            var d: Int??
        }
        let bytes = try BinaryEncoder().encode(Old(a: 5))
        #expect(try BinaryDecoder().decode(New.self, from: bytes) == New(a: 5, b: nil, c: nil, d: nil))
        // And a superset decodes as the subset: unknown keys are skipped.
        let newer = try BinaryEncoder().encode(New(a: 1, b: "x", c: [1], d: .some(nil)))
        #expect(try BinaryDecoder().decode(Old.self, from: newer).a == 1)
        #expect(try BinaryDecoder().decode(New.self, from: newer) == New(a: 1, b: "x", c: [1], d: .some(nil)))
    }

    @Test func classesAndSuperEncoders() throws {
        let dog = Dog(name: "Rex", goodBoy: true)
        #expect(try roundTrip(dog) == dog)
        let cat = Cat(name: "Tom", lives: 9)
        #expect(try roundTrip(cat) == cat)
        let chain = Node.chain(100)
        #expect(try roundTrip(chain) == chain)
    }

    @Test func interleavedContainersFallBackToTreeEncoding() throws {
        let value = Interleaved(xs: [1, 2, 3], ys: ["a", "b", "c"])
        #expect(try roundTrip(value) == value)
        // Inside other values, and next to fast-path arrays.
        let wrapped = ["first": [value], "second": [Interleaved(xs: [], ys: [])]]
        #expect(try roundTrip(wrapped) == wrapped)
        struct Outer: Codable, Equatable {
            var before: [Float]
            var inner: Interleaved
            var after: String
        }
        let outer = Outer(before: [1, 2], inner: value, after: "end")
        #expect(try roundTrip(outer) == outer)
    }

    @Test func compatibleTypeChanges() throws {
        // Integers convert when the value fits; Float widens to Double.
        let ints = try BinaryEncoder().encode([1, -2, 300])
        #expect(try BinaryDecoder().decode([Int32].self, from: ints) == [1, -2, 300])
        #expect(try BinaryDecoder().decode([Double].self, from: try BinaryEncoder().encode([Float(1.5)])) == [1.5])
        #expect(try BinaryDecoder().decode(Int64.self, from: try BinaryEncoder().encode(UInt8(200))) == 200)
        // A packed array reads as any sequence of its elements.
        let floats = try BinaryEncoder().encode([Float(1), 2, 2, 3])
        #expect(try BinaryDecoder().decode(Set<Float>.self, from: floats) == [1, 2, 3])
    }

    @Test func appendingAndUnalignedInput() throws {
        var buffer: [UInt8] = [0xAA, 0xBB, 0xCC]
        try BinaryEncoder().encode(sampleConfig(), into: &buffer)
        #expect(buffer.prefix(3) == [0xAA, 0xBB, 0xCC])
        // Decode the body at offsets 1..3 from an aligned start: never aligned for 8-byte loads.
        for shift in 1...3 {
            let body = Array(buffer[3...])
            var shifted = [UInt8](repeating: 0, count: shift) + body
            let config = try shifted.withUnsafeMutableBytes { raw in
                try BinaryDecoder().decode(TrainConfig.self, from: UnsafeRawBufferPointer(rebasing: raw[shift...]))
            }
            #expect(config == sampleConfig())
            shifted.removeAll()
        }
        let data = Data(buffer[3...])
        #expect(try BinaryDecoder().decode(TrainConfig.self, from: data) == sampleConfig())
        #expect(try BinaryDecoder().decode(TrainConfig.self, from: Data(buffer)[3...]) == sampleConfig())

        // A failed encoding leaves the buffer as it was.
        struct Failing: Encodable {
            func encode(to encoder: any Encoder) throws {
                var container = encoder.unkeyedContainer()
                try container.encode(1)
                throw EncodingError.invalidValue(1, .init(codingPath: [], debugDescription: "no"))
            }
        }
        let before = buffer
        #expect(throws: CodecError.self) { try BinaryEncoder().encode([Failing()], into: &buffer) }
        #expect(buffer == before)
    }

    @Test func userInfoReachesCodableCode() throws {
        struct NeedsInfo: Codable, Equatable {
            static let key = CodingUserInfoKey(rawValue: "scale")!
            var value: Int
            init(value: Int) { self.value = value }
            init(from decoder: any Decoder) throws {
                let scale = decoder.userInfo[Self.key] as? Int ?? 1
                value = try decoder.singleValueContainer().decode(Int.self) * scale
            }
            func encode(to encoder: any Encoder) throws {
                var container = encoder.singleValueContainer()
                try container.encode(value)
            }
        }
        var decoder = BinaryDecoder()
        decoder.userInfo[NeedsInfo.key] = 10
        let bytes = try BinaryEncoder().encode([NeedsInfo(value: 2)])
        #expect(try decoder.decode([NeedsInfo].self, from: bytes) == [NeedsInfo(value: 20)])
    }
}
