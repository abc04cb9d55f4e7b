import Synchronization

/// Authenticated connections to peers, one per address, made on first use and shared.
/// Safe from any task: the map is behind a lock, connecting happens outside it (two tasks
/// racing to the same new peer keep one connection and close the other).
public final class ConnectionPool: Sendable {
    private let token: ClusterToken
    private let name: String
    private let settings: TransportSettings
    private let clients = Mutex<[String: RPCClient]>([:])

    public init(token: ClusterToken, name: String, settings: TransportSettings = .default) {
        self.token = token
        self.name = name
        self.settings = settings
    }

    /// The connection to `url`, connecting (and authenticating) if there is none yet.
    public func client(_ url: String) async throws -> RPCClient {
        if let existing = clients.withLock({ $0[url] }) { return existing }
        let client = try await RPCClient.connect(to: Address(url), token: token, name: name, settings: settings)
        let raced = clients.withLock { clients -> RPCClient? in
            if let existing = clients[url] { return existing }
            clients[url] = client
            return nil
        }
        if let raced {
            client.close()
            return raced
        }
        return client
    }

    /// The connection to `url` if one is open.
    public func existing(_ url: String) -> RPCClient? { clients.withLock { $0[url] } }

    /// Closes and forgets the connection to `url` (its peer failed).
    public func drop(_ url: String) {
        clients.withLock { $0.removeValue(forKey: url) }?.close()
    }

    /// Closes and forgets `client`, whatever its address.
    public func drop(_ client: RPCClient) {
        let removed = clients.withLock { clients -> Bool in
            guard let url = clients.first(where: { $0.value === client })?.key else { return false }
            clients[url] = nil
            return true
        }
        if removed { client.close() }
    }

    /// Closes every connection.
    public func closeAll() {
        let all = clients.withLock { clients in defer { clients = [:] }; return clients }
        for (_, client) in all { client.close() }
    }
}
