import Distributed
import StarlingCodec

/// One call's arguments and generic substitutions, as they travel: each argument encoded
/// with the binary coder straight into one buffer, behind an 8-byte little-endian length; then
/// the generic substitutions' mangled names (4-byte length each), their count (4 bytes) and
/// the byte length of that trailer (4 bytes). Arguments are never copied into a second
/// envelope, and the hosting worker decodes each in place.
enum InvocationFraming {
    static func appendLength<I: FixedWidthInteger>(_ value: I, to bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    static func readLength<I: FixedWidthInteger>(_ type: I.Type, in bytes: UnsafeRawBufferPointer, at offset: Int) throws -> I {
        guard offset >= 0, offset + MemoryLayout<I>.size <= bytes.count else {
            throw StarlingError.typeMismatch(task: "actor call", detail: "the call's invocation is cut short (\(bytes.count) bytes)")
        }
        return I(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: I.self))
    }
}

/// Records a distributed call's arguments, each encoded with the binary coder.
public struct StarlingInvocationEncoder: DistributedTargetInvocationEncoder {
    public typealias SerializationRequirement = Codable
    var bytes: [UInt8] = []
    var genericSubstitutions: [String] = []
    private var done = false

    public mutating func recordGenericSubstitution<T>(_ type: T.Type) throws {
        guard let name = _mangledTypeName(type) else {
            throw StarlingError.typeMismatch(task: "actor call", detail: "generic argument \(type) has no mangled name")
        }
        genericSubstitutions.append(name)
    }

    public mutating func recordArgument<Value: Codable>(_ argument: RemoteCallArgument<Value>) throws {
        var encoder = BinaryEncoder()
        encoder.userInfo[.actorSystemKey] = StarlingActorSystem.forCoding
        let lengthAt = bytes.count
        InvocationFraming.appendLength(UInt64(0), to: &bytes)
        do {
            try encoder.encode(argument.value, into: &bytes)
        } catch {
            bytes.removeLast(bytes.count - lengthAt)
            throw error
        }
        let length = UInt64(bytes.count - lengthAt - 8).littleEndian
        withUnsafeBytes(of: length) { header in
            bytes.withUnsafeMutableBytes { $0.baseAddress!.advanced(by: lengthAt).copyMemory(from: header.baseAddress!, byteCount: 8) }
        }
    }

    public mutating func recordErrorType<E: Error>(_ type: E.Type) throws {}
    public mutating func recordReturnType<R: Codable>(_ type: R.Type) throws {}
    /// Appends the trailer (the runtime calls this once every argument is recorded).
    public mutating func doneRecording() throws {
        guard !done else { return }
        done = true
        Self.appendTrailer(genericSubstitutions, to: &bytes)
    }

    /// The framed invocation.
    func encoded() -> [UInt8] {
        guard !done else { return bytes }
        var framed = bytes
        Self.appendTrailer(genericSubstitutions, to: &framed)
        return framed
    }

    private static func appendTrailer(_ names: [String], to framed: inout [UInt8]) {
        let trailerStart = framed.count
        for name in names {
            let utf8 = Array(name.utf8)
            InvocationFraming.appendLength(UInt32(utf8.count), to: &framed)
            framed += utf8
        }
        InvocationFraming.appendLength(UInt32(names.count), to: &framed)
        InvocationFraming.appendLength(UInt32(framed.count - trailerStart + 4), to: &framed)
    }
}

/// Hands a call's arguments to `executeDistributedTarget` on the hosting worker, decoding each
/// from the request's bytes in place.
public struct StarlingInvocationDecoder: DistributedTargetInvocationDecoder {
    public typealias SerializationRequirement = Codable
    /// The invocation's bytes (kept alive by `storage`).
    private let storage: [UInt8]
    private let argumentsEnd: Int
    private let genericNames: [String]
    let system: StarlingActorSystem
    private var next = 0
    private var argumentIndex = 0

    init(encoded: [UInt8], system: StarlingActorSystem) throws {
        storage = encoded
        self.system = system
        (argumentsEnd, genericNames) = try encoded.withUnsafeBytes { bytes in
            let trailerLength = Int(try InvocationFraming.readLength(UInt32.self, in: bytes, at: bytes.count - 4))
            let count = Int(try InvocationFraming.readLength(UInt32.self, in: bytes, at: bytes.count - 8))
            let start = bytes.count - trailerLength
            guard trailerLength >= 8, start >= 0, count <= trailerLength / 4 else {
                throw StarlingError.typeMismatch(task: "actor call", detail: "the call's invocation has a malformed trailer")
            }
            var names: [String] = []
            var offset = start
            for _ in 0..<count {
                let length = Int(try InvocationFraming.readLength(UInt32.self, in: bytes, at: offset))
                guard offset + 4 + length <= bytes.count - 8 else {
                    throw StarlingError.typeMismatch(task: "actor call", detail: "the call's invocation has a malformed generic argument")
                }
                names.append(String(decoding: UnsafeRawBufferPointer(rebasing: bytes[(offset + 4)..<(offset + 4 + length)]), as: UTF8.self))
                offset += 4 + length
            }
            return (start, names)
        }
    }

    public mutating func decodeGenericSubstitutions() throws -> [Any.Type] {
        try genericNames.map { name in
            guard let type = _typeByName(name) else {
                throw StarlingError.typeMismatch(task: "actor call", detail: "generic argument type \(name) is not in this executable")
            }
            return type
        }
    }

    public mutating func decodeNextArgument<Argument: Codable>() throws -> Argument {
        argumentIndex += 1
        var decoder = BinaryDecoder()
        decoder.userInfo[.actorSystemKey] = system
        let (start, end) = (next, argumentsEnd)
        let index = argumentIndex
        return try storage.withUnsafeBytes { bytes in
            guard start < end else {
                throw StarlingError.typeMismatch(task: "actor call", detail: "the call carries \(index - 1) arguments, the method takes more")
            }
            let raw = try InvocationFraming.readLength(UInt64.self, in: bytes, at: start)
            guard end - start >= 8, raw <= UInt64(end - start - 8) else {
                throw StarlingError.typeMismatch(task: "actor call", detail: "argument \(index) is cut short")
            }
            let length = Int(raw)
            next = start + 8 + length
            do {
                return try decoder.decode(Argument.self, from: UnsafeRawBufferPointer(rebasing: bytes[(start + 8)..<(start + 8 + length)]))
            } catch {
                throw StarlingError.typeMismatch(task: "actor call", detail: "argument \(index) does not decode as \(Argument.self): \(error)")
            }
        }
    }

    public mutating func decodeErrorType() throws -> Any.Type? { nil }
    public mutating func decodeReturnType() throws -> Any.Type? { nil }
}

/// Receives what the target returned or threw, for the reply.
public final class StarlingResultHandler: DistributedTargetInvocationResultHandler {
    public typealias SerializationRequirement = Codable
    enum Outcome {
        case value([UInt8])
        case error(any Error)
    }
    var outcome: Outcome?

    public func onReturn<Success: Codable>(value: Success) async throws {
        var encoder = BinaryEncoder()
        encoder.userInfo[.actorSystemKey] = StarlingActorSystem.forCoding
        outcome = .value(try encoder.encode(value))
    }

    public func onReturnVoid() async throws { outcome = .value([]) }

    public func onThrow<Err: Error>(error: Err) async throws { outcome = .error(error) }
}
