import Distributed
import StarlingWire
import Synchronization
import Testing
@testable import Starling

/// The framing of actor-call arguments: what a caller records decodes back, and bytes from the
/// network that are cut short, or claim lengths past their end, are refused with a typed error
/// (the hosting worker must not trap on them).
@Suite("Actor invocation framing")
struct InvocationFramingTests {
    let system = StarlingActorSystem(token: ClusterToken.generate(), head: nil, headURL: nil)

    func encoded(_ text: String, _ numbers: [Float], generic: Bool = false) throws -> [UInt8] {
        var encoder = StarlingInvocationEncoder()
        if generic { try encoder.recordGenericSubstitution(Float.self) }
        try encoder.recordArgument(RemoteCallArgument(label: nil, name: "text", value: text))
        try encoder.recordArgument(RemoteCallArgument(label: nil, name: "numbers", value: numbers))
        try encoder.doneRecording()
        return encoder.encoded().joined()
    }

    @Test("arguments and generic substitutions round-trip")
    func roundTrip() throws {
        var decoder = try StarlingInvocationDecoder(encoded: try encoded("weights", [1, 2.5, -3], generic: true), system: system)
        #expect(try decoder.decodeGenericSubstitutions().map { "\($0)" } == ["Float"])
        #expect(try decoder.decodeNextArgument() as String == "weights")
        #expect(try decoder.decodeNextArgument() as [Float] == [1, 2.5, -3])
        #expect(throws: StarlingError.self) { _ = try decoder.decodeNextArgument() as Int }
    }

    @Test("a decoder borrowing its bytes says when the last argument is read, and only then")
    func borrowedBytesReleasedAfterLastArgument() throws {
        let bytes = try encoded("weights", [1, 2.5, -3])
        let reads = ReleaseCount()
        try bytes.withUnsafeBytes { raw in
            var decoder = try StarlingInvocationDecoder(borrowing: raw, allRead: { reads.add() }, system: system)
            #expect(try decoder.decodeNextArgument() as String == "weights")
            #expect(reads.count == 0)
            #expect(try decoder.decodeNextArgument() as [Float] == [1, 2.5, -3])
            #expect(reads.count == 1)
            #expect(throws: StarlingError.self) { _ = try decoder.decodeNextArgument() as Int }
        }
    }

    @Test("every truncation and a huge claimed length are refused, never trapped on")
    func hostileBytes() throws {
        let good = try encoded("abc", [4, 5], generic: true)
        for end in 0..<good.count {
            let cut = Array(good[..<end])
            do {
                var decoder = try StarlingInvocationDecoder(encoded: cut, system: system)
                _ = try? decoder.decodeGenericSubstitutions()
                _ = try? decoder.decodeNextArgument() as String
                _ = try? decoder.decodeNextArgument() as [Float]
            } catch {
                #expect(error is StarlingError, "\(error)")
            }
        }
        // An argument that claims 2^63 + 1 bytes.
        var huge = try encoded("abc", [4, 5])
        withUnsafeBytes(of: (UInt64(1) << 63 | 1).littleEndian) { length in
            for index in 0..<8 { huge[index] = length[index] }
        }
        var decoder = try StarlingInvocationDecoder(encoded: huge, system: system)
        #expect(throws: StarlingError.self) { _ = try decoder.decodeNextArgument() as String }
        // Random bytes.
        var random = SystemRandomNumberGenerator()
        for _ in 0..<2_000 {
            let bytes = (0..<Int.random(in: 0..<64, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            if var decoder = try? StarlingInvocationDecoder(encoded: bytes, system: system) {
                _ = try? decoder.decodeGenericSubstitutions()
                _ = try? decoder.decodeNextArgument() as [Float]
            }
        }
    }
}

/// Counts calls of a release closure.
final class ReleaseCount: Sendable {
    private let calls = Mutex(0)
    func add() { calls.withLock { $0 += 1 } }
    var count: Int { calls.withLock { $0 } }
}
