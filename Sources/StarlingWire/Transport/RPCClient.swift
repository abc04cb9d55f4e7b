import CNNG
import Foundation
import StarlingLog
import Synchronization

/// A connection to one peer's RPC endpoint: many concurrent typed calls over one REQ socket.
///
/// Connecting authenticates with the cluster token (see `Handshake`); after a lost connection
/// NNG redials in the background and the next call authenticates the new connection first.
/// ```swift
/// let client = try await RPCClient.connect(to: Address("tcp://127.0.0.1:6380"), token: token)
/// let reply = try await client.call(DiagnosticsRPC.echo, EchoRequest(payload: [1, 2, 3]))
/// ```
public final class RPCClient: Sendable {
    /// The peer's address.
    public let peer: Address
    private let socket: nng_socket
    private let connections: ConnectionRegistry
    private let inFlight: InFlightCalls
    private let token: ClusterToken
    private let name: String
    private let settings: TransportSettings
    private let slots = Mutex<[RequestSlot]>([])
    private let authenticated = Mutex<UInt32?>(nil)
    private let gate = HandshakeGate()
    private let closed = Atomic<Bool>(false)
    private let openContexts = Atomic<Int>(0)

    /// Idle (context, aio) pairs kept for reuse; more are made on demand and freed after use.
    static let idleSlotLimit = 64

    private init(peer: Address, token: ClusterToken, name: String, settings: TransportSettings) throws {
        var socket = nng_socket()
        try NNG.check(nng_req0_open(&socket), "nng_req0_open")
        self.socket = socket
        self.peer = peer
        self.token = token
        self.name = name
        self.settings = settings
        let inFlight = InFlightCalls()
        self.inFlight = inFlight
        if settings.failCallsOnDisconnect {
            self.connections = ConnectionRegistry(label: "client of \(peer)", onRemoved: { _ in inFlight.connectionLost() })
        } else {
            self.connections = ConnectionRegistry(label: "client of \(peer)")
        }
        do {
            try NNG.check(nng_socket_set_size(socket, NNG.optRecvMaxSize, settings.maxMessageSize), "set recv-size-max")
            // Never resend a request on a live connection: a slow task would run twice.
            try NNG.check(nng_socket_set_ms(socket, NNG.optReqResendTime, NNG_DURATION_INFINITE), "set req:resend-time")
            try connections.watch(socket)
            try Endpoint.dial(socket, to: peer, settings: settings)
        } catch {
            nng_close(socket)
            connections.release()
            throw error
        }
    }

    /// Connects to `peer` and authenticates, waiting up to `settings.connectTimeout`.
    public static func connect(to peer: Address, token: ClusterToken, name: String = "starling",
                               settings: TransportSettings = .default) async throws -> RPCClient {
        let client = try RPCClient(peer: peer, token: token, name: name, settings: settings)
        do {
            try await client.ensureAuthenticated()
        } catch {
            client.close()
            throw error
        }
        return client
    }

    deinit {
        close()
    }

    /// Closes the connection; pending calls fail with `WireError.closed`.
    ///
    /// NNG must not see `nng_close` while another thread is inside an operation on the same
    /// socket (libnng 1.5.2 panics on a freed mutex), so the socket is closed by whichever
    /// comes last: this call, or the last call in flight.
    public func close() {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let idle = slots.withLock { slots in defer { slots = [] }; return slots }
        for slot in idle { retire(slot) }
        if inFlight.closeWhenIdle() { finishClose() }
    }

    private func finishClose() {
        let connections = self.connections
        NNG.closeInBackground(socket) { connections.release() }
    }

    /// Calls `rpc` without waiting for its answer: the request is on its way when this returns
    /// (it starts in an immediate task, which runs until the send is under way), so a call made
    /// next on this client arrives after it. `failed` hears of an error, if given.
    public func post<Request, Reply>(_ rpc: RPC<Request, Reply>, _ request: Request, timeout: Duration? = nil,
                                     failed: (@Sendable (any Error) -> Void)? = nil) {
        Task.immediate {
            do {
                _ = try await self.call(rpc, request, timeout: timeout)
            } catch {
                failed?(error)
            }
        }
    }

    /// How long to wait before asking again after an UNAVAILABLE answer (`attempt` counts from
    /// 1): 2 ms, doubling up to 200 ms; nil once 50 attempts (about 8 s) are used.
    public static func delayBeforeAskingAgain(after attempt: Int) -> Duration? {
        attempt < 50 ? .milliseconds(min(200, 1 << min(attempt, 8))) : nil
    }

    /// Calls `rpc` and returns its reply; throws `WireError.remote` for a non-OK status.
    /// `timeout` defaults to `settings.callTimeout`.
    public func call<Request, Reply>(_ rpc: RPC<Request, Reply>, _ request: Request, timeout: Duration? = nil) async throws -> Reply {
        try await call(rpc, request, timeout: timeout, returningFailures: false)
    }

    /// Like `call`, but a reply whose status is not OK is returned, not thrown, when the
    /// reply carries more than its status (an actor call's `RemoteError`, for example).
    public func call<Request, Reply>(_ rpc: RPC<Request, Reply>, _ request: Request, timeout: Duration? = nil,
                                     returningFailures: Bool) async throws -> Reply {
        let received = try await exchangeReply(rpc, request, timeout: timeout)
        return try decodeReply(received, rpc, returningFailures: returningFailures)
    }

    /// Sends `request` and returns the reply frame undecoded.
    func exchangeReply<Request, Reply>(_ rpc: RPC<Request, Reply>, _ request: Request, timeout: Duration?) async throws -> ReceivedMessage {
        var attempt = 0
        while true {
            try await ensureAuthenticated()
            let outgoing = try OutgoingMessage.pack(request, method: rpc.method, limit: settings.maxMessageSize, what: "\(rpc.name) request")
            let received = try await exchange(outgoing, call: rpc.name, timeout: timeout ?? settings.callTimeout)
            attempt += 1
            // NNG redialed a lost connection and sent this on the new one before its handshake:
            // the server refused it without running anything. Authenticate that one, ask again.
            guard attempt < 3, Self.refusedUnauthenticated(received) else { return received }
            authenticated.withLock { $0 = nil }
        }
    }

    /// True for the server's UNAUTHENTICATED error reply. Read from the frame's first bytes,
    /// not decoded: every reply passes here. A reply's status is field 1 (a `Status`, tag
    /// 0x0A), whose code is its field 1 (a varint, tag 0x08), written first.
    static func refusedUnauthenticated(_ received: ReceivedMessage) -> Bool {
        let body = received.body
        guard body.count >= 4, body[0] == 0x0A else { return false }
        var index = 1
        // Skip the status's length (a varint of at most a few bytes).
        while index < min(body.count, 6), body[index] & 0x80 != 0 { index += 1 }
        index += 1
        guard index + 1 < body.count, body[index] == 0x08 else { return false }
        return Int32(body[index + 1]) == StatusCode.unauthenticated.rawValue
    }

    /// Connects without running the handshake (tests of what the server does to such peers).
    static func connectWithoutHandshake(to peer: Address, settings: TransportSettings = .default) async throws -> RPCClient {
        let client = try RPCClient(peer: peer, token: ClusterToken.generate(), name: "unauthenticated", settings: settings)
        let deadline = ContinuousClock.now + settings.connectTimeout
        while client.connections.newest == nil {
            guard ContinuousClock.now < deadline else {
                client.close()
                throw WireError.connectionRefused(peer: peer.description, detail: "no connection within \(settings.connectTimeout)")
            }
            try await Task.sleep(for: .milliseconds(2))
        }
        return client
    }

    /// Sends raw bytes as a request frame and returns the raw reply body (fuzzing, tests).
    func callRaw(_ bytes: [UInt8], authenticate: Bool = true, timeout: Duration? = nil) async throws -> [UInt8] {
        if authenticate { try await ensureAuthenticated() }
        let outgoing = try bytes.withUnsafeBytes { try OutgoingMessage.copying($0) }
        let received = try await exchange(outgoing, call: "raw", timeout: timeout ?? settings.callTimeout)
        return Array(received.body)
    }

    func decodeReply<Request, Reply>(_ received: ReceivedMessage, _ rpc: RPC<Request, Reply>, returningFailures: Bool) throws -> Reply {
        let reply: Reply
        do {
            reply = try Reply(unpacking: received.body)
        } catch {
            throw WireError.malformed(what: "\(rpc.name) reply from \(peer)", detail: "\(error)")
        }
        if !returningFailures, let status = reply.status, status.code != .ok {
            throw WireError.remote(peer: peer.description, call: rpc.name, code: status.code, message: status.message)
        }
        return reply
    }

    // MARK: - Authentication

    private func ensureAuthenticated() async throws {
        if let current = connections.newest, authenticated.withLock({ $0 }) == current { return }
        try await gate.run { try await self.handshake() }
    }

    /// Runs the handshake on the current connection (waiting for one up to the connect timeout).
    private func handshake() async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + settings.connectTimeout
        while true {
            if closed.load(ordering: .acquiring) { throw WireError.closed(peer: peer.description, call: "connect") }
            if let current = connections.newest {
                if authenticated.withLock({ $0 }) == current { return }
                let hello = Handshake.hello(peerName: name)
                let helloOut = try OutgoingMessage.pack(hello, method: HandshakeRPC.hello.method, limit: settings.maxMessageSize, what: "hello")
                let helloIn = try await exchange(helloOut, call: HandshakeRPC.hello.name, timeout: settings.handshakeTimeout)
                let helloReply: HelloReply
                do { helloReply = try HelloReply(unpacking: helloIn.body) } catch {
                    throw WireError.unauthenticated(peer: peer.description, detail: "the hello reply does not parse: \(error)")
                }
                let prove = try Handshake.prove(helloReply, hello: hello, token: token, peer: peer.description)
                let proveOut = try OutgoingMessage.pack(prove, method: HandshakeRPC.prove.method, limit: settings.maxMessageSize, what: "prove")
                let proveIn: ReceivedMessage
                do {
                    proveIn = try await exchange(proveOut, call: HandshakeRPC.prove.name, timeout: settings.handshakeTimeout)
                } catch WireError.timeout, WireError.closed {
                    throw WireError.unauthenticated(peer: peer.description, detail: "the server closed the connection after our proof: the cluster tokens differ")
                }
                guard helloIn.pipeID == proveIn.pipeID else { continue } // reconnected midway: start over
                authenticated.withLock { $0 = proveIn.pipeID }
                Logger(label: "rpc-client").debug("authenticated connection \(proveIn.pipeID) to \(peer)")
                return
            }
            if clock.now >= deadline {
                throw WireError.connectionRefused(peer: peer.description, detail: "no connection within \(settings.connectTimeout) (refused or unreachable)")
            }
            try await Task.sleep(for: .milliseconds(2))
        }
    }

    // MARK: - Request/reply on a context

    private func exchange(_ outgoing: OutgoingMessage, call: String, timeout: Duration) async throws -> ReceivedMessage {
        guard let ticket = inFlight.begin() else {
            outgoing.free()
            throw WireError.closed(peer: peer.description, call: call)
        }
        defer { if inFlight.end(ticket) { finishClose() } }
        let slot: RequestSlot
        do { slot = try takeSlot() } catch { outgoing.free(); throw error }
        defer { giveBack(slot) }
        inFlight.attach(ticket, slot.aio)
        let milliseconds = timeout.nngMilliseconds
        slot.aio.setMessage(outgoing.message)
        // Send, then receive the reply on the same context, chained in NNG's callback: the
        // calling task is resumed once, with the reply. The timeout covers each phase.
        let context = slot.context
        let received = await slot.aio.run(timeout: milliseconds, { nng_ctx_send(context, $0) },
                                          then: { nng_ctx_recv(context, $0) })
        guard received == 0, let message = slot.aio.takeMessage() else {
            // A failed send leaves the request in the aio; a failed receive leaves nothing.
            if received != 0, let unsent = slot.aio.takeMessage() { nng_msg_free(unsent) }
            throw failure(received == 0 ? NNG.closedCode : received, call: call, milliseconds: milliseconds, lost: inFlight.wasLost(ticket))
        }
        return ReceivedMessage(taking: message)
    }

    private func failure(_ code: Int32, call: String, milliseconds: Int32, lost: Bool) -> WireError {
        if lost { return .closed(peer: peer.description, call: call) }
        switch code {
        case NNG.timedOut: return .timeout(peer: peer.description, call: call, milliseconds: Int(milliseconds))
        case NNG.closedCode, NNG.connectionReset, NNG.connectionShutdown: return .closed(peer: peer.description, call: call)
        case NNG.cancelledCode: return .cancelled(peer: peer.description, call: call)
        case NNG.messageSize: return .tooLarge(what: "\(call) request", size: -1, limit: settings.maxMessageSize)
        default: return .nng(operation: "\(call) to \(peer)", code: code, detail: NNG.describe(code))
        }
    }

    private func takeSlot() throws -> RequestSlot {
        if let slot = slots.withLock({ $0.popLast() }) { return slot }
        if closed.load(ordering: .acquiring) { throw WireError.closed(peer: peer.description, call: "call") }
        let slot = try RequestSlot(socket: socket)
        openContexts.add(1, ordering: .relaxed)
        return slot
    }

    private func giveBack(_ slot: RequestSlot) {
        slot.aio.reset()
        let kept = slots.withLock { slots -> Bool in
            guard slots.count < Self.idleSlotLimit, !closed.load(ordering: .acquiring) else { return false }
            slots.append(slot)
            return true
        }
        if !kept { retire(slot) }
    }

    private func retire(_ slot: RequestSlot) {
        slot.close()
        openContexts.subtract(1, ordering: .relaxed)
    }

    /// Request contexts this client holds (pooled or in use) and calls awaiting a reply:
    /// tests use them to prove that cancellation and timeouts leak nothing.
    public var diagnostics: (contexts: Int, inFlight: Int) {
        (openContexts.load(ordering: .relaxed), inFlight.count)
    }
}

/// A REQ context and the aio that drives it; owned by one call at a time.
final class RequestSlot: Sendable {
    let context: nng_ctx
    let aio: AsyncAio

    init(socket: nng_socket) throws {
        var context = nng_ctx()
        try NNG.check(nng_ctx_open(&context, socket), "nng_ctx_open")
        self.context = context
        do { aio = try AsyncAio() } catch { nng_ctx_close(context); throw error }
    }

    func close() {
        nng_ctx_close(context)
    }

}

/// The calls waiting on a client's connection, so that losing it can fail them at once
/// (REQ would otherwise resend them on the next connection, running a request twice).
final class InFlightCalls: Sendable {
    private struct Entry { var aio: AsyncAio?; var lost = false }
    private struct Table { var next = 0; var entries: [Int: Entry] = [:]; var closing = false }
    private let table = Mutex(Table())

    /// Registers a call; nil once the client is closing.
    func begin() -> Int? {
        table.withLock { table in
            guard !table.closing else { return nil }
            table.next += 1
            table.entries[table.next] = Entry()
            return table.next
        }
    }

    func attach(_ ticket: Int, _ aio: AsyncAio) {
        table.withLock { $0.entries[ticket]?.aio = aio }
    }

    /// Ends a call; true when it was the last one of a closing client (the caller closes).
    func end(_ ticket: Int) -> Bool {
        table.withLock { table in
            table.entries.removeValue(forKey: ticket)
            return table.closing && table.entries.isEmpty
        }
    }

    /// Stops new calls and cancels pending ones; true when none is in flight (close now).
    func closeWhenIdle() -> Bool {
        table.withLock { table in
            table.closing = true
            for entry in table.entries.values { if let aio = entry.aio?.handle { nng_aio_cancel(aio) } }
            return table.entries.isEmpty
        }
    }

    var count: Int { table.withLock { $0.entries.count } }

    func wasLost(_ ticket: Int) -> Bool {
        table.withLock { $0.entries[ticket]?.lost ?? false }
    }

    /// Cancels every pending operation. Runs under the lock so that no aio is handed to
    /// another call meanwhile; completion callbacks never take this lock.
    func connectionLost() {
        table.withLock { table in
            for key in table.entries.keys {
                table.entries[key]?.lost = true
                if let aio = table.entries[key]?.aio?.handle { nng_aio_cancel(aio) }
            }
        }
    }
}

/// Runs one handshake at a time per client; callers arriving meanwhile share its outcome.
actor HandshakeGate {
    private var running: Task<Void, Error>?

    func run(_ body: @escaping @Sendable () async throws -> Void) async throws {
        if let running { return try await running.value }
        let task = Task { try await body() }
        running = task
        defer { running = nil }
        try await task.value
    }
}
