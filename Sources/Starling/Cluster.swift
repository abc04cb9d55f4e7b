import Synchronization
import StarlingCodec
import StarlingCore
import StarlingNode
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
    /// Where this process serves the objects it owns (set once its endpoint listens).
    let ownerAddress: OwnerAddress
    var ownerURL: String { ownerAddress.url }
    /// Connections to the owners of borrowed refs.
    let owners: ConnectionPool
    /// This process's node (its object store) and the large objects it put there.
    let node: RPCClient
    let stored: StoredObjects
    /// The node this code runs on (hex id): a driver's local node, or a worker's node. Pass it
    /// to `Scheduling.node` to keep work here.
    public let nodeID: String
    /// This process's actor system: spawned actors' handles resolve against it.
    public let actorSystem: StarlingActorSystem
    /// The job this process works for (empty in a worker that was not told).
    let jobID: [UInt8]
    /// Counts the refs this process made and frees their values when the last goes.
    let references: ReferenceCounter

    init(objects: ObjectTable, submitter: TaskSubmitter, ownerAddress: OwnerAddress, nodeID: UniqueID,
         actorSystem: StarlingActorSystem, jobID: UniqueID, token: ClusterToken, node: RPCClient, stored: StoredObjects) {
        self.owners = ConnectionPool(token: token, name: "borrower")
        self.node = node
        self.stored = stored
        self.jobID = jobID.bytes
        self.objects = objects
        self.submitter = submitter
        self.ownerAddress = ownerAddress
        self.nodeID = nodeID.hex
        self.actorSystem = actorSystem
        references = ReferenceCounter(objects: objects, stored: stored, node: node,
                                      forgetLineage: { [submitter] id in Task { await submitter.forgetLineage(id) } })
        HealthReporter.shared.attach(self)
    }

    /// Starts an actor of type `A` on a worker of its own, initialised there with `config`;
    /// returns its handle once it is ready. The head places it (like a task, by its resources
    /// and scheduling) and restarts it per `maxRestarts` when its worker or node dies.
    /// ```swift
    /// let counter = try await cluster.spawn(Counter.self, config: 0, options: .init(name: "counter"))
    /// let total = try await counter.add(5)
    /// ```
    public func spawn<A: RemoteActor>(_ type: A.Type, config: A.Config, options: ActorOptions = ActorOptions()) async throws -> A {
        let display = options.name ?? "\(A.self)"
        let shape = ResourceSet(options.resources)
        if !shape.negativeNames.isEmpty {
            throw StarlingError.infeasible(task: display, reason: "negative amounts of \(shape.negativeNames.joined(separator: ", "))")
        }
        var encoder = BinaryEncoder()
        encoder.userInfo[.actorSystemKey] = actorSystem
        let encodedConfig = try encoder.encode(config)
        guard encodedConfig.count <= TaskExecutor.inlineLimit else {
            throw StarlingError.objectTooLarge(task: display, what: "config", bytes: encodedConfig.count, limit: TaskExecutor.inlineLimit)
        }
        guard let typeName = _mangledTypeName(A.self) else { throw StarlingError.unknownFunction(task: display, detail: "\(A.self) has no mangled name") }
        var spec = ActorSpec()
        spec.actorId = UniqueID.random().bytes
        spec.jobId = jobID
        spec.typeName = typeName
        spec.displayName = display
        spec.encodedConfig = encodedConfig
        spec.name = options.name ?? ""
        spec.namespace = options.namespace
        spec.lifetime = options.lifetime == .detached ? .detached : .job
        spec.maxRestarts = Int32(clamping: options.maxRestarts)
        spec.maxTaskRetries = Int32(clamping: options.maxTaskRetries)
        spec.maxConcurrency = UInt32(clamping: max(1, options.maxConcurrency))
        spec.resources = shape.quantities
        spec.strategy = TaskSubmitter.wireStrategy(options.scheduling)
        spec.owner = ProcessAddress(url: ownerURL, nodeId: UniqueID(hex: nodeID)?.bytes ?? [])
        let info = try await actorSystem.create(spec, getIfExists: options.getIfExists)
        return try A.resolve(id: ActorIdentity(info), using: actorSystem)
    }

    /// The live actor named `name` in `namespace` (spawned by any driver), as `A`.
    public func actor<A: RemoteActor>(named name: String, namespace: String = "default", as type: A.Type = A.self) async throws -> A {
        let info = try await actorSystem.lookup(name: name, namespace: namespace)
        guard info.spec?.typeName == _mangledTypeName(A.self) else {
            throw StarlingError.typeMismatch(task: "actor \(name)", detail: "it is a \(info.spec?.displayName ?? "?"), not a \(A.self)")
        }
        return try A.resolve(id: ActorIdentity(info), using: actorSystem)
    }

    /// Stops `actor`; with `restart` (and restarts left) it starts again with its original
    /// config, else its calls fail with `StarlingError.actorDied`.
    public func kill<A: RemoteActor>(_ actor: A, restart: Bool = false) async throws {
        try await actorSystem.kill(actor.id, restart: restart)
    }

    /// The cluster of the code running now: set inside `Starling.run` and inside tasks on
    /// workers, so a task can submit tasks of its own.
    @TaskLocal static var ambient: Cluster?

    /// The cluster this code runs on: in the closure of `Starling.run` or in a remote function.
    /// ```swift
    /// struct SumOfSquares: RemoteFunction {
    ///     static func run(_ n: Int) async throws -> Int {
    ///         let cluster = try Cluster.current()
    ///         var refs: [ObjectRef<Int>] = []
    ///         for i in 0..<n { refs.append(try await cluster.submit(Square.self, i)) }
    ///         return try await cluster.get(refs).reduce(0, +)
    ///     }
    /// }
    /// ```
    public static func current() throws -> Cluster {
        guard let ambient else {
            throw StarlingError.cluster("no cluster here: Cluster.current() works inside Starling.run and inside remote functions")
        }
        return ambient
    }

    /// Submits one call of `function` and returns a ref to its result at once.
    public func submit<F: RemoteFunction>(_ function: F.Type, _ input: F.Input,
                                          options: TaskOptions = TaskOptions()) async throws -> ObjectRef<F.Output> {
        let scope = SubmitScope()
        var encoder = BinaryEncoder()
        encoder.userInfo[.submitScope] = scope
        let encoded = try encoder.encode(input)
        guard encoded.count <= TaskExecutor.inlineLimit else {
            throw StarlingError.objectTooLarge(task: options.name ?? "\(F.self)", what: "argument", bytes: encoded.count, limit: TaskExecutor.inlineLimit)
        }
        let (spec, returnID, key) = try makeTask(function, encodedInput: encoded, options: options)
        objects.create(returnID)
        await submitter.submit(.init(spec: spec, returnID: returnID, maxRetries: options.maxRetries,
                                     retryUserErrors: options.retryUserErrors, heldRefs: scope.references), key: key)
        return ObjectRef(id: returnID, owner: ownerURL, reference: references.reference(returnID))
    }

    /// Submits `function` on the value `input` will have: the task is queued once that value is
    /// ready (as in Ray, a ref argument is a dependency), and fails with the dependency's
    /// error if its task failed. Returns at once.
    /// ```swift
    /// let a = try await cluster.submit(Square.self, 3)
    /// let b = try await cluster.submit(Square.self, a)   // runs after a; b == 81
    /// ```
    public func submit<F: RemoteFunction>(_ function: F.Type, _ input: ObjectRef<F.Input>,
                                          options: TaskOptions = TaskOptions()) async throws -> ObjectRef<F.Output> {
        let (template, returnID, key) = try makeTask(function, encodedInput: [], options: options)
        objects.create(returnID)
        let submitter = self.submitter
        Task {
            do {
                // The dependency's bytes are its value in the binary coder: the task's input.
                var spec = template
                spec.encodedArgs = try await value(of: input.id, owner: input.owner, timeout: nil)
                await submitter.submit(.init(spec: spec, returnID: returnID, maxRetries: options.maxRetries,
                                             retryUserErrors: options.retryUserErrors), key: key)
            } catch let error as StarlingError {
                self.objects.fail(returnID, error)
            } catch {
                self.objects.fail(returnID, .cluster("dependency \(input) of \(template.displayName) failed: \(error)"))
            }
        }
        return ObjectRef(id: returnID, owner: ownerURL, reference: references.reference(returnID))
    }

    /// Waits until `numReady` of `refs` are ready (finished or failed), or `timeout` passes;
    /// returns the ready ones and the rest, each in the order given.
    public func wait<T>(_ refs: [ObjectRef<T>], numReady: Int = 1,
                        timeout: Duration? = nil) async -> (ready: [ObjectRef<T>], pending: [ObjectRef<T>]) {
        let target = min(max(numReady, 0), refs.count)
        let ids = refs.map(\.id)
        var readyIDs = Set(ids.filter { objects.isReady($0) || stored.location($0) != nil })
        if readyIDs.count < target {
            await withTaskGroup(of: UniqueID?.self) { group in
                for ref in refs where !readyIDs.contains(ref.id) {
                    group.addTask {
                        do {
                            // Ready is enough: a value in a node's store is not fetched here.
                            if self.objects.knows(ref.id) {
                                _ = try await self.objects.value(ref.id, timeout: nil)
                            } else {
                                _ = try await self.value(of: ref.id, owner: ref.owner, timeout: nil)
                            }
                        } catch is CancellationError { return nil } catch {}
                        return ref.id
                    }
                }
                if let timeout {
                    group.addTask {
                        try? await Task.sleep(for: timeout)
                        return nil
                    }
                }
                while readyIDs.count < target, let next = await group.next() {
                    guard let id = next else { break } // the timeout fired
                    readyIDs.insert(id)
                }
                group.cancelAll()
            }
        }
        let ready = refs.filter { readyIDs.contains($0.id) }
        let pending = refs.filter { !readyIDs.contains($0.id) }
        return (ready, pending)
    }

    private func makeTask<F: RemoteFunction>(_ function: F.Type, encodedInput: [UInt8],
                                             options: TaskOptions) throws -> (TaskSpec, UniqueID, TaskSubmitter.Key) {
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
        spec.encodedArgs = encodedInput
        spec.resources = shape.quantities
        spec.maxRetries = Int32(clamping: options.maxRetries)
        spec.retryUserErrors = options.retryUserErrors
        spec.returnIds = [returnID.bytes]
        spec.owner = ProcessAddress(url: ownerURL, nodeId: [])
        return (spec, returnID, TaskSubmitter.Key(shape: shape, strategy: options.scheduling, waitIfInfeasible: options.waitIfInfeasible))
    }

    /// The value of `ref`, waiting until its task finished; throws the task's error.
    ///
    /// Cancelling the Swift Task that waits here cancels the task behind `ref` too (as
    /// `cancel(_:)` does), and `get` throws `StarlingError.cancelled`.
    public func get<T>(_ ref: ObjectRef<T>, timeout: Duration? = nil) async throws -> T {
        if let location = stored.location(ref.id), location.dataSize >= StoredObjects.decodeInPlaceSize {
            // Large, in this node's store and owned here: decoded in place (pinned meanwhile),
            // rather than copied out first.
            return try await StoredObjects.withValue(ref.id, holders: [], node: node) { try decode(T.self, of: ref, from: $0) }
        }
        let bytes: [UInt8]
        do {
            bytes = try await value(of: ref.id, owner: ref.owner, timeout: timeout)
        } catch is CancellationError {
            // An unstructured task: the cancel request must not inherit this task's cancellation.
            let (submitter, id) = (self.submitter, ref.id)
            Task { await submitter.cancel(id) }
            throw StarlingError.cancelled(task: ref.description)
        }
        return try bytes.withUnsafeBytes { try decode(T.self, of: ref, from: $0) }
    }

    /// `ref`'s value decoded from its bytes (actor handles in it resolve against this process).
    private func decode<T>(_ type: T.Type, of ref: ObjectRef<T>, from bytes: UnsafeRawBufferPointer) throws -> T {
        do {
            var decoder = BinaryDecoder()
            decoder.userInfo[.actorSystemKey] = actorSystem
            return try decoder.decode(T.self, from: bytes)
        } catch {
            throw StarlingError.typeMismatch(task: ref.description, detail: "the value does not decode as \(T.self): \(error)")
        }
    }

    /// The bytes of an object: from this process's table when it owns it, else from its owner.
    /// A result of this process's task whose stored copy was lost with its node is rebuilt by
    /// running the task again (within its retries).
    func value(of id: UniqueID, owner: String, timeout: Duration?) async throws -> [UInt8] {
        if let location = stored.location(id) {
            // In this node's store and owned here: read without asking the node, unless the
            // node spilled it meanwhile (then the node restores it).
            do { return try SharedMemory.read(location, id: id) } catch SharedSegment.Failure.gone {
                return try await StoredObjects.get(id, holders: [], node: node)
            } catch {
                throw StarlingError.objectLost(object: id.short, detail: "\(error)")
            }
        }
        guard objects.knows(id) || owner == ownerURL else {
            return try await ObjectOwnership.borrow(id, from: owner, pool: owners, node: node, timeout: timeout)
        }
        while true {
            let bytes = try await objects.value(id, timeout: timeout)
            guard let holder = objects.storeNode(id) else { return bytes }
            do {
                return try await StoredObjects.get(id, holders: [holder], node: node)
            } catch let StarlingError.objectLost(object, detail) {
                switch await submitter.reconstruct(id) {
                case .resubmitted:
                    continue
                case let .retriesUsed(task, attempts):
                    throw StarlingError.objectLost(object: object, detail: "\(detail); its task \(task) cannot run again: all \(attempts) attempt(s) allowed by maxRetries are used")
                case .unknown:
                    throw StarlingError.objectLost(object: object, detail: "\(detail); no lineage to rebuild it from")
                }
            }
        }
    }

    /// `body` run on a value in a node's store (an actor's large result), read in place through
    /// this process's node; the value is freed everywhere once read, as nothing else refers to it.
    func takeFromStore<R>(_ id: UniqueID, holder: [UInt8], _ body: (UnsafeRawBufferPointer) throws -> R) async throws -> R {
        defer { ReferenceCounter.free([id], holder: holder, via: node) }
        return try await StoredObjects.withValue(id, holders: [holder], node: node, body)
    }

    /// The values of `refs`, in order.
    public func get<T>(_ refs: [ObjectRef<T>], timeout: Duration? = nil) async throws -> [T] {
        var values: [T] = []
        values.reserveCapacity(refs.count)
        for ref in refs { values.append(try await get(ref, timeout: timeout)) }
        return values
    }

    /// Cancels the task behind `ref`: queued, it never runs; running, its Swift Task is
    /// cancelled on the worker. `get` then throws `StarlingError.cancelled`. A finished task
    /// keeps its value.
    public func cancel<T>(_ ref: ObjectRef<T>) async {
        await submitter.cancel(ref.id)
    }

    /// Stores `value` and returns a ref to it: small values in this process's memory, values
    /// of 100 KiB and more in the node's shared-memory object store (readable by every
    /// process on the node). Throws `StarlingError.objectStoreFull` when the store cannot hold it.
    public func put<T: Codable & Sendable>(_ value: T) async throws -> ObjectRef<T> {
        try await putEncoded(value)
    }

    func putEncoded<T: Codable & Sendable>(_ value: T) async throws -> ObjectRef<T> {
        // Large arrays gathered: a value bound for the store is copied once, into shared memory.
        var encoded = EncodedParts()
        try BinaryEncoder().encode(value, into: &encoded)
        let id = UniqueID.random()
        if encoded.count >= StoredObjects.threshold {
            stored.add(id, try await StoredObjects.put(encoded, id: id, owner: ownerURL, node: node))
        } else {
            objects.create(id)
            objects.fulfill(id, encoded.joined())
        }
        return ObjectRef(id: id, owner: ownerURL, reference: references.reference(id))
    }

    /// The cluster's live nodes, as the head knows them.
    public func nodes() async throws -> [NodeDescription] {
        do {
            return try await actorSystem.head().call(HeadRPC.listNodes, ListNodesRequest()).nodes.map {
                NodeDescription(id: UniqueID(bytes: $0.nodeId).hex, address: $0.address?.url ?? "",
                                resources: $0.totalResources, isHead: $0.isHead, labels: $0.labels)
            }
        } catch {
            throw StarlingError.cluster("cannot list nodes: \(error)")
        }
    }
}

/// One node of the cluster.
public struct NodeDescription: Sendable, Hashable {
    /// Hex id, for `Scheduling.node`.
    public let id: String
    /// The node manager's RPC address.
    public let address: String
    /// What it offers in all ("CPU": 4).
    public let resources: [String: Double]
    /// True for the head's own node.
    public let isHead: Bool
    public let labels: [String: String]
}

/// This process's object-serving address, known once its endpoint listens.
final class OwnerAddress: Sendable {
    private let value = Mutex("")
    var url: String { value.withLock { $0 } }
    func set(_ url: String) { value.withLock { $0 = url } }
}
