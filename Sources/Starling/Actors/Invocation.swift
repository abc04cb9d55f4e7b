import Distributed
import StarlingCodec

/// One call's arguments and generic substitutions, as they travel: each argument encoded
/// with the binary coder straight into one buffer, behind an 8-byte little-endian length; then
/// the generic substitutions' mangled names (4-byte length each), their count (4 bytes) and
/// the byte length of that trailer (4 bytes). Arguments are never copied into a second
/// envelope, and the hosting worker decodes each in place.
enum InvocationFraming {
    static func readLength<I: FixedWidthInteger>(_ type: I.Type, in bytes: UnsafeRawBufferPointer, at offset: Int) throws -> I {
        guard offset >= 0, offset + MemoryLayout<I>.size <= bytes.count else {
            throw StarlingError.typeMismatch(task: "actor call", detail: "the call's invocation is cut short (\(bytes.count) bytes)")
        }
        return I(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: I.self))
    }
}

/// Records a distributed call's arguments, each encoded with the binary coder. Large arrays
/// in them are gathered, not copied (see `EncodedParts`): arguments bound for the object store
/// are copied once, straight into shared memory.
public struct StarlingInvocationEncoder: DistributedTargetInvocationEncoder {
    public typealias SerializationRequirement = Codable
    var parts = EncodedParts()
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
        let lengthAt = parts.count
        parts.append(littleEndian: UInt64(0))
        do {
            try encoder.encode(argument.value, into: &parts)
        } catch {
            parts.removeLast(8)
            throw error
        }
        parts.overwrite(littleEndian: UInt64(parts.count - lengthAt - 8), at: lengthAt)
    }

    public mutating func recordErrorType<E: Error>(_ type: E.Type) throws {}
    public mutating func recordReturnType<R: Codable>(_ type: R.Type) throws {}
    /// Appends the trailer (the runtime calls this once every argument is recorded).
    public mutating func doneRecording() throws {
        guard !done else { return }
        done = true
        Self.appendTrailer(genericSubstitutions, to: &parts)
    }

    /// The framed invocation.
    func encoded() -> EncodedParts {
        guard !done else { return parts }
        var framed = parts
        Self.appendTrailer(genericSubstitutions, to: &framed)
        return framed
    }

    private static func appendTrailer(_ names: [String], to framed: inout EncodedParts) {
        let trailerStart = framed.count
        for name in names {
            let utf8 = Array(name.utf8)
            framed.append(littleEndian: UInt32(utf8.count))
            framed.append(contentsOf: utf8)
        }
        framed.append(littleEndian: UInt32(names.count))
        framed.append(littleEndian: UInt32(framed.count - trailerStart + 4))
    }
}

/// Hands a call's arguments to `executeDistributedTarget` on the hosting worker, decoding each
/// from the request's bytes in place.
public struct StarlingInvocationDecoder: DistributedTargetInvocationDecoder {
    public typealias SerializationRequirement = Codable
    /// The invocation's bytes: its own copy, or (`borrowed`) memory its host keeps valid
    /// while the call runs (a large invocation read in place from the node's store).
    private let owned: [UInt8]
    private let borrowed: UnsafeRawBufferPointer?
    /// Called once every argument has been read from `borrowed` (the memory may go then).
    private let allRead: (@Sendable () -> Void)?
    private let argumentsEnd: Int
    private let genericNames: [String]
    let system: StarlingActorSystem
    private var next = 0
    private var argumentIndex = 0

    init(encoded: [UInt8], system: StarlingActorSystem) throws {
        try self.init(owned: encoded, borrowed: nil, allRead: nil, system: system)
    }

    /// Decodes an invocation from memory the caller keeps valid and unchanged until `allRead`
    /// is called (once the last argument is decoded) or this decoder is no longer used.
    init(borrowing bytes: UnsafeRawBufferPointer, allRead: @escaping @Sendable () -> Void, system: StarlingActorSystem) throws {
        try self.init(owned: [], borrowed: bytes, allRead: allRead, system: system)
    }

    private init(owned: [UInt8], borrowed: UnsafeRawBufferPointer?, allRead: (@Sendable () -> Void)?, system: StarlingActorSystem) throws {
        self.owned = owned
        self.borrowed = borrowed
        self.allRead = allRead
        self.system = system
        let parse = { (bytes: UnsafeRawBufferPointer) throws -> (Int, [String]) in
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
        (argumentsEnd, genericNames) = try borrowed.map(parse) ?? owned.withUnsafeBytes(parse)
    }

    private func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        if let borrowed { return try body(borrowed) }
        return try owned.withUnsafeBytes(body)
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
        let (argument, following) = try withBytes { bytes -> (Argument, Int) in
            guard start < end else {
                throw StarlingError.typeMismatch(task: "actor call", detail: "the call carries \(index - 1) arguments, the method takes more")
            }
            let raw = try InvocationFraming.readLength(UInt64.self, in: bytes, at: start)
            guard end - start >= 8, raw <= UInt64(end - start - 8) else {
                throw StarlingError.typeMismatch(task: "actor call", detail: "argument \(index) is cut short")
            }
            let length = Int(raw)
            do {
                return (try decoder.decode(Argument.self, from: UnsafeRawBufferPointer(rebasing: bytes[(start + 8)..<(start + 8 + length)])),
                        start + 8 + length)
            } catch {
                throw StarlingError.typeMismatch(task: "actor call", detail: "argument \(index) does not decode as \(Argument.self): \(error)")
            }
        }
        next = following
        if next >= argumentsEnd { allRead?() }
        return argument
    }

    public mutating func decodeErrorType() throws -> Any.Type? { nil }
    public mutating func decodeReturnType() throws -> Any.Type? { nil }
}

/// Receives what the target returned or threw, for the reply.
public final class StarlingResultHandler: DistributedTargetInvocationResultHandler {
    public typealias SerializationRequirement = Codable
    enum Outcome {
        /// The encoded value, its large arrays gathered (a large result goes to the object
        /// store, copied once).
        case value(EncodedParts)
        case error(any Error)
    }
    var outcome: Outcome?

    public func onReturn<Success: Codable>(value: Success) async throws {
        var encoder = BinaryEncoder()
        encoder.userInfo[.actorSystemKey] = StarlingActorSystem.forCoding
        var parts = EncodedParts()
        try encoder.encode(value, into: &parts)
        outcome = .value(parts)
    }

    public func onReturnVoid() async throws { outcome = .value(EncodedParts()) }

    public func onThrow<Err: Error>(error: Err) async throws { outcome = .error(error) }
}
