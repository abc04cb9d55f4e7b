import CNNG
import StarlingLog
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

    /// NNG reports "pipe added" on its own thread, sometimes after the first messages of that
    /// pipe were already handled: events and handshake steps must not depend on their order.
    private struct Table {
        var connections: [UInt32: State] = [:]
        /// Pipes already removed, so a late message cannot bring one back (ids are not reused).
        var removed: Set<UInt32> = []
        /// The most recently added pipe still open (a dialer has at most one).
        var newest: UInt32?
        var released = false
    }

    private let table = Mutex(Table())
    /// Called (on an NNG thread) after a connection was removed.
    private let onRemoved: (@Sendable (UInt32) -> Void)?

    private let label: String
    private let debugLog = Logger(label: "connections")

    init(label: String, onRemoved: (@Sendable (UInt32) -> Void)? = nil) {
        self.label = label
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
        debugLog.debug("\(label): connection \(pipe) \(added ? "added" : "removed")")
        table.withLock { table in
            if added {
                guard !table.removed.contains(pipe) else { return }
                if table.connections[pipe] == nil { table.connections[pipe] = .connected }
                table.newest = pipe
            } else {
                table.connections[pipe] = nil
                if table.removed.count > 4096 { table.removed.removeAll() }
                table.removed.insert(pipe)
                if table.newest == pipe { table.newest = nil }
            }
        }
    }

    func challenge(_ pipe: UInt32, _ challenge: Handshake.Challenge) {
        table.withLock { table in
            // A hello on an authenticated connection is answered but changes nothing.
            guard !table.removed.contains(pipe), table.connections[pipe] != .authenticated else { return }
            table.connections[pipe] = .challenged(challenge)
        }
    }

    func pendingChallenge(_ pipe: UInt32) -> Handshake.Challenge? {
        table.withLock { table in
            if case let .challenged(challenge)? = table.connections[pipe] { return challenge }
            return nil
        }
    }

    func authenticate(_ pipe: UInt32) {
        debugLog.debug("\(label): connection \(pipe) authenticated")
        table.withLock { table in
            guard !table.removed.contains(pipe) else { return }
            table.connections[pipe] = .authenticated
        }
    }

    func isAuthenticated(_ pipe: UInt32) -> Bool {
        table.withLock { $0.connections[pipe] == .authenticated }
    }

    var newest: UInt32? { table.withLock { $0.newest } }

    /// Open connections (tests).
    var ids: [UInt32] { table.withLock { Array($0.connections.keys) } }

    /// Treats a connection as new again (tests: as if NNG had replaced it).
    func forget(_ pipe: UInt32) {
        table.withLock { table in
            if table.connections[pipe] != nil { table.connections[pipe] = .connected }
        }
    }

    var counts: (open: Int, authenticated: Int) {
        table.withLock { table in
            (table.connections.count, table.connections.values.filter { $0 == .authenticated }.count)
        }
    }
}
