import Foundation
import StarlingCodec
import Testing

/// The bytes themselves: the format is what other processes (and other versions) read.
@Suite("Wire format")
struct FormatTests {
    func bytes<T: Encodable>(_ value: T) throws -> [UInt8] { try BinaryEncoder().encode(value) }

    @Test func scalars() throws {
        #expect(try bytes(5) == [0x05, 5, 0, 0, 0, 0, 0, 0, 0])
        #expect(try bytes(Int8(-1)) == [0x02, 0xFF])
        #expect(try bytes(UInt16(0x0102)) == [0x08, 0x02, 0x01])
        #expect(try bytes(true) == [0x01, 1])
        #expect(try bytes(Float(1)) == [0x0C, 0x00, 0x00, 0x80, 0x3F])
        #expect(try bytes(Double(-2)) == [0x0D, 0, 0, 0, 0, 0, 0, 0, 0xC0])
        #expect(try bytes("hi") == [0x0E, 2, UInt8(ascii: "h"), UInt8(ascii: "i")])
        #expect(try bytes(Int?.none) == [0x00])
        #expect(try bytes(Int??.some(nil)) == [0x12, 0x00])
        #expect(try bytes(String(repeating: "x", count: 200)).prefix(3) == [0x0E, 0xC8, 0x01])  // varint 200
    }

    @Test func containers() throws {
        struct One: Encodable { var a: Int8 }
        #expect(try bytes(One(a: 1)) == [0x0F, 1, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 1, UInt8(ascii: "a"), 0x02, 1])
        #expect(try bytes([Float(1), 2]) == [0x11, 0x0C, 2, 0, 0, 0x80, 0x3F, 0, 0, 0, 0x40])
        #expect(try bytes(Data([7, 8])) == [0x11, 0x07, 2, 7, 8])
        #expect(try bytes(["x"]) == [0x10, 1, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0x0E, 1, UInt8(ascii: "x")])
        struct Empty: Codable {}
        #expect(try bytes(Empty()) == [0x0F, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    }

    /// The fast paths write what the types' own Codable conformances would (through a generic
    /// container), so either side may take either path.
    @Test func fastPathsMatchTheGenericEncoding() throws {
        struct Strings: Encodable {
            var values: [String]
            func encode(to encoder: any Encoder) throws {
                var container = encoder.unkeyedContainer()
                for value in values { try container.encode(value) }
            }
        }
        #expect(try bytes(["a", "bc", ""]) == bytes(Strings(values: ["a", "bc", ""])))
        #expect(try bytes(Set(["only"])) == bytes(["only"]))

        struct AsDouble: Encodable {
            var date: Date
            func encode(to encoder: any Encoder) throws {
                var container = encoder.singleValueContainer()
                try container.encode(date.timeIntervalSinceReferenceDate)
            }
        }
        let date = Date(timeIntervalSinceReferenceDate: 1234.5)
        #expect(try bytes(date) == bytes(AsDouble(date: date)))

        // A [Float] written element by element decodes as [Float]; a packed one as a Set.
        struct Elementwise: Encodable {
            var values: [Float]
            func encode(to encoder: any Encoder) throws {
                var container = encoder.unkeyedContainer()
                for value in values { try container.encode(value) }
            }
        }
        let elementwise = try bytes(Elementwise(values: [1, .nan, -0.0]))
        let decoded = try BinaryDecoder().decode([Float].self, from: elementwise)
        #expect(decoded.map(\.bitPattern) == [Float(1), .nan, -0.0].map(\.bitPattern))
        #expect(try BinaryDecoder().decode(Data.self, from: try bytes([UInt8(1), 2])) == Data([1, 2]))
    }

    @Test func stringArrayErrorsNameTheElement() throws {
        let mixed = try bytes([Int?.some(1), nil])
        #expect(throws: CodecError.typeMismatch(expected: "String", found: "Int64", path: "[0]")) {
            try BinaryDecoder().decode([String].self, from: mixed)
        }
        struct Holder: Codable { var names: [String] }
        struct Other: Codable { var names: [Float] }
        #expect(throws: CodecError.typeMismatch(expected: "Array<String>", found: "a packed array of Float (1 elements)", path: "names")) {
            try BinaryDecoder().decode(Holder.self, from: try bytes(Other(names: [1])))
        }
    }

    @Test func reusedBufferDoesNotGrow() throws {
        let encoder = BinaryEncoder()
        let big = Tensor(shape: [100_000], values: [Float](repeating: 1, count: 100_000))
        var buffer: [UInt8] = []
        try encoder.encode(big, into: &buffer)
        let capacity = buffer.capacity
        for round in 0..<50 {
            buffer.removeAll(keepingCapacity: true)
            if round.isMultiple(of: 2) {
                try encoder.encode(big, into: &buffer)
                #expect(try BinaryDecoder().decode(Tensor.self, from: buffer) == big)
            } else {
                try encoder.encode(sampleConfig(), into: &buffer)
                #expect(try BinaryDecoder().decode(TrainConfig.self, from: buffer) == sampleConfig())
            }
        }
        #expect(buffer.capacity == capacity)
    }

    @Test func encoderIsDeterministic() throws {
        let first = try bytes(sampleConfig().layers)
        for _ in 0..<10 { #expect(try bytes(sampleConfig().layers) == first) }
    }
}
