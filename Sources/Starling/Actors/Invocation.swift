import Distributed
import StarlingCodec

/// One call's arguments and generic substitutions, as they travel.
struct InvocationPayload: Codable {
    var genericSubstitutions: [String] = []
    var arguments: [[UInt8]] = []
}

/// Records a distributed call's arguments, each encoded with the binary coder.
public struct StarlingInvocationEncoder: DistributedTargetInvocationEncoder {
    public typealias SerializationRequirement = Codable
    var payload = InvocationPayload()

    public mutating func recordGenericSubstitution<T>(_ type: T.Type) throws {
        guard let name = _mangledTypeName(type) else {
            throw StarlingError.typeMismatch(task: "actor call", detail: "generic argument \(type) has no mangled name")
        }
        payload.genericSubstitutions.append(name)
    }

    public mutating func recordArgument<Value: Codable>(_ argument: RemoteCallArgument<Value>) throws {
        var encoder = BinaryEncoder()
        encoder.userInfo[.actorSystemKey] = StarlingActorSystem.forCoding
        payload.arguments.append(try encoder.encode(argument.value))
    }

    public mutating func recordErrorType<E: Error>(_ type: E.Type) throws {}
    public mutating func recordReturnType<R: Codable>(_ type: R.Type) throws {}
    public mutating func doneRecording() throws {}

    func encoded() throws -> [UInt8] { try BinaryEncoder().encode(payload) }
}

/// Hands a call's arguments to `executeDistributedTarget` on the hosting worker.
public struct StarlingInvocationDecoder: DistributedTargetInvocationDecoder {
    public typealias SerializationRequirement = Codable
    let payload: InvocationPayload
    let system: StarlingActorSystem
    var next = 0

    public mutating func decodeGenericSubstitutions() throws -> [Any.Type] {
        try payload.genericSubstitutions.map { name in
            guard let type = _typeByName(name) else {
                throw StarlingError.typeMismatch(task: "actor call", detail: "generic argument type \(name) is not in this executable")
            }
            return type
        }
    }

    public mutating func decodeNextArgument<Argument: Codable>() throws -> Argument {
        guard next < payload.arguments.count else {
            throw StarlingError.typeMismatch(task: "actor call", detail: "the call carries \(payload.arguments.count) arguments, the method takes more")
        }
        defer { next += 1 }
        var decoder = BinaryDecoder()
        decoder.userInfo[.actorSystemKey] = system
        do {
            return try decoder.decode(Argument.self, from: payload.arguments[next])
        } catch {
            throw StarlingError.typeMismatch(task: "actor call", detail: "argument \(next + 1) does not decode as \(Argument.self): \(error)")
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
