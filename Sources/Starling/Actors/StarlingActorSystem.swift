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
    /// The calling process, for per-caller ordering at the actors it calls.
    let callerID = UniqueID.random()
    private let state = Mutex(State())
    private let creating = Mutex(())

    private struct State {
        var local: [String: any DistributedActor] = [:]
        var mailboxes: [String: Mailbox] = [:]
        var clients: [String: RPCClient] = [:]
        /// Per actor called: next sequence number, and the calls not yet answered.
        var sequences: [String: (next: UInt64, outstanding: Set<UInt64>)] = [:]
        /// Calls waiting for their sequence number to enter the in-flight window.
        var windowWaiters: [String: [(sequence: UInt64, waiter: CheckedContinuation<Void, Never>)]] = [:]
        /// The identity the next actor initialised here takes (set by the worker's host).
        var pendingIdentity: ActorIdentity?
        /// Actors known dead (killed, or their worker gone), with why: calls fail at once.
        var dead: [String: String] = [:]
    }

    init(token: ClusterToken) {
        self.token = token
    }

    static func install(token: ClusterToken) -> StarlingActorSystem {
        installed.withLock { current in
            if let current { return current }
            let system = StarlingActorSystem(token: token)
            current = system
            return system
        }
    }

    /// Closes connections to other workers (at the end of `Starling.run`).
    func shutdown() {
        let clients = state.withLock { state in defer { state.clients = [:] }; return state.clients }
        for (_, client) in clients { client.close() }
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
        let bytes = try await call(actor.id, target: target, invocation: invocation)
        var decoder = BinaryDecoder()
        decoder.userInfo[.actorSystemKey] = self
        do {
            return try decoder.decode(Res.self, from: bytes)
        } catch {
            throw StarlingError.typeMismatch(task: "\(actor.id)", detail: "the result does not decode as \(Res.self): \(error)")
        }
    }

    public func remoteCallVoid<Act, Err>(on actor: Act, target: RemoteCallTarget, invocation: inout StarlingInvocationEncoder,
                                         throwing: Err.Type) async throws
    where Act: DistributedActor, Act.ID == ActorIdentity, Err: Error {
        _ = try await call(actor.id, target: target, invocation: invocation)
    }

    /// Records that `actor` is gone: later calls fail at once instead of waiting to reconnect.
    func markDead(_ actor: ActorIdentity, reason: String) {
        state.withLock { $0.dead[actor.id] = reason }
        dropClient(actor.url)
    }

    private func call(_ actor: ActorIdentity, target: RemoteCallTarget, invocation: StarlingInvocationEncoder) async throws -> [UInt8] {
        let method = Self.methodName(target)
        if let reason = state.withLock({ $0.dead[actor.id] }) {
            throw StarlingError.actorDied(actor: "\(actor)", detail: "\(actor.name).\(method): \(reason)")
        }
        var request = ActorCallRequest()
        request.actorId = UniqueID(hex: actor.id)?.bytes ?? []
        request.callerId = callerID.bytes
        request.methodName = target.identifier
        request.displayName = "\(actor.name).\(method)"
        request.encodedInvocation = try invocation.encoded()
        guard request.encodedInvocation.count <= TaskExecutor.inlineLimit else {
            throw StarlingError.objectTooLarge(task: request.displayName, what: "arguments", bytes: request.encodedInvocation.count, limit: TaskExecutor.inlineLimit)
        }
        // The sequence number is taken now, in the order calls are made; calls that end
        // (answered or abandoned) no longer hold back the ones after them.
        let (sequence, ackedBelow) = state.withLock { state -> (UInt64, UInt64) in
            var entry = state.sequences[actor.id] ?? (0, [])
            let sequence = entry.next
            entry.next += 1
            entry.outstanding.insert(sequence)
            state.sequences[actor.id] = entry
            return (sequence, entry.outstanding.min() ?? entry.next)
        }
        defer { finished(actor.id, sequence) }
        // At most `callWindow` calls of this caller in flight per actor: the actor holds a call
        // that arrived early until the ones before it ran, so an unbounded burst could fill
        // every connection context of its worker with calls that wait for ones still queued.
        await enterWindow(actor.id, sequence)
        request.sequenceNumber = sequence
        request.callerAckedBelow = ackedBelow
        let reply: ActorCallReply
        do {
            reply = try await client(for: actor).call(WorkerRPC.actorCall, request, timeout: .seconds(365 * 24 * 3600), returningFailures: true)
        } catch let WireError.remote(_, _, code, message) {
            throw Self.failure(code: code, message: message, actor: actor, call: request.displayName, error: nil)
        } catch let error as StarlingError {
            throw error
        } catch {
            markDead(actor, reason: "its worker at \(actor.url) went away (\(error))")
            throw StarlingError.actorDied(actor: "\(actor)", detail: "\(request.displayName) failed: \(error)")
        }
        if let status = reply.status, status.code != .ok {
            throw Self.failure(code: status.code, message: status.message, actor: actor, call: request.displayName, error: reply.error)
        }
        return reply.inlineResult
    }

    /// Calls of one caller in flight to one actor at most.
    static let callWindow: UInt64 = 32

    private func enterWindow(_ actor: String, _ sequence: UInt64) async {
        await withCheckedContinuation { continuation in
            let admitted = state.withLock { state -> Bool in
                let lowest = state.sequences[actor]?.outstanding.min() ?? sequence
                if sequence < lowest + Self.callWindow { return true }
                state.windowWaiters[actor, default: []].append((sequence, continuation))
                return false
            }
            if admitted { continuation.resume() }
        }
    }

    private func finished(_ actor: String, _ sequence: UInt64) {
        let admitted = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.sequences[actor]?.outstanding.remove(sequence)
            guard let waiting = state.windowWaiters[actor], !waiting.isEmpty else { return [] }
            let lowest = state.sequences[actor]?.outstanding.min() ?? .max
            let limit = lowest == .max ? UInt64.max : lowest + Self.callWindow
            state.windowWaiters[actor] = waiting.filter { $0.sequence >= limit }
            return waiting.filter { $0.sequence < limit }.map(\.waiter)
        }
        for waiter in admitted { waiter.resume() }
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

    /// "add(_:)" from a target identifier (for display; the identifier itself is mangled).
    static func methodName(_ target: RemoteCallTarget) -> String {
        let description = target.description
        if let open = description.firstIndex(of: "("), let dot = description[..<open].lastIndex(of: ".") {
            return String(description[description.index(after: dot)..<open])
        }
        return description
    }

    private func client(for actor: ActorIdentity) async throws -> RPCClient {
        guard !actor.url.isEmpty else {
            throw StarlingError.actorDied(actor: "\(actor)", detail: "the handle has no address (an actor made outside Cluster.spawn)")
        }
        if let client = state.withLock({ $0.clients[actor.url] }) { return client }
        let client: RPCClient
        do {
            client = try await RPCClient.connect(to: Address(actor.url), token: token, name: "actor caller")
        } catch {
            throw StarlingError.actorDied(actor: "\(actor)", detail: "its worker at \(actor.url) cannot be reached: \(error)")
        }
        let raced = state.withLock { state -> RPCClient? in
            if let existing = state.clients[actor.url] { return existing }
            state.clients[actor.url] = client
            return nil
        }
        if let raced {
            client.close()
            return raced
        }
        return client
    }

    private func dropClient(_ url: String) {
        state.withLock { $0.clients.removeValue(forKey: url) }?.close()
    }

    /// Asks the worker in `identity` to create the actor described by `request`.
    func start(_ identity: ActorIdentity, _ request: StartActorRequest) async throws {
        let reply: StartActorReply
        do {
            reply = try await client(for: identity).call(WorkerRPC.startActor, request, timeout: .seconds(60), returningFailures: true)
        } catch let WireError.remote(_, _, code, message) {
            throw Self.failure(code: code, message: message, actor: identity, call: "\(identity.name).init", error: nil)
        }
        if let status = reply.status, status.code != .ok {
            throw Self.failure(code: status.code, message: status.message, actor: identity, call: "\(identity.name).init", error: reply.error)
        }
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
        let handler = StarlingResultHandler()
        var decoder: StarlingInvocationDecoder
        do {
            decoder = StarlingInvocationDecoder(payload: try BinaryDecoder().decode(InvocationPayload.self, from: request.encodedInvocation), system: self)
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
            if bytes.count > TaskExecutor.inlineLimit {
                reply.status = Status(code: .tooLarge, message: "")
                reply.error = RemoteErrorCoding.remoteError(code: .tooLarge, typeName: "ObjectTooLarge", message: "\(bytes.count)", call: request.displayName)
            } else {
                reply.inlineResult = bytes
            }
        case let .error(error)?:
            let code: StatusCode
            if let starling = error as? StarlingError, case .typeMismatch = starling { code = .typeMismatch } else { code = .userError }
            reply.status = Status(code: code, message: "")
            var remote = RemoteErrorCoding.remoteError(code: code, typeName: String(reflecting: type(of: error)), message: String(describing: error), call: request.displayName)
            remote.encodedError = RemoteErrorCoding.encode(error)
            reply.error = remote
        case nil:
            reply.status = Status(code: .unknownFunction, message: "")
            reply.error = RemoteErrorCoding.remoteError(code: .unknownFunction, typeName: "UnknownMethod",
                                                        message: "\(request.displayName) is not a distributed method of \(type(of: actor)) in this executable",
                                                        call: request.displayName)
        }
        return reply
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
    private let limit: Int
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
