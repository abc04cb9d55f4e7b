import Distributed
import StarlingCodec
import StarlingCore
import StarlingLog
import StarlingWire
import Synchronization

/// Starling's `DistributedActorSystem`: one per process (driver or worker). Calls to actors
/// hosted elsewhere go to their worker as `Worker.ActorCall` RPCs; actors hosted here are
/// kept by id and run calls that arrive for them.
public final class StarlingActorSystem: DistributedActorSystem, Sendable {
    /// Actor results larger than this go through the host's object store rather than inline
    /// in the reply: a 4 MB result reached a caller on the same node in 18.5–20.5 ms per
    /// parameter-server round instead of 22–24 (`starling-bench ps-probe`).
    static let storedResultSize = 1 << 20
    /// Actor-call arguments larger than this (encoded) go through the caller's object store
    /// the same way, and are freed once the call is answered.
    static let storedArgumentsSize = 1 << 20

    public typealias ActorID = ActorIdentity
    public typealias InvocationEncoder = StarlingInvocationEncoder
    public typealias InvocationDecoder = StarlingInvocationDecoder
    public typealias ResultHandler = StarlingResultHandler
    public typealias SerializationRequirement = Codable

    /// This process's system, once `Starling.run` or a worker set it up: what decoding an actor
    /// handle (in a task's argument or result) resolves against.
    static let installed = Mutex<StarlingActorSystem?>(nil)
    static var forCoding: StarlingActorSystem? { installed.withLock { $0 } }

    let token: ClusterToken
    /// The head (actor directory): a driver's connection, or an address a worker dials lazily.
    private let headURL: String?
    /// The calling process, for per-caller ordering at the actors it calls.
    let callerID = UniqueID.random()
    private let state = Mutex(State())
    private let creating = Mutex(())

    struct Sequencing {
        /// Bumped when the actor moved to a new worker (numbering starts again at 0 there).
        var incarnation: UInt64 = 0
        var next: UInt64 = 0
        /// Calls not yet answered or abandoned.
        var outstanding: Set<UInt64> = []

        /// Numbers `request` (and tells the actor which lower numbers it need not wait for).
        mutating func number(_ request: inout ActorCallRequest) -> (sequence: UInt64, incarnation: UInt64) {
            let sequence = next
            next += 1
            outstanding.insert(sequence)
            request.sequenceNumber = sequence
            request.callerAckedBelow = outstanding.min() ?? next
            return (sequence, incarnation)
        }
    }

    struct Outbox {
        var queue = CallQueue<QueuedCall>()
        var inFlight = 0
    }

    typealias QueuedCall = (request: ActorCallRequest, reply: CheckedContinuation<ActorCallReply, Error>)

    /// Batches in flight to one actor at most, and calls in one batch at most.
    static let batchesInFlight = 4
    static let maxBatch = 64

    private struct State {
        var local: [String: any DistributedActor] = [:]
        var mailboxes: [String: Mailbox] = [:]
        /// The calls each actor hosted here served, for the head; set from a change until the
        /// next report takes them.
        var served: [String: ActorCallCounts] = [:]
        var servedChanged = false
        /// Per actor called: the numbering of this caller's calls to its current incarnation.
        var sequences: [String: Sequencing] = [:]
        /// Calls waiting to be sent, per actor, and batches in flight to it.
        var outboxes: [String: Outbox] = [:]
        /// The identity the next actor initialised here takes (set by the worker's host).
        var pendingIdentity: ActorIdentity?
        /// Actors known dead (killed, or their worker gone), with why: calls fail at once.
        var dead: [String: String] = [:]
        /// Where an actor runs now, when it moved since its handle was made (a restart).
        var addresses: [String: String] = [:]
        var head: RPCClient?
    }

    /// Connections to the workers hosting the actors this process calls.
    private let workers: ConnectionPool

    init(token: ClusterToken, head: RPCClient?, headURL: String?) {
        self.token = token
        var settings = TransportSettings()
        settings.connectTimeout = .seconds(2)
        workers = ConnectionPool(token: token, name: "actor caller", settings: settings)
        self.headURL = headURL
        state.withLock { $0.head = head }
    }

    /// Sets up this process's system: with the driver's head connection, or (in a worker) the
    /// head's address to dial when an actor is spawned or looked up.
    /// Each `Starling.run` installs a new one (a process may run several clusters in turn).
    static func install(token: ClusterToken, head: RPCClient?, headURL: String?) -> StarlingActorSystem {
        let system = StarlingActorSystem(token: token, head: head, headURL: headURL)
        installed.withLock { $0 = system }
        return system
    }

    func head() async throws -> RPCClient {
        if let head = state.withLock({ $0.head }) { return head }
        guard let headURL, !headURL.isEmpty else { throw StarlingError.cluster("this process has no head to ask about actors") }
        let client = try await RPCClient.connect(to: Address(headURL), token: token, name: "actor system")
        let raced = state.withLock { state -> RPCClient? in
            if let existing = state.head { return existing }
            state.head = client
            return nil
        }
        if let raced {
            client.close()
            return raced
        }
        return client
    }

    // MARK: - The actor directory at the head

    func create(_ spec: ActorSpec, getIfExists: Bool) async throws -> ActorInfo {
        var request = CreateActorRequest()
        request.spec = spec
        request.getIfExists = getIfExists
        let reply: CreateActorReply
        do {
            reply = try await head().call(HeadRPC.createActor, request, timeout: .seconds(365 * 24 * 3600), returningFailures: true)
        } catch {
            throw StarlingError.cluster("spawning \(spec.displayName) failed: \(error)")
        }
        let code = reply.status?.code ?? .ok
        switch code {
        case .ok:
            guard let info = reply.actor, info.state == .alive else {
                throw StarlingError.actorDied(actor: spec.displayName, detail: reply.actor?.reason ?? "it did not start")
            }
            return info
        case .infeasible:
            throw StarlingError.infeasible(task: spec.displayName, reason: reply.status?.message ?? "")
        case .alreadyExists:
            throw StarlingError.cluster(reply.status?.message ?? "an actor named \(spec.name) already exists")
        case .userError:
            if let error = reply.actor?.deathError, let rebuilt = RemoteErrorCoding.decode(error.encodedError) { throw rebuilt }
            throw StarlingError.taskFailed(task: "\(spec.displayName).init", errorType: reply.actor?.deathError?.typeName ?? "Error",
                                          message: reply.actor?.deathError?.message ?? reply.status?.message ?? "")
        case .unknownFunction:
            throw StarlingError.unknownFunction(task: spec.displayName, detail: reply.actor?.deathError?.message ?? reply.status?.message ?? "")
        case .typeMismatch:
            throw StarlingError.typeMismatch(task: spec.displayName, detail: reply.actor?.deathError?.message ?? reply.status?.message ?? "")
        default:
            throw StarlingError.actorDied(actor: spec.displayName, detail: reply.status?.message ?? "")
        }
    }

    func lookup(name: String, namespace: String) async throws -> ActorInfo {
        var request = GetActorRequest()
        request.name = name
        request.namespace = namespace
        request.waitMs = 60_000
        do {
            let reply = try await head().call(HeadRPC.getActor, request, timeout: .seconds(90))
            guard let info = reply.actor, info.state == .alive else {
                throw StarlingError.actorDied(actor: name, detail: reply.actor?.reason ?? "not alive")
            }
            return info
        } catch let WireError.remote(_, _, code, message) where code == .notFound {
            throw StarlingError.cluster(message)
        }
    }

    func kill(_ actor: ActorIdentity, restart: Bool) async throws {
        var request = KillActorRequest()
        request.actorId = UniqueID(hex: actor.id)?.bytes ?? []
        request.noRestart = !restart
        request.reason = restart ? "killed with restart" : "killed with Cluster.kill"
        _ = try await head().call(HeadRPC.killActor, request)
        if restart {
            // The head restarted it before answering: follow it to its new worker.
            dropClient(url(of: actor))
            _ = await refresh(actor)
        } else {
            markDead(actor, reason: "killed with Cluster.kill")
        }
    }

    /// Ends the actor calling this, after the call it is in returns (a graceful exit from
    /// inside; it is not restarted).
    public func exit<A: RemoteActor>(_ actor: A) {
        let id = actor.id
        Task {
            try? await Task.sleep(for: .milliseconds(50))
            var request = KillActorRequest()
            request.actorId = UniqueID(hex: id.id)?.bytes ?? []
            request.fromActor = true
            request.noRestart = true
            _ = try? await self.head().call(HeadRPC.killActor, request)
        }
    }

    private func url(of actor: ActorIdentity) -> String {
        state.withLock { $0.addresses[actor.id] } ?? actor.url
    }

    /// After a call failed on the connection: asks the head where the actor is now (waiting
    /// while it restarts). Returns true when it runs again at a new address.
    private func refresh(_ actor: ActorIdentity) async -> (moved: Bool, maxTaskRetries: Int) {
        var request = GetActorRequest()
        request.actorId = UniqueID(hex: actor.id)?.bytes ?? []
        request.waitMs = 30_000
        // The head learns of the worker's death from its node a little after this caller saw
        // the connection drop: while it still reports the old address, ask again.
        var answer: ActorInfo?
        for _ in 0..<200 {
            answer = try? await head().call(HeadRPC.getActor, request, timeout: .seconds(60)).actor
            guard let info = answer, info.state == .alive, info.address?.url == self.url(of: actor) else { break }
            try? await Task.sleep(for: .milliseconds(50))
        }
        guard let info = answer else {
            if !Task.isCancelled { markDead(actor, reason: "its worker went away and the head cannot say where it is") }
            return (false, 0)
        }
        let retries = Int(info.spec?.maxTaskRetries ?? 0)
        if info.state == .alive, let url = info.address?.url, url != self.url(of: actor) {
            let stale = state.withLock { state -> [CheckedContinuation<ActorCallReply, Error>] in
                state.addresses[actor.id] = url
                // A new incarnation numbers its callers' calls from 0 again; calls still queued
                // with numbers for the old one go back to their callers, to be sent anew.
                let incarnation = (state.sequences[actor.id]?.incarnation ?? 0) + 1
                state.sequences[actor.id] = Sequencing(incarnation: incarnation)
                return state.outboxes[actor.id]?.queue.removeAll().map(\.reply) ?? []
            }
            for call in stale { call.resume(throwing: ConnectionLost(call: actor.name, detail: "the actor moved", sent: false)) }
            return (true, retries)
        }
        if info.state == .dead {
            markDead(actor, reason: info.reason.isEmpty ? "dead" : info.reason)
        }
        return (false, retries)
    }

    /// Closes connections to other workers (at the end of `Starling.run`).
    func shutdown() {
        Self.installed.withLock { if $0 === self { $0 = nil } }
        workers.closeAll()
        // A driver's head connection belongs to its session; a worker's own is closed here.
        if headURL != nil, let head = state.withLock({ state in defer { state.head = nil }; return state.head }) { head.close() }
    }

    // MARK: - Identities

    public func resolve<Act>(id: ActorIdentity, as actorType: Act.Type) throws -> Act? where Act: DistributedActor, Act.ID == ActorIdentity {
        guard let local = state.withLock({ $0.local[id.id] }) else { return nil }
        guard let typed = local as? Act else {
            throw StarlingError.typeMismatch(task: "\(id)", detail: "it is a \(type(of: local)), not a \(Act.self)")
        }
        return typed
    }

    public func assignID<Act>(_ actorType: Act.Type) -> ActorIdentity where Act: DistributedActor, Act.ID == ActorIdentity {
        if let identity = state.withLock({ state -> ActorIdentity? in defer { state.pendingIdentity = nil }; return state.pendingIdentity }) {
            return identity
        }
        return ActorIdentity(id: UniqueID.random().hex, url: "", name: "\(Act.self)")
    }

    public func actorReady<Act>(_ actor: Act) where Act: DistributedActor, Act.ID == ActorIdentity {
        state.withLock { $0.local[actor.id.id] = actor }
    }

    public func resignID(_ id: ActorIdentity) {
        _ = state.withLock { $0.local.removeValue(forKey: id.id) }
    }

    // MARK: - Calls from this process

    public func makeInvocationEncoder() -> StarlingInvocationEncoder { StarlingInvocationEncoder() }

    public func remoteCall<Act, Err, Res>(on actor: Act, target: RemoteCallTarget, invocation: inout StarlingInvocationEncoder,
                                          throwing: Err.Type, returning: Res.Type) async throws -> Res
    where Act: DistributedActor, Act.ID == ActorIdentity, Err: Error, Res: Codable {
        var decoder = BinaryDecoder()
        decoder.userInfo[.actorSystemKey] = self
        return try await call(actor.id, target: target, invocation: invocation) { bytes in
            do {
                return try decoder.decode(Res.self, from: bytes)
            } catch {
                throw StarlingError.typeMismatch(task: "\(actor.id)", detail: "the result does not decode as \(Res.self): \(error)")
            }
        }
    }

    public func remoteCallVoid<Act, Err>(on actor: Act, target: RemoteCallTarget, invocation: inout StarlingInvocationEncoder,
                                         throwing: Err.Type) async throws
    where Act: DistributedActor, Act.ID == ActorIdentity, Err: Error {
        try await call(actor.id, target: target, invocation: invocation) { _ in }
    }

    /// Records that `actor` is gone: later calls fail at once instead of waiting to reconnect.
    func markDead(_ actor: ActorIdentity, reason: String) {
        state.withLock { $0.dead[actor.id] = reason }
        dropClient(url(of: actor))
    }

    /// Makes the call (again, when its worker went away and the actor's retries allow) and
    /// gives `decode` the result's bytes, wherever they arrived: in the reply, or in place in
    /// this node's store for a large result.
    private func call<R>(_ actor: ActorIdentity, target: RemoteCallTarget, invocation: StarlingInvocationEncoder,
                         decode: (UnsafeRawBufferPointer) throws -> R) async throws -> R {
        var attempt = 0
        while true {
            do {
                return try await callOnce(actor, target: target, invocation: invocation, decode: decode)
            } catch let lost as ConnectionLost {
                // The worker went away: the actor restarts (or died). A call never sent is
                // sent again to the new incarnation; one that was sent (it may have run
                // partly) is retried as the actor's maxTaskRetries allow.
                let (moved, retries) = await refresh(actor)
                if moved, !lost.sent || retries < 0 || attempt < retries {
                    attempt += 1
                    continue
                }
                if let reason = state.withLock({ $0.dead[actor.id] }) {
                    throw StarlingError.actorDied(actor: "\(actor)", detail: "\(lost.call): \(reason)")
                }
                throw StarlingError.actorDied(actor: "\(actor)", detail: "\(lost.call) was running when its worker went away (\(lost.detail))\(moved ? "; the actor restarted, and maxTaskRetries allows no retry" : "")")
            }
        }
    }

    /// Queues a call for its actor; calls queued while batches are in flight go together in
    /// the next one (one round trip and one wake-up for many calls).
    ///
    /// A call is numbered in the same critical section that sends it directly or queues it,
    /// so the queue (and every batch) holds one caller's calls in number order.
    private func send(_ unnumbered: ActorCallRequest, to actor: ActorIdentity) async throws -> ActorCallReply {
        // Nothing queued or in flight (a caller that waits for each call): send it from this
        // task, one hop less than through a sender.
        var request = unnumbered
        let direct = state.withLock { state -> (sequence: UInt64, incarnation: UInt64, url: String)? in
            let box = state.outboxes[actor.id] ?? Outbox()
            guard box.queue.isEmpty && box.inFlight == 0 else { return nil }
            state.outboxes[actor.id, default: Outbox()].inFlight = 1
            let (sequence, incarnation) = state.sequences[actor.id, default: Sequencing()].number(&request)
            return (sequence, incarnation, state.addresses[actor.id] ?? actor.url)
        }
        if let direct {
            defer {
                finished(actor.id, direct.sequence, incarnation: direct.incarnation)
                let more = state.withLock { state -> Bool in
                    state.outboxes[actor.id]?.inFlight -= 1
                    return !(state.outboxes[actor.id]?.queue.isEmpty ?? true)
                }
                if more { Task.immediate { await self.drain(actor) } }
            }
            return try await client(for: actor, url: direct.url).call(WorkerRPC.actorCall, request, timeout: .seconds(365 * 24 * 3600),
                                                                        returningFailures: true)
        }
        var numbered: (sequence: UInt64, incarnation: UInt64) = (0, 0)
        defer { finished(actor.id, numbered.sequence, incarnation: numbered.incarnation) }
        return try await withCheckedThrowingContinuation { continuation in
            let startSender = state.withLock { state -> Bool in
                numbered = state.sequences[actor.id, default: Sequencing()].number(&request)
                state.outboxes[actor.id, default: Outbox()].queue.append((request, continuation))
                return state.outboxes[actor.id]!.inFlight < Self.batchesInFlight
            }
            if startSender {
                Task.immediate { await self.drain(actor) }
            }
        }
    }

    /// Sends the actor's queued calls in batches until its queue is empty.
    private func drain(_ actor: ActorIdentity) async {
        while true {
            let batch = state.withLock { state -> [QueuedCall] in
                // Changed in place: a copy of the outbox taken out of the dictionary and changed
                // would copy its whole queue.
                guard let inFlight = state.outboxes[actor.id]?.inFlight, inFlight < Self.batchesInFlight,
                      state.outboxes[actor.id]?.queue.isEmpty == false else { return [] }
                state.outboxes[actor.id]!.inFlight += 1
                return state.outboxes[actor.id]!.queue.takeBatch(max: Self.maxBatch, byteLimit: TaskExecutor.inlineLimit) {
                    $0.request.encodedInvocation.count
                }
            }
            guard !batch.isEmpty else { return }
            var unrun: [QueuedCall] = []
            do {
                var request = ActorCallBatchRequest()
                request.calls = batch.map(\.request)
                let reply = try await client(for: actor).call(WorkerRPC.actorCallBatch, request, timeout: .seconds(365 * 24 * 3600))
                for (index, call) in batch.enumerated() {
                    guard index < reply.replies.count else {
                        call.reply.resume(throwing: ConnectionLost(call: call.request.displayName, detail: "the worker answered \(reply.replies.count) of \(batch.count) calls"))
                        continue
                    }
                    if reply.replies[index].status?.code == .resourceExhausted {
                        unrun.append(call)
                    } else {
                        call.reply.resume(returning: reply.replies[index])
                    }
                }
            } catch {
                for call in batch { call.reply.resume(throwing: error) }
            }
            state.withLock { state in
                state.outboxes[actor.id]?.inFlight -= 1
                // Sent back unrun (the batch's reply was full): first in line again.
                state.outboxes[actor.id]?.queue.putBack(unrun)
            }
        }
    }

    /// A call's connection failed (its worker is gone or unreachable).
    private struct ConnectionLost: Error {
        let call: String
        let detail: String
        /// False when the worker could not even be reached (the call never ran).
        var sent = true
    }

    private func callOnce<R>(_ actor: ActorIdentity, target: RemoteCallTarget, invocation: StarlingInvocationEncoder,
                             decode: (UnsafeRawBufferPointer) throws -> R) async throws -> R {
        let method = Self.methodName(target)
        if let reason = state.withLock({ $0.dead[actor.id] }) {
            throw StarlingError.actorDied(actor: "\(actor)", detail: "\(actor.name).\(method): \(reason)")
        }
        var request = ActorCallRequest()
        request.actorId = UniqueID(hex: actor.id)?.bytes ?? []
        request.callerId = callerID.bytes
        request.methodName = target.identifier
        request.displayName = "\(actor.name).\(method)"
        let encoded = invocation.encoded()
        guard encoded.count <= TaskExecutor.inlineLimit else {
            throw StarlingError.objectTooLarge(task: request.displayName, what: "arguments", bytes: encoded.count, limit: TaskExecutor.inlineLimit)
        }
        var storedArguments: (id: UniqueID, node: [UInt8], cluster: Cluster)?
        if encoded.count > Self.storedArgumentsSize, let cluster = try? Cluster.current() {
            // Large arguments go through this node's store: the host reads them from shared
            // memory when it is on this node, or pulls them in chunks.
            let id = UniqueID.random()
            // Sealed without waiting: this caller lives until the call is answered.
            let stored = try await StoredObjects.storeInNode(encoded, id: id, owner: "", sealWithoutWaiting: true)
            request.storedInvocation = stored
            storedArguments = (id, stored.nodeId, cluster)
        } else {
            request.encodedInvocation = encoded.joined()
        }
        defer {
            if let storedArguments { ReferenceCounter.free([storedArguments.id], holder: storedArguments.node, via: storedArguments.cluster.node) }
        }
        let reply: ActorCallReply
        do {
            reply = try await send(request, to: actor)
        } catch let WireError.remote(_, _, code, message) {
            throw Self.failure(code: code, message: message, actor: actor, call: request.displayName, error: nil)
        } catch let error as StarlingError {
            throw error
        } catch let lost as ConnectionLost {
            throw lost
        } catch let WireError.cancelled(_, call) {
            // This caller gave up (its Task was cancelled): the connection and the actor are fine.
            throw StarlingError.cancelled(task: "\(request.displayName) (\(call))")
        } catch {
            dropClient(url(of: actor))
            throw ConnectionLost(call: request.displayName, detail: "\(error)")
        }
        if let status = reply.status, status.code != .ok {
            throw Self.failure(code: status.code, message: status.message, actor: actor, call: request.displayName, error: reply.error)
        }
        if let stored = reply.result, !stored.isInline {
            // A large result in the actor's node store: read it through this process's node.
            let cluster = try Cluster.current()
            return try await cluster.takeFromStore(UniqueID(bytes: stored.objectId), holder: stored.nodeId, decode)
        }
        return try reply.inlineResult.withUnsafeBytes(decode)
    }


    /// A call ended (answered or abandoned): later ones need not wait for its number.
    private func finished(_ actor: String, _ sequence: UInt64, incarnation: UInt64) {
        state.withLock { state in
            if state.sequences[actor]?.incarnation == incarnation { state.sequences[actor]?.outstanding.remove(sequence) }
        }
    }

    static func failure(code: StatusCode, message: String, actor: ActorIdentity, call: String, error: RemoteError?) -> Error {
        switch code {
        case .userError:
            if let error, let rebuilt = RemoteErrorCoding.decode(error.encodedError) { return rebuilt }
            return StarlingError.taskFailed(task: call, errorType: error?.typeName ?? "Error", message: error?.message ?? message)
        case .unknownFunction: return StarlingError.unknownFunction(task: call, detail: error?.message ?? message)
        case .typeMismatch: return StarlingError.typeMismatch(task: call, detail: error?.message ?? message)
        case .tooLarge: return StarlingError.objectTooLarge(task: call, what: "result", bytes: Int(error?.message ?? "") ?? 0, limit: TaskExecutor.inlineLimit)
        default: return StarlingError.actorDied(actor: "\(actor)", detail: "\(call): \(error?.message ?? message)")
        }
    }

    /// Method names by target identifier: `description` demangles, on every call otherwise.
    private static let methodNames = Mutex<[String: String]>([:])

    /// "add(_:)" from a target identifier (for display; the identifier itself is mangled).
    static func methodName(_ target: RemoteCallTarget) -> String {
        if let known = methodNames.withLock({ $0[target.identifier] }) { return known }
        let description = target.description
        var name = description
        if let open = description.firstIndex(of: "("), let dot = description[..<open].lastIndex(of: ".") {
            name = String(description[description.index(after: dot)..<open])
        }
        // One entry per distributed method of the program: bounded.
        methodNames.withLock { $0[target.identifier] = name }
        return name
    }

    private func client(for actor: ActorIdentity, url given: String? = nil) async throws -> RPCClient {
        let url = given ?? url(of: actor)
        guard !url.isEmpty else {
            throw StarlingError.actorDied(actor: "\(actor)", detail: "the handle has no address (an actor made outside Cluster.spawn)")
        }
        do {
            return try await workers.client(url)
        } catch {
            throw ConnectionLost(call: "\(actor.name)", detail: "its worker at \(url) cannot be reached: \(error)", sent: false)
        }
    }

    private func dropClient(_ url: String) {
        workers.drop(url)
    }

    // MARK: - Hosting (worker side)

    /// Serves `StartActor` on a worker: finds the type by its mangled name and creates it.
    func startHere(_ request: StartActorRequest, url: String) -> StartActorReply {
        var reply = StartActorReply()
        let spec = request.spec ?? ActorSpec()
        let identity = ActorIdentity(id: UniqueID(bytes: spec.actorId).hex, url: url, name: spec.displayName)
        guard let type = _typeByName(spec.typeName) as? any RemoteActor.Type else {
            reply.status = Status(code: .unknownFunction, message: "")
            reply.error = RemoteErrorCoding.remoteError(code: .unknownFunction, typeName: "UnknownActor",
                message: "no RemoteActor type \(spec.displayName) in this executable (mangled \(spec.typeName)); private and fileprivate types cannot be found by name",
                call: "\(spec.displayName).init")
            return reply
        }
        do {
            _ = try host(type, identity: identity, config: spec.encodedConfig, maxConcurrency: Int(spec.maxConcurrency))
            reply.address = ProcessAddress(url: url)
        } catch {
            reply.status = Status(code: .typeMismatch, message: "")
            reply.error = RemoteErrorCoding.remoteError(code: .typeMismatch, typeName: "TypeMismatch", message: "\(error)", call: "\(spec.displayName).init")
        }
        return reply
    }

    /// Creates an actor of `type` here with the identity the spawner chose.
    func host<Act: RemoteActor>(_ type: Act.Type, identity: ActorIdentity, config bytes: [UInt8], maxConcurrency: Int) throws -> Act {
        var decoder = BinaryDecoder()
        decoder.userInfo[.actorSystemKey] = self
        let config: Act.Config
        do {
            config = try decoder.decode(Act.Config.self, from: bytes)
        } catch {
            throw StarlingError.typeMismatch(task: "\(identity)", detail: "its config does not decode as \(Act.Config.self): \(error)")
        }
        // One creation at a time: the initialiser asks `assignID` for the identity set here.
        return creating.withLock { _ in
            state.withLock { state in
                state.pendingIdentity = identity
                state.mailboxes[identity.id] = Mailbox(limit: max(1, maxConcurrency))
            }
            return Act(actorSystem: self, config: config)
        }
    }

    /// Runs a batch of calls on a local actor: in order, one after another when the actor
    /// takes one call at a time, else all started in order and run as its limit allows.
    func execute(batch request: ActorCallBatchRequest, replyBudget: Int) async -> ActorCallBatchReply {
        var reply = ActorCallBatchReply()
        guard let first = request.calls.first else { return reply }
        let id = UniqueID(bytes: first.actorId).hex
        let limit = state.withLock { $0.mailboxes[id]?.limit } ?? 1
        if limit <= 1 {
            // One caller's calls, run in number order whatever order they came in (a call
            // waiting for one behind it in the same batch would wait forever).
            var bytes = 0
            var replies = [ActorCallReply](repeating: ActorCallReply(), count: request.calls.count)
            for index in request.calls.indices.sorted(by: { request.calls[$0].sequenceNumber < request.calls[$1].sequenceNumber }) {
                let call = request.calls[index]
                // Leave room for one more inline result; the rest go back to the caller unrun.
                if bytes + TaskExecutor.inlineLimit > replyBudget {
                    var unrun = ActorCallReply()
                    unrun.status = Status(code: .resourceExhausted, message: "not run: the batch's reply is full")
                    replies[index] = unrun
                    continue
                }
                let result = await execute(call)
                bytes += result.inlineResult.count
                replies[index] = result
            }
            reply.replies = replies
        } else {
            reply.replies = await withTaskGroup(of: (Int, ActorCallReply).self) { group in
                for (index, call) in request.calls.enumerated() {
                    group.addTask { (index, await self.execute(call)) }
                }
                var replies = [ActorCallReply](repeating: ActorCallReply(), count: request.calls.count)
                for await (index, result) in group { replies[index] = result }
                return replies
            }
        }
        return reply
    }

    /// Runs one call on a local actor, in its caller's order; returns the reply.
    func execute(_ request: ActorCallRequest) async -> ActorCallReply {
        let id = UniqueID(bytes: request.actorId).hex
        var reply = ActorCallReply()
        guard let (actor, mailbox) = state.withLock({ state -> ((any DistributedActor), Mailbox)? in
            guard let actor = state.local[id], let mailbox = state.mailboxes[id] else { return nil }
            return (actor, mailbox)
        }) else {
            reply.status = Status(code: .actorDied, message: "no actor \(id.prefix(8)) on this worker (it exited or was never here)")
            return reply
        }
        await mailbox.enter(caller: request.callerId, sequence: request.sequenceNumber, ackedBelow: request.callerAckedBelow)
        state.withLock { $0.served[id, default: ActorCallCounts(actorId: request.actorId, className: "\(type(of: actor))")].running += 1 }
        let started = ContinuousClock.now
        defer { served(id, started: started, failed: reply.status.map { $0.code != .ok } ?? false) }
        let handler = StarlingResultHandler()
        // Large arguments are decoded in place from the caller's node store, pinned until they
        // are all decoded (before the method's body starts).
        var pinnedArguments: StoredObjects.PinnedValue?
        if let stored = request.storedInvocation {
            do {
                pinnedArguments = try await StoredObjects.pin(UniqueID(bytes: stored.objectId), holders: [stored.nodeId], node: Cluster.current().node)
            } catch {
                await mailbox.leave()
                reply.status = Status(code: .objectLost, message: "the call's arguments (stored in the caller's node) cannot be read: \(error)")
                return reply
            }
        }
        defer { pinnedArguments?.release() }
        var decoder: StarlingInvocationDecoder
        do {
            if let pinnedArguments {
                // Unpinned once the last argument is decoded, before the method's body runs.
                decoder = try StarlingInvocationDecoder(borrowing: pinnedArguments.bytes, allRead: pinnedArguments.release, system: self)
            } else {
                decoder = try StarlingInvocationDecoder(encoded: request.encodedInvocation, system: self)
            }
        } catch {
            await mailbox.leave()
            reply.status = Status(code: .malformed, message: "the call's invocation does not decode: \(error)")
            return reply
        }
        do {
            try await executeDistributedTarget(on: actor, target: RemoteCallTarget(request.methodName),
                                               invocationDecoder: &decoder, handler: handler)
        } catch {
            handler.outcome = .error(error)
        }
        await mailbox.leave()
        switch handler.outcome {
        case let .value(bytes)?:
            if bytes.count > Self.storedResultSize {
                // Large: into this node's store, where the caller reads it (a caller on this
                // node copies it once from shared memory instead of through two sockets).
                do {
                    // Sealed before the reply: an actor result has no lineage, so it must not
                    // depend on this worker living until a seal sent later arrives.
                    reply.result = try await StoredObjects.storeInNode(bytes, id: UniqueID.random(), owner: "", sealWithoutWaiting: false)
                } catch {
                    reply.status = Status(code: .tooLarge, message: "")
                    reply.error = RemoteErrorCoding.remoteError(code: .tooLarge, typeName: "ObjectTooLarge", message: "\(bytes.count)",
                                                                call: "\(request.displayName) (storing its result failed: \(error))")
                }
            } else {
                reply.inlineResult = bytes.joined()
            }
        case let .error(error)?:
            let code: StatusCode
            if let starling = error as? StarlingError, case .typeMismatch = starling { code = .typeMismatch } else { code = .userError }
            reply.status = Status(code: code, message: "")
            var remote = RemoteErrorCoding.remoteError(code: code, typeName: String(reflecting: type(of: error)), message: String(describing: error), call: request.displayName)
            remote.encodedError = RemoteErrorCoding.encode(error)
            reply.error = remote
            reportFailedCall(request, remote)
        case nil:
            reply.status = Status(code: .unknownFunction, message: "")
            reply.error = RemoteErrorCoding.remoteError(code: .unknownFunction, typeName: "UnknownMethod",
                                                        message: "\(request.displayName) is not a distributed method of \(type(of: actor)) in this executable",
                                                        call: request.displayName)
        }
        return reply
    }
}

// MARK: - Counts of calls served, for the head's health service
extension StarlingActorSystem {
    /// A call on a hosted actor ended.
    private func served(_ id: String, started: ContinuousClock.Instant, failed: Bool) {
        let elapsed = ContinuousClock.now - started
        let report = state.withLock { state -> Bool in
            guard var counts = state.served[id] else { return false }
            counts.running -= 1
            if failed { counts.failed += 1 } else { counts.succeeded += 1 }
            counts.busySeconds += Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            state.served[id] = counts
            defer { state.servedChanged = true }
            return !state.servedChanged
        }
        if report { HealthReporter.shared.activityChanged() }
    }

    /// The calls each hosted actor served (totals), for a report to the head.
    func callCounts() -> [ActorCallCounts] {
        state.withLock { state in
            state.servedChanged = false
            return state.served.values.sorted { $0.actorId.lexicographicallyPrecedes($1.actorId) }
        }
    }

    /// An actor method threw: a task-failed event for the head's log.
    private func reportFailedCall(_ request: ActorCallRequest, _ error: RemoteError) {
        HealthReporter.shared.failed(Event(kind: .taskFailed, severity: .error,
                                           message: "actor call \(request.displayName) failed with \(error.typeName): \(error.message)",
                                           source: "actor \(UniqueID(bytes: request.actorId).short)", actorId: request.actorId,
                                           labels: ["function": request.displayName, "error_type": error.typeName]))
    }
}

/// Thrown errors that are Codable travel as themselves (their mangled type and encoded
/// value): the caller catches the same type it would catch locally.
enum RemoteErrorCoding {
    struct Envelope: Codable {
        var type: String
        var value: [UInt8]
    }

    static func encode(_ error: any Error) -> [UInt8] {
        guard let codable = error as? any (Error & Codable), let name = _mangledTypeName(type(of: codable)),
              let value = try? BinaryEncoder().encode(codable) else { return [] }
        return (try? BinaryEncoder().encode(Envelope(type: name, value: value))) ?? []
    }

    static func decode(_ bytes: [UInt8]) -> (any Error)? {
        guard !bytes.isEmpty, let envelope = try? BinaryDecoder().decode(Envelope.self, from: bytes),
              let type = _typeByName(envelope.type) as? any (Error & Codable).Type else { return nil }
        return decodeValue(type, envelope.value)
    }

    private static func decodeValue<E: Error & Codable>(_ type: E.Type, _ bytes: [UInt8]) -> (any Error)? {
        try? BinaryDecoder().decode(E.self, from: bytes)
    }

    static func remoteError(code: StatusCode, typeName: String, message: String, call: String) -> RemoteError {
        var error = RemoteError()
        error.code = code
        error.typeName = typeName
        error.message = message
        error.taskName = call
        return error
    }
}

/// Admits one actor's calls in each caller's order, at most `limit` at once.
actor Mailbox {
    nonisolated let limit: Int
    private var running = 0
    private var slotWaiters: [CheckedContinuation<Void, Never>] = []
    private var nextSequence: [[UInt8]: UInt64] = [:]
    private var turnWaiters: [[UInt8]: [UInt64: CheckedContinuation<Void, Never>]] = [:]

    init(limit: Int) { self.limit = limit }

    func enter(caller: [UInt8], sequence: UInt64, ackedBelow: UInt64) async {
        // Calls the caller abandoned before they arrived leave gaps: skip them (and let
        // whatever waits at or below the new expected number go).
        if nextSequence[caller, default: 0] < ackedBelow {
            nextSequence[caller] = ackedBelow
            for (waiting, waiter) in turnWaiters[caller] ?? [:] where waiting <= ackedBelow {
                turnWaiters[caller]?[waiting] = nil
                waiter.resume()
            }
        }
        if sequence > nextSequence[caller, default: 0] {
            await withCheckedContinuation { turnWaiters[caller, default: [:]][sequence] = $0 }
        }
        // A late call below the expected number (abandoned, then delivered) runs unordered.
        if sequence >= nextSequence[caller, default: 0] {
            nextSequence[caller] = sequence + 1
            wakeTurn(caller)
        }
        if running < limit && slotWaiters.isEmpty {
            running += 1
        } else {
            // The slot is handed over by `leave` (running stays counted), so no later call
            // can take it first.
            await withCheckedContinuation { slotWaiters.append($0) }
        }
    }

    private func wakeTurn(_ caller: [UInt8]) {
        let expected = nextSequence[caller, default: 0]
        if let waiter = turnWaiters[caller]?.removeValue(forKey: expected) { waiter.resume() }
    }

    func leave() {
        if slotWaiters.isEmpty {
            running -= 1
        } else {
            slotWaiters.removeFirst().resume()
        }
    }
}

extension ActorIdentity {
    /// The identity of an actor as the head describes it.
    init(_ info: ActorInfo) {
        self.init(id: UniqueID(bytes: info.spec?.actorId ?? []).hex, url: info.address?.url ?? "",
                  name: info.spec?.name.isEmpty == false ? info.spec!.name : info.spec?.displayName ?? "actor")
    }
}
