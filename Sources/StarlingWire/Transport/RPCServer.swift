import CNNG
import StarlingLog
import Synchronization

/// What a handler knows about the call it serves.
public struct CallContext: Sendable {
    /// The connection (NNG pipe) the request came on; stable for that connection's life.
    public let connectionID: UInt32
    /// The RPC being served, e.g. `Head.RegisterNode`.
    public let call: String
}

/// An error a handler throws to answer with a specific status code.
///
/// Any other error thrown by a handler is answered as `STATUS_CODE_INTERNAL` with its description.
public struct RPCFailure: Error, CustomStringConvertible, Sendable {
    public let code: StatusCode
    public let message: String

    public init(_ code: StatusCode, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}

/// The handlers an endpoint serves, keyed by method number. Built before the server starts,
/// then immutable (no lock on the request path).
///
/// ```swift
/// var routes = RouteTable()
/// routes.add(DiagnosticsRPC.echo) { request, _ in EchoReply(status: .ok, payload: request.payload) }
/// let server = try RPCServer(listeningOn: Address("tcp://127.0.0.1:0"), token: token, routes: routes)
/// ```
public struct RouteTable: Sendable {
    typealias Handler = @Sendable (ReceivedMessage, CallContext, Int) async -> OutgoingMessage?
    private(set) var handlers: [UInt32: (name: String, run: Handler)] = [:]

    public init() {}

    /// Serves `rpc` with `handler`. A later registration of the same method replaces it.
    public mutating func add<Request, Reply>(
        _ rpc: RPC<Request, Reply>,
        _ handler: @escaping @Sendable (Request, CallContext) async throws -> Reply
    ) {
        let name = rpc.name
        add(method: rpc.method, name: name) { message, context, limit in
            await Self.respond(to: message, as: Request.self, name: name, limit: limit) { request in
                var reply = try await handler(request, context)
                if reply.status == nil { reply.status = Status(code: .ok, message: "") }
                return try OutgoingMessage.pack(reply, method: nil, limit: limit, what: "reply to \(name)")
            }
        }
    }

    /// Decodes the request in `message`, lets `produce` make the reply, and turns what it
    /// throws into an error reply (a malformed request gets one without `produce` running).
    static func respond<Request: ProtoMessage>(to message: ReceivedMessage, as: Request.Type, name: String, limit: Int,
                                               _ produce: (Request) async throws -> OutgoingMessage) async -> OutgoingMessage? {
        let request: Request
        do {
            request = try Request(unpacking: UnsafeRawBufferPointer(rebasing: message.body[OutgoingMessage.headerSize...]))
        } catch {
            return errorReply(.malformed, "\(name): \(error)", limit: limit)
        }
        do {
            return try await produce(request)
        } catch let failure as RPCFailure {
            return errorReply(failure.code, failure.message, limit: limit)
        } catch let WireError.tooLarge(what, size, limit) {
            return errorReply(.tooLarge, "\(what) is \(size) bytes, over the limit of \(limit)", limit: limit)
        } catch {
            return errorReply(.internal, "\(name) failed: \(error)", limit: limit)
        }
    }

    mutating func add(method: UInt32, name: String, _ handler: @escaping Handler) {
        handlers[method] = (name, handler)
    }
}

/// An error frame: only `status` (field 1), which decodes as any reply type.
func errorReply(_ code: StatusCode, _ message: String, limit: Int) -> OutgoingMessage? {
    var reply = ErrorReply()
    reply.status = Status(code: code, message: String(message.prefix(4096)))
    return try? OutgoingMessage.pack(reply, method: nil, limit: limit, what: "error reply")
}

/// An RPC endpoint: one REP socket serving many requests at once through NNG contexts.
///
/// Every new connection must complete the cluster handshake (see `Handshake`) before any
/// other request is served: anything else sent first gets an UNAUTHENTICATED error reply and
/// no handler runs (a client whose connection NNG replaced authenticates the new one and asks
/// again); a wrong proof closes the connection. Malformed frames get an error reply and change
/// nothing.
public final class RPCServer: Sendable {
    /// The address actually bound (port 0 resolved to the real port).
    public let address: Address
    private let socket: nng_socket
    private let connections: ConnectionRegistry
    private let routes: RouteTable
    private let token: ClusterToken
    private let name: String
    private let settings: TransportSettings
    private let workers = Mutex<[Task<Void, Never>]>([])
    /// The call each context is serving now, by context id (diagnostics for a slow close).
    private let busy = Mutex<[UInt32: UInt32]>([:])
    private let log = Logger(label: "rpc-server")

    /// Binds `address` and starts serving `routes`.
    /// `onConnectionClosed` runs (on an NNG thread; keep it short) when a connection ends:
    /// the node uses it to reclaim what a dead owner held.
    public init(listeningOn address: Address, token: ClusterToken, name: String = "starling",
                routes: RouteTable, settings: TransportSettings = .default,
                onConnectionClosed: (@Sendable (UInt32) -> Void)? = nil) throws {
        var socket = nng_socket()
        try NNG.check(nng_rep0_open(&socket), "nng_rep0_open")
        self.socket = socket
        self.routes = routes
        self.token = token
        self.name = name
        self.settings = settings
        self.connections = ConnectionRegistry(label: "server \(name)", onRemoved: onConnectionClosed)
        do {
            try NNG.check(nng_socket_set_size(socket, NNG.optRecvMaxSize, settings.maxMessageSize), "set recv-size-max")
            try connections.watch(socket)
            self.address = try Endpoint.listen(socket, on: address, tls: settings.tls)
        } catch {
            nng_close(socket)
            connections.release()
            throw error
        }
        var started: [Task<Void, Never>] = []
        for _ in 0..<max(1, settings.serverContexts) {
            var context = nng_ctx()
            guard nng_ctx_open(&context, socket) == 0, let aio = try? AsyncAio() else { continue }
            started.append(Task.detached { [self] in await self.serve(context, aio) })
        }
        workers.withLock { $0 = started }
    }

    /// Stops accepting, fails pending requests and waits for the handlers' tasks to end.
    public func close() async {
        let tasks = workers.withLock { tasks in defer { tasks = [] }; return tasks }
        // Stop every context loop first (handlers still running see cancellation): libnng
        // 1.5.2 panics when nng_close races an operation on one of the socket's contexts.
        for task in tasks { task.cancel() }
        let watchdog = Task { [self] in
            try await Task.sleep(for: .seconds(1))
            log.warning("\(name): closing waits for handlers of methods \(busy.withLock { $0.values.sorted() }) still running")
        }
        for task in tasks { await task.value }
        watchdog.cancel()
        // Wait for the close (port released, ipc file removed), but not forever: see
        // NNG.closeInBackground for the libnng hang this bounds.
        let connections = self.connections
        let done = ClosedSignal()
        NNG.closeInBackground(socket) {
            connections.release()
            done.signal()
        }
        await done.wait(upTo: .seconds(2))
    }

    /// Connections currently open, and how many of them are authenticated (diagnostics, tests).
    public var connectionCounts: (open: Int, authenticated: Int) { connections.counts }

    /// Open connections, and forgetting one's handshake (tests of re-authentication).
    var connectionIDs: [UInt32] { connections.ids }
    func forgetAuthentication(_ connection: UInt32) { connections.forget(connection) }

    private func serve(_ context: nng_ctx, _ aio: AsyncAio) async {
        defer { nng_ctx_close(context) }
        var reply: OutgoingMessage?
        while !Task.isCancelled {
            let received: Int32
            if let outgoing = reply {
                // Send the reply, then receive the next request, chained in NNG's callback:
                // one resume of this task per request instead of two. The timeout bounds a
                // send to a peer that stopped reading; an idle receive that times out with it
                // is simply started again.
                aio.setMessage(outgoing.message)
                received = await aio.run(timeout: settings.callTimeout.nngMilliseconds,
                                         { nng_ctx_send(context, $0) }, then: { nng_ctx_recv(context, $0) })
                reply = nil
            } else {
                received = await aio.run(timeout: nil) { nng_ctx_recv(context, $0) }
            }
            if received == NNG.closedCode || Task.isCancelled {
                if let left = aio.takeMessage() { nng_msg_free(left) }
                return
            }
            guard received == 0, let raw = aio.takeMessage() else {
                // A reply that could not be sent (its peer went away) is still in the aio.
                if let unsent = aio.takeMessage() { nng_msg_free(unsent) }
                continue
            }
            let request = ReceivedMessage(taking: raw)
            let method = request.body.count >= 4 ? UInt32(littleEndian: request.body.loadUnaligned(as: UInt32.self)) : 0
            busy.withLock { $0[context.id] = method }
            reply = await dispatch(request)
            busy.withLock { $0[context.id] = nil }
            // Start nothing on a socket that is being closed (see NNG.closeInBackground).
            if Task.isCancelled {
                reply?.free()
                return
            }
        }
        reply?.free()
    }

    /// Returns the reply to send, or nil to send none (the connection was closed).
    private func dispatch(_ request: ReceivedMessage) async -> OutgoingMessage? {
        let limit = settings.maxMessageSize
        let body = request.body
        guard body.count >= OutgoingMessage.headerSize else {
            return errorReply(.malformed, "request frame of \(body.count) bytes is shorter than the 4-byte method header", limit: limit)
        }
        let method = UInt32(littleEndian: body.loadUnaligned(as: UInt32.self))
        let connection = request.pipeID
        let payload = UnsafeRawBufferPointer(rebasing: body[OutgoingMessage.headerSize...])

        switch method {
        case HandshakeRPC.hello.method:
            guard let hello = try? HelloRequest(unpacking: payload) else {
                return errorReply(.malformed, "handshake hello does not parse", limit: limit)
            }
            let (reply, challenge) = Handshake.answer(hello, token: token, serverName: name)
            if let challenge { connections.challenge(connection, challenge) }
            return try? OutgoingMessage.pack(reply, method: nil, limit: limit, what: "hello reply")
        case HandshakeRPC.prove.method:
            guard let prove = try? ProveRequest(unpacking: payload),
                  let challenge = connections.pendingChallenge(connection),
                  Handshake.verify(prove, challenge: challenge, token: token) else {
                log.warning("closing connection \(connection): handshake proof missing or wrong (wrong cluster token?)")
                nng_pipe_close(request.pipe)
                return nil
            }
            connections.authenticate(connection)
            return try? OutgoingMessage.pack(ProveReply(status: Status(code: .ok, message: "")), method: nil, limit: limit, what: "prove reply")
        default:
            guard connections.isAuthenticated(connection) else {
                log.debug("connection \(connection): request (method \(method)) before authentication, refused")
                return errorReply(.unauthenticated, "this connection is not authenticated: send the handshake (hello, then prove) first", limit: limit)
            }
            guard let route = routes.handlers[method] else {
                return errorReply(.unknownMethod, "no handler for method \(method) on \(name); is the peer running the same Starling version?", limit: limit)
            }
            return await route.run(request, CallContext(connectionID: connection, call: route.name), limit)
        }
    }
}

/// A one-shot signal from a plain thread to an async waiter, with a bounded wait.
final class ClosedSignal: Sendable {
    private let state = Mutex<(done: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))

    func signal() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.done = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    func wait(upTo limit: Duration) async {
        let timer = Task { [self] in
            try await Task.sleep(for: limit)
            signal()
        }
        defer { timer.cancel() }
        await withCheckedContinuation { continuation in
            let already = state.withLock { state -> Bool in
                if state.done { return true }
                state.waiter = continuation
                return false
            }
            if already { continuation.resume() }
        }
    }
}
