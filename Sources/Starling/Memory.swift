import Foundation
import StarlingCore
import StarlingWire

/// What the cluster's object stores hold (`Cluster.memory()`, `starling memory`).
public struct MemoryReport: Sendable, Codable, CustomStringConvertible {
    /// One object in one node's store.
    public struct Object: Sendable, Codable {
        public let id: String
        public let bytes: UInt64
        public let node: String
        /// The address of the process that owns it.
        public let owner: String
        public let job: String
        /// "primary" (its owner's copy, kept while referenced) or "copy" (pulled from another
        /// node; dropped first when room is short).
        public let copy: String
        /// How it is referenced, as far as the asking process knows: "local ref" or "lent"
        /// for its own objects, "owned by <address>" for others'.
        public let reference: String
        public let spilled: Bool
        /// The spill file, when spilled.
        public let spillPath: String?
        public let idleSeconds: Double
        /// Views of it open on the node (it stays in shared memory while any is).
        public let pins: Int
    }

    /// One node's store.
    public struct Node: Sendable, Codable {
        public let id: String
        public let capacity: UInt64
        public let used: UInt64
        /// Freed shared memory the node keeps for the next objects (a put into it copies at
        /// memory speed); given back to the system after a second without new objects.
        public let warmBytes: UInt64
        public let spilledBytes: UInt64
        public let spilledObjects: Int
        public let restoredBytes: UInt64
        public let failedPuts: UInt64
        public let spillDirectory: String
        public let objects: [Object]
    }

    public let nodes: [Node]

    public var description: String {
        var lines: [String] = []
        for node in nodes {
            lines.append("node \(node.id.prefix(8)): \(Self.size(node.used)) of \(Self.size(node.capacity)) in shared memory"
                         + (node.warmBytes > 0 ? " (and \(Self.size(node.warmBytes)) freed, kept for new objects)" : "") + ", "
                         + "\(node.spilledObjects) object(s) spilled (\(Self.size(node.spilledBytes))) to \(node.spillDirectory), "
                         + "\(Self.size(node.restoredBytes)) restored, \(node.failedPuts) put(s) refused")
            for object in node.objects {
                lines.append("  \(object.id.prefix(16))  \(Self.size(object.bytes).padding(toLength: 10, withPad: " ", startingAt: 0)) "
                             + "\(object.copy.padding(toLength: 8, withPad: " ", startingAt: 0)) \(object.spilled ? "spilled" : "memory ") "
                             + "\(object.reference)  owner \(object.owner)")
            }
        }
        return lines.joined(separator: "\n")
    }

    static func size(_ bytes: UInt64) -> String {
        let value = Double(bytes)
        if bytes >= 1 << 30 { return String(format: "%.2f GiB", value / 1_073_741_824) }
        if bytes >= 1 << 20 { return String(format: "%.1f MiB", value / 1_048_576) }
        if bytes >= 1 << 10 { return String(format: "%.1f KiB", value / 1024) }
        return "\(bytes) B"
    }
}

extension MemoryReport {
    /// Asks every live node of the cluster behind `head` for its store; `reference` describes
    /// how an object (id, owner address) is referenced, as far as the asker knows.
    static func collect(head: RPCClient, pool: ConnectionPool,
                        reference: (UniqueID, String) -> String) async throws -> MemoryReport {
        let listed = try await head.liveNodes()
        var nodes: [MemoryReport.Node] = []
        for node in listed {
            let id = UniqueID(bytes: node.nodeId).hex, address = node.address?.url ?? ""
            let reply: ListStoredObjectsReply
            do {
                reply = try await pool.client(address).call(ObjectManagerRPC.listStoredObjects, ListStoredObjectsRequest(), timeout: .seconds(10))
            } catch {
                throw StarlingError.cluster("cannot list the objects of node \(id.prefix(8)) at \(address): \(error)")
            }
            let stats = reply.stats ?? StoreStats()
            let objects = reply.objects.map { info -> MemoryReport.Object in
                let object = UniqueID(bytes: info.objectId)
                let owner = info.owner?.url ?? ""
                return MemoryReport.Object(id: object.hex, bytes: info.dataSize, node: id, owner: owner,
                                           job: info.jobId.isEmpty ? "" : UniqueID(bytes: info.jobId).hex,
                                           copy: info.isPrimary ? "primary" : "copy", reference: reference(object, owner),
                                           spilled: info.spilled,
                                           spillPath: info.spilled ? String(info.spillUrl.dropFirst("file://".count)) : nil,
                                           idleSeconds: Double(info.idleMs) / 1000, pins: Int(info.pins))
            }
            nodes.append(MemoryReport.Node(id: id, capacity: stats.capacity, used: stats.used, warmBytes: stats.warmBytes, spilledBytes: stats.spilledBytes,
                                           spilledObjects: Int(stats.numSpilled), restoredBytes: stats.restoredBytes,
                                           failedPuts: stats.failedPuts, spillDirectory: stats.spillDirectory, objects: objects))
        }
        return MemoryReport(nodes: nodes)
    }

    /// The object stores of the cluster whose head is at `address` (`HOST:PORT`), asked with
    /// the token in `tokenFile` (`starling memory`).
    public static func collect(address: String, tokenFile: String) async throws -> MemoryReport {
        let connection = try await HeadConnection.open(address: address, tokenFile: tokenFile, name: "memory")
        let (head, token) = (connection.head, connection.token)
        let pool = ConnectionPool(token: token, name: "memory")
        defer { head.close(); pool.closeAll() }
        return try await collect(head: head, pool: pool) { _, owner in "owned by \(owner)" }
    }
}

extension Cluster {
    /// Every node's object store: its use, what it spilled, and its objects by size.
    public func memory() async throws -> MemoryReport {
        let references = self.references, ownerURL = self.ownerURL
        return try await MemoryReport.collect(head: actorSystem.head(), pool: owners) { id, owner in
            owner == ownerURL ? (references.isLent(id) ? "lent" : "local ref") : "owned by \(owner)"
        }
    }
}
