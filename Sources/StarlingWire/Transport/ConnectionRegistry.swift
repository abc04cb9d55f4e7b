import CNNG
import Synchronization

/// Tracks the connections (NNG pipes) of one socket and their authentication state.
///
/// NNG reports pipe events on its own threads through a C callback; this object is the
/// callback's context and keeps the state behind a mutex.
final class ConnectionRegistry: Sendable {
    enum State: Sendable, Equatable {
        case connected
        case challenged(Handshake.Challenge)
        case authenticated
    }

    private struct Table {
        var connections: [UInt32: State] = [:]
        /// The most recently added pipe still open (a dialer has at most one).
        var newest: UInt32?
        var released = false
    }

    private let table = Mutex(Table())
    /// Called (on an NNG thread) after a connection was removed.
    private let onRemoved: (@Sendable (UInt32) -> Void)?

    init(onRemoved: (@Sendable (UInt32) -> Void)? = nil) {
        self.onRemoved = onRemoved
    }

    /// Registers for pipe events of `socket`; balanced by `release()` after the socket closed.
    func watch(_ socket: nng_socket) throws {
        let context = Unmanaged.passRetained(self).toOpaque()
        let callback: nng_pipe_cb = { pipe, event, context in
            guard let context else { return }
            let registry = Unmanaged<ConnectionRegistry>.fromOpaque(context).takeUnretainedValue()
            registry.event(UInt32(bitPattern: nng_pipe_id(pipe)), added: event == NNG_PIPE_EV_ADD_POST)
        }
        for event in [NNG_PIPE_EV_ADD_POST, NNG_PIPE_EV_REM_POST] {
            let rc = nng_pipe_notify(socket, event, callback, context)
            if rc != 0 {
                Unmanaged<ConnectionRegistry>.fromOpaque(context).release()
                try NNG.check(rc, "nng_pipe_notify")
            }
        }
    }

    /// Drops the reference the C callback held. Call once the socket is closed.
    func release() {
        let first = table.withLock { table in
            defer { table.released = true }
            return !table.released
        }
        if first { Unmanaged.passUnretained(self).release() }
    }

    private func event(_ pipe: UInt32, added: Bool) {
        defer { if !added { onRemoved?(pipe) } }
        table.withLock { table in
            if added {
                table.connections[pipe] = .connected
                table.newest = pipe
            } else {
                table.connections[pipe] = nil
                if table.newest == pipe { table.newest = nil }
            }
        }
    }

    func challenge(_ pipe: UInt32, _ challenge: Handshake.Challenge) {
        table.withLock { table in
            // A hello on an authenticated connection is answered but changes nothing.
            if let state = table.connections[pipe], state != .authenticated { table.connections[pipe] = .challenged(challenge) }
        }
    }

    func pendingChallenge(_ pipe: UInt32) -> Handshake.Challenge? {
        table.withLock { table in
            if case let .challenged(challenge)? = table.connections[pipe] { return challenge }
            return nil
        }
    }

    func authenticate(_ pipe: UInt32) {
        table.withLock { table in
            if table.connections[pipe] != nil { table.connections[pipe] = .authenticated }
        }
    }

    func isAuthenticated(_ pipe: UInt32) -> Bool {
        table.withLock { $0.connections[pipe] == .authenticated }
    }

    var newest: UInt32? { table.withLock { $0.newest } }

    var counts: (open: Int, authenticated: Int) {
        table.withLock { table in
            (table.connections.count, table.connections.values.filter { $0 == .authenticated }.count)
        }
    }
}
