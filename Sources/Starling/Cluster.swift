import StarlingCodec
import StarlingCore
import StarlingWire

/// A handle on a running cluster, given to the closure of `Starling.run`.
///
/// ```swift
/// try await Starling.run { cluster in
///     let refs = try await (1...100).asyncMap { try await cluster.submit(Square.self, $0) }
///     let squares = try await cluster.get(refs)
/// }
/// ```
public struct Cluster: Sendable {
    let objects: ObjectTable
    let submitter: TaskSubmitter
    let ownerURL: String

    /// Submits one call of `function` and returns a ref to its result at once.
    public func submit<F: RemoteFunction>(_ function: F.Type, _ input: F.Input,
                                          options: TaskOptions = TaskOptions()) async throws -> ObjectRef<F.Output> {
        let shape = ResourceSet(options.resources)
        if !shape.negativeNames.isEmpty {
            throw StarlingError.infeasible(task: options.name ?? "\(F.self)", reason: "negative amounts of \(shape.negativeNames.joined(separator: ", "))")
        }
        let returnID = UniqueID.random()
        var spec = TaskSpec()
        spec.taskId = UniqueID.random().bytes
        spec.kind = .normal
        spec.functionName = FunctionRegistry.name(of: function)
        spec.displayName = options.name ?? "\(F.self)"
        spec.encodedArgs = try BinaryEncoder().encode(input)
        spec.resources = shape.quantities
        spec.maxRetries = Int32(clamping: options.maxRetries)
        spec.retryUserErrors = options.retryUserErrors
        spec.returnIds = [returnID.bytes]
        objects.create(returnID)
        await submitter.submit(.init(spec: spec, returnID: returnID, maxRetries: options.maxRetries,
                                     retryUserErrors: options.retryUserErrors), shape: shape)
        return ObjectRef(id: returnID, owner: ownerURL)
    }

    /// The value of `ref`, waiting until its task finished; throws the task's error.
    public func get<T>(_ ref: ObjectRef<T>, timeout: Duration? = nil) async throws -> T {
        let bytes = try await objects.value(ref.id, timeout: timeout)
        do {
            return try BinaryDecoder().decode(T.self, from: bytes)
        } catch {
            throw StarlingError.typeMismatch(task: ref.description, detail: "the result does not decode as \(T.self): \(error)")
        }
    }

    /// The values of `refs`, in order.
    public func get<T>(_ refs: [ObjectRef<T>], timeout: Duration? = nil) async throws -> [T] {
        var values: [T] = []
        values.reserveCapacity(refs.count)
        for ref in refs { values.append(try await get(ref, timeout: timeout)) }
        return values
    }

    /// Stores `value` in the owner's memory and returns a ref to it.
    public func put<T: Codable & Sendable>(_ value: T) throws -> ObjectRef<T> {
        let id = UniqueID.random()
        objects.create(id)
        objects.fulfill(id, try BinaryEncoder().encode(value))
        return ObjectRef(id: id, owner: ownerURL)
    }
}
