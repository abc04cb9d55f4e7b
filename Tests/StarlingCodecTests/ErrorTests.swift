import Foundation
import StarlingCodec
import Testing

@Suite("Errors")
struct ErrorTests {
    func decodeError<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) -> CodecError? {
        do {
            _ = try BinaryDecoder().decode(type, from: bytes)
            return nil
        } catch let error as CodecError {
            return error
        } catch {
            Issue.record("not a CodecError: \(error)")
            return nil
        }
    }

    @Test func wrongTypeNamesExpectedFoundAndPath() throws {
        var wrong = WrongConfig(name: "x", layers: [], tags: [], schedule: [:], seed: nil, notes: nil)
        wrong.layers = [
            WrongLayer(width: "1", activation: .relu, dropout: nil, weights: []),
            WrongLayer(width: "2", activation: .relu, dropout: nil, weights: []),
            WrongLayer(width: "3", activation: .relu, dropout: nil, weights: []),
        ]
        let bytes = try BinaryEncoder().encode(wrong)
        let error = decodeError(TrainConfig.self, from: bytes)
        #expect(error == .typeMismatch(expected: "Int", found: "String", path: "layers[0].width"))
        #expect(error?.description == "expected Int at layers[0].width, found String")

        // Only the third layer is wrong.
        struct MixedConfig: Codable {
            var name: String
            var layers: [MixedLayer]
        }
        enum MixedLayer: Codable {
            case good(Layer), bad(WrongLayer)
            func encode(to encoder: any Encoder) throws {
                switch self {
                case .good(let layer): try layer.encode(to: encoder)
                case .bad(let layer): try layer.encode(to: encoder)
                }
            }
            init(from decoder: any Decoder) throws { fatalError("encode only") }
        }
        struct Config: Codable {
            var name: String
            var layers: [Layer]
        }
        let good = Layer(width: 1, activation: .relu, dropout: nil, weights: [])
        let mixed = MixedConfig(name: "m", layers: [.good(good), .good(good), .bad(wrong.layers[2])])
        let mixedError = decodeError(Config.self, from: try BinaryEncoder().encode(mixed))
        #expect(mixedError?.description == "expected Int at layers[2].width, found String")
    }

    @Test func wrongTopLevelAndContainerKinds() throws {
        let string = try BinaryEncoder().encode("hello")
        #expect(decodeError(Int.self, from: string) == .typeMismatch(expected: "Int", found: "String", path: ""))
        #expect(decodeError([Float].self, from: string) == .typeMismatch(expected: "Array<Float>", found: "String", path: ""))
        let error = decodeError(Layer.self, from: string)
        #expect(error == .typeMismatch(expected: "Layer", found: "String", path: ""))
        let floats = try BinaryEncoder().encode([Float(1)])
        #expect(decodeError(Layer.self, from: floats)
            == .typeMismatch(expected: "Layer", found: "a packed array of Float (1 elements)", path: ""))
        #expect(decodeError(Int.self, from: floats)?.description
            == "expected Int at the top level, found a packed array of Float (1 elements)")
        #expect(decodeError([String].self, from: floats)
            == .typeMismatch(expected: "Array<String>", found: "a packed array of Float (1 elements)", path: ""))
    }

    @Test func missingKeyAndOutOfRangeNumbers() throws {
        struct Small: Codable { var a: Int }
        struct Big: Codable { var a: Int; var b: Int }
        let bytes = try BinaryEncoder().encode(["x": Small(a: 1)])
        #expect(decodeError([String: Big].self, from: bytes) == .keyNotFound(key: "b", path: "x"))

        let large = try BinaryEncoder().encode(Small(a: 300))
        struct Narrow: Codable { var a: Int8 }
        #expect(decodeError(Narrow.self, from: large) == .numberOutOfRange(value: "300 (Int64)", expected: "Int8", path: "a"))
        let negative = try BinaryEncoder().encode([-1])
        #expect(decodeError([UInt].self, from: negative) == .numberOutOfRange(value: "-1 (Int64)", expected: "UInt", path: "[0]"))
    }

    @Test func trailingBytes() throws {
        var bytes = try BinaryEncoder().encode(5)
        bytes.append(0)
        #expect(decodeError(Int.self, from: bytes) == .trailingBytes(count: 1, offset: 9))
    }

    @Test func emptyInput() {
        #expect(decodeError(Int.self, from: []) == .truncated(path: "", offset: 0, needed: 1, available: 0))
        #expect(decodeError(Data.self, from: []) != nil)
    }

    @Test func invalidUTF8() throws {
        var bytes = try BinaryEncoder().encode(["k": "abc"])
        let index = bytes.lastIndex(of: UInt8(ascii: "b"))!
        bytes[index] = 0xFF
        #expect(decodeError([String: String].self, from: bytes) == .invalidUTF8(path: "k", offset: index - 1))
    }

    @Test func invalidBoolBytes() throws {
        var single = try BinaryEncoder().encode(true)
        single[1] = 2
        #expect(decodeError(Bool.self, from: single) != nil)
        var packed = try BinaryEncoder().encode([true, false])
        packed[packed.count - 1] = 7
        #expect(decodeError([Bool].self, from: packed) != nil)
    }

    @Test func nestingLimit() throws {
        // Encoding a chain deeper than the limit fails cleanly, in both directions.
        var encoder = BinaryEncoder()
        encoder.maxDepth = 50
        #expect(throws: CodecError.self) { try encoder.encode(Node.chain(60)) }
        let bytes = try BinaryEncoder().encode(Node.chain(60))
        var decoder = BinaryDecoder()
        decoder.maxDepth = 50
        #expect(throws: CodecError.self) { try decoder.decode(Node.self, from: bytes) }
        #expect(try BinaryDecoder().decode(Node.self, from: bytes) == Node.chain(60))
    }

    @Test func containerMisuseIsAnErrorNotACrash() throws {
        struct TwoKinds: Encodable {
            enum Keys: CodingKey { case a }
            func encode(to encoder: any Encoder) throws {
                var keyed = encoder.container(keyedBy: Keys.self)
                try keyed.encode(1, forKey: .a)
                var unkeyed = encoder.unkeyedContainer()
                try unkeyed.encode(2)
            }
        }
        struct TwoValues: Encodable {
            func encode(to encoder: any Encoder) throws {
                var container = encoder.singleValueContainer()
                try container.encode(1)
                try container.encode(2)
            }
        }
        #expect(throws: CodecError.self) { try BinaryEncoder().encode(TwoKinds()) }
        #expect(throws: CodecError.self) { try BinaryEncoder().encode([TwoValues()]) }
    }

    @Test func codableErrorsAreConverted() throws {
        let bytes = try BinaryEncoder().encode(["mode": "sideways"])
        struct Settings: Codable { var mode: Activation }
        let error = decodeError(Settings.self, from: bytes)
        guard case let .invalidData(_, path)? = error else {
            Issue.record("expected invalidData, got \(String(describing: error))")
            return
        }
        #expect(path == "mode")
    }
}
