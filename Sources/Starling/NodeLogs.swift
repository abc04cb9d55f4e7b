import Foundation
import StarlingCore
import StarlingWire

/// Worker logs across the cluster (`starling logs`): each node serves its session's log files.
public enum NodeLogs {
    /// Without `name`, a listing of every live node's logs; with it, the last `tail` bytes of
    /// that log from the node holding it.
    public static func show(address: String, tokenFile: String, name: String?, tail: Int64) async throws -> String {
        let connection = try await HeadConnection.open(address: address, tokenFile: tokenFile, name: "logs")
        let (head, token) = (connection.head, connection.token)
        let pool = ConnectionPool(token: token, name: "logs")
        defer { head.close(); pool.closeAll() }
        let nodes = try await head.liveNodes()
        var lines: [String] = []
        for node in nodes {
            let id = UniqueID(bytes: node.nodeId).short
            guard let url = node.address?.url, let client = try? await pool.client(url) else {
                lines.append("node \(id): unreachable")
                continue
            }
            let files = try await client.call(NodeManagerRPC.listLogs, ListLogsRequest()).files
            if let name {
                guard files.contains(where: { $0.name == name }) else { continue }
                var request = ReadLogRequest()
                request.name = name
                request.offset = -tail
                request.maxBytes = UInt32(min(tail, 8 << 20))
                let reply = try await client.call(NodeManagerRPC.readLog, request)
                return "==> \(name) on node \(id) (\(reply.size) bytes) <==\n" + String(decoding: reply.data, as: UTF8.self)
            }
            lines.append("node \(id) (\(node.hostname)):")
            lines += files.map { "  \($0.name)  \($0.size) bytes" + ($0.workerId.isEmpty ? "  (worker gone)" : "") }
            if files.isEmpty { lines.append("  no logs") }
        }
        if let name { throw StarlingError.cluster("no live node has a log named \(name); run `starling logs` to list them") }
        return lines.joined(separator: "\n")
    }
}
