import Foundation
import StarlingCodec
import StarlingCore
import StarlingWire

/// Runs task specs on a worker: resolves the function, decodes the input, runs, encodes.
enum TaskExecutor {
    /// Largest argument or result carried inline in task messages (both directions).
    static let inlineLimit = 8 << 20

    static func run(_ spec: TaskSpec) async -> TaskResult {
        let clock = ContinuousClock()
        let start = clock.now
        var result = await execute(spec)
        let elapsed = clock.now - start
        result.runMicros = UInt64(max(0, elapsed.components.seconds * 1_000_000 + elapsed.components.attoseconds / 1_000_000_000_000))
        return result
    }

    private static func execute(_ spec: TaskSpec) async -> TaskResult {
        let borrowed = BorrowScope()
        var result = await execute(spec, borrowed: borrowed)
        // However the run ended, the refs it kept or passed on go back to the submitter.
        result.borrowedIds = borrowed.stillHeld.map(\.bytes)
        // Metrics the task recorded reach the head before its result reaches the owner.
        await HealthReporter.shared.flush()
        return result
    }

    private static func execute(_ spec: TaskSpec, borrowed: BorrowScope) async -> TaskResult {
        var result = TaskResult()
        result.taskId = spec.taskId
        guard let type = FunctionRegistry.resolve(spec.functionName) else {
            result.status = Status(code: .unknownFunction, message: "")
            result.error = remoteError(.unknownFunction, spec, typeName: "UnknownFunction",
                message: "no remote function \(spec.displayName) in this executable (mangled \(spec.functionName)); private and fileprivate types cannot be found by name, and workers must run the driver's binary")
            return result
        }
        do {
            let output = try await invoke(type, spec, borrowed: borrowed)
            if output.count > inlineLimit {
                // Too big to travel inline: into this node's store, where the owner reads it.
                return await storeResult(output, spec: spec, into: result)
            }
            var value = ReturnObject()
            value.objectId = spec.returnIds.first ?? []
            value.isInline = true
            value.inlineValue = output.joined()
            value.size = UInt64(output.count)
            result.returns = [value]
            result.status = Status(code: .ok, message: "")
        } catch let failure as DecodeFailure {
            result.status = Status(code: .typeMismatch, message: "")
            result.error = remoteError(.typeMismatch, spec, typeName: "TypeMismatch", message: failure.description)
        } catch {
            result.status = Status(code: .userError, message: "")
            result.error = remoteError(.userError, spec, typeName: String(reflecting: Swift.type(of: error)), message: String(describing: error))
        }
        return result
    }

    struct DecodeFailure: Error, CustomStringConvertible { let description: String }

    private static func storeResult(_ output: EncodedParts, spec: TaskSpec, into partial: TaskResult) async -> TaskResult {
        var result = partial
        do {
            // Sealed without waiting: a result lost with this worker before its seal arrives
            // is made again from its lineage.
            result.returns = [try await StoredObjects.storeInNode(output, id: UniqueID(bytes: spec.returnIds.first ?? []), owner: spec.owner?.url ?? "",
                                                                  sealWithoutWaiting: true)]
            result.status = Status(code: .ok, message: "")
        } catch let StarlingError.objectStoreFull(bytes, detail) {
            result.status = Status(code: .objectStoreFull, message: "")
            result.error = remoteError(.objectStoreFull, spec, typeName: "ObjectStoreFull", message: "\(bytes) \(detail)")
        } catch {
            result.status = Status(code: .internal, message: "")
            result.error = remoteError(.internal, spec, typeName: "StoreFailed", message: "storing the result failed: \(error)")
        }
        return result
    }

    /// Decodes the input (tracking its refs in `borrowed`), runs, encodes the output. The input
    /// is gone when this returns: refs of it still alive are held elsewhere in the worker.
    private static func invoke<F: RemoteFunction>(_ type: F.Type, _ spec: TaskSpec, borrowed: BorrowScope) async throws -> EncodedParts {
        let input: F.Input
        do {
            var decoder = BinaryDecoder()
            // Actor handles in the input resolve against this process's actor system.
            decoder.userInfo[.actorSystemKey] = StarlingActorSystem.forCoding
            decoder.userInfo[.borrowScope] = borrowed
            input = try decoder.decode(F.Input.self, from: spec.encodedArgs)
        } catch {
            throw DecodeFailure(description: "the argument does not decode as \(F.Input.self): \(error)")
        }
        let output = try await F.run(input)
        // Large arrays gathered: a result bound for the store is copied once.
        var encoded = EncodedParts()
        try BinaryEncoder().encode(output, into: &encoded)
        return encoded
    }

    /// This worker's log file (set by the node that started it).
    static let workerLog = ProcessInfo.processInfo.environment[WorkerEnvironment.workerLog] ?? ""

    private static func remoteError(_ code: StatusCode, _ spec: TaskSpec, typeName: String, message: String) -> RemoteError {
        var error = RemoteError()
        error.code = code
        error.typeName = typeName
        error.message = message
        error.taskName = spec.displayName
        error.taskId = spec.taskId
        error.attempt = spec.attempt
        error.workerLog = workerLog
        return error
    }
}
