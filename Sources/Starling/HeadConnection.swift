import StarlingWire

/// A connection to a running cluster's head for one command (`starling status`, `memory`,
/// `logs`): the token read from its file, the head dialled, errors that say which failed.
struct HeadConnection {
    let head: RPCClient
    let token: ClusterToken

    static func open(address: String, tokenFile: String, name: String) async throws -> HeadConnection {
        let token: ClusterToken
        do {
            token = try ClusterToken.load(from: tokenFile)
        } catch {
            throw StarlingError.cluster("cannot read the cluster token \(tokenFile): \(error)")
        }
        do {
            let head = try await RPCClient.connect(to: Address.parse(address), token: token, name: name)
            return HeadConnection(head: head, token: token)
        } catch {
            throw StarlingError.cluster("cannot reach the head at \(address): \(error)")
        }
    }
}

extension RPCClient {
    /// The cluster's live nodes, as the head at the other end lists them (commands that ask
    /// every node: `logs`, `memory`, `list tasks`).
    func liveNodes() async throws -> [NodeInfo] {
        do {
            return try await call(HeadRPC.listNodes, ListNodesRequest()).nodes.filter { $0.state == .alive }
        } catch {
            throw StarlingError.cluster("cannot list nodes: \(error)")
        }
    }
}
