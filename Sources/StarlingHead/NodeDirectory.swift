import StarlingCore
import StarlingWire

/// The head's record of nodes: who registered, their resources as last reported, who is alive.
/// Pure state (no I/O): the `Head` actor owns one and decides when to call it.
struct NodeDirectory {
    struct Entry {
        var info: NodeInfo
        var resources: NodeResources
        var lastHeartbeat: ContinuousClock.Instant
        var heartbeatSequence: UInt64 = 0
        /// The node's bundle epoch after the head's latest reservation change there: reports
        /// taken before it carry stale `available` figures.
        var bundleEpoch: UInt64 = 0
        /// The bundle epoch of the last report whose `available` was taken: a change at or
        /// below it is already in that figure.
        var reportedEpoch: UInt64 = 0
        /// The connection the node registered on: when it closes, the node is gone.
        var connection: UInt32
    }

    private(set) var entries: [UniqueID: Entry] = [:]
    /// Increases whenever a node joins, leaves or reports changed resources.
    private(set) var version: UInt64 = 1

    mutating func register(_ info: NodeInfo, connection: UInt32, now: ContinuousClock.Instant) throws {
        let id = UniqueID(bytes: info.nodeId)
        guard info.nodeId.count == 16 else { throw RPCFailure(.invalidArgument, "node_id must be 16 bytes, got \(info.nodeId.count)") }
        guard let url = info.address?.url, !url.isEmpty else { throw RPCFailure(.invalidArgument, "node \(id.short) registered without an address") }
        if let existing = entries[id] {
            if existing.info.state == .dead {
                throw RPCFailure(.nodeDied, "node \(id.short) was declared dead (\(existing.info.deathReason)); register again with a new id")
            }
            if existing.info.address?.url != url {
                throw RPCFailure(.alreadyExists, "node \(id.short) is alive at \(existing.info.address?.url ?? "?")")
            }
        }
        var info = info
        info.state = .alive
        var resources = NodeResources()
        resources.nodeId = info.nodeId
        resources.address = info.address
        resources.total = info.totalResources
        resources.available = info.totalResources
        resources.labels = info.labels
        entries[id] = Entry(info: info, resources: resources, lastHeartbeat: now, connection: connection)
        version += 1
    }

    /// Records a heartbeat; false when the node is unknown or dead (it must register again).
    mutating func heartbeat(_ id: UniqueID, sequence: UInt64, resources: NodeResources?, now: ContinuousClock.Instant) -> Bool {
        guard var entry = entries[id], entry.info.state != .dead else { return false }
        guard sequence >= entry.heartbeatSequence else { return true }
        entry.heartbeatSequence = sequence
        entry.lastHeartbeat = now
        if let resources {
            // A report taken before the node applied the head's latest reservation or release
            // would undo the head's own adjustment (a placement right after would see stale room).
            let current = resources.bundleEpoch >= entry.bundleEpoch
            if current {
                entry.bundleEpoch = resources.bundleEpoch
                entry.reportedEpoch = resources.bundleEpoch
            }
            if (current && resources.available != entry.resources.available) || resources.draining != entry.resources.draining
                || resources.queuedLeases != entry.resources.queuedLeases {
                if current { entry.resources.available = resources.available }
                entry.resources.draining = resources.draining
                entry.resources.queuedLeases = resources.queuedLeases
                version += 1
            }
            // Store use changes often and schedules nothing: kept, without a new view version.
            entry.resources.objectStoreUsed = resources.objectStoreUsed
            entry.resources.objectStoreCapacity = resources.objectStoreCapacity
        }
        entries[id] = entry
        return true
    }

    /// Applies a change the head itself made (bundles reserved or released) to a node's
    /// available resources at once, before its next heartbeat reports it.
    mutating func adjustAvailable(_ id: UniqueID, by change: ResourceSet, releasing: Bool, epoch: UInt64) {
        guard var entry = entries[id] else { return }
        entry.bundleEpoch = max(entry.bundleEpoch, epoch)
        // A report taken after the node applied this change may have arrived first: its
        // figure already holds the change, which must not be counted twice.
        guard entry.reportedEpoch < epoch else {
            entries[id] = entry
            return
        }
        let current = ResourceSet(entry.resources.available)
        entry.resources.available = (releasing ? current + change : current - change).quantities
        entries[id] = entry
        version += 1
    }

    /// Marks a node dead; returns false when it already was (or is unknown).
    @discardableResult
    mutating func markDead(_ id: UniqueID, reason: String, nowUnixMs: Int64) -> Bool {
        guard var entry = entries[id], entry.info.state != .dead else { return false }
        entry.info.state = .dead
        entry.info.deathReason = reason
        entry.info.endTimeUnixMs = nowUnixMs
        entries[id] = entry
        version += 1
        return true
    }

    func nodes(registeredOn connection: UInt32) -> [UniqueID] {
        entries.filter { $0.value.connection == connection && $0.value.info.state != .dead }.map(\.key)
    }

    func silent(longerThan timeout: Duration, now: ContinuousClock.Instant) -> [UniqueID] {
        entries.filter { $0.value.info.state != .dead && now - $0.value.lastHeartbeat > timeout }.map(\.key)
    }

    var alive: [Entry] { entries.values.filter { $0.info.state == .alive }.sorted { $0.info.nodeId.lexicographicallyPrecedes($1.info.nodeId) } }

    func info(_ id: UniqueID) -> NodeInfo? { entries[id]?.info }
    func isAlive(_ id: UniqueID) -> Bool { entries[id]?.info.state == .alive }
}
