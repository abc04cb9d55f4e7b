import StarlingCore
import StarlingWire

/// Which nodes hold which objects in their stores (memory or spilled to their disk), as the
/// nodes report them: a node reports each object it seals or pulls, and each copy it drops.
///
/// A location can be stale for a moment (a copy evicted before its removal arrives); a puller
/// asks the holder, which answers NOT_FOUND, and tries the next.
struct ObjectDirectory {
    struct Entry {
        var holders: Set<UniqueID> = []
        var size: UInt64 = 0
        var owner: ProcessAddress?
    }

    private(set) var entries: [UniqueID: Entry] = [:]

    mutating func add(_ location: ObjectLocation) {
        guard location.objectId.count == 16, location.nodeId.count == 16 else { return }
        let id = UniqueID(bytes: location.objectId)
        var entry = entries[id] ?? Entry()
        entry.holders.insert(UniqueID(bytes: location.nodeId))
        entry.size = max(entry.size, location.size)
        if entry.owner == nil, location.owner != nil { entry.owner = location.owner }
        entries[id] = entry
    }

    /// Drops one holder of an object, or (with an empty node id) the object everywhere.
    mutating func remove(_ location: ObjectLocation) {
        guard location.objectId.count == 16 else { return }
        let id = UniqueID(bytes: location.objectId)
        if location.nodeId.isEmpty {
            entries[id] = nil
            return
        }
        entries[id]?.holders.remove(UniqueID(bytes: location.nodeId))
        if entries[id]?.holders.isEmpty == true { entries[id] = nil }
    }

    /// A dead node's copies are gone.
    mutating func removeNode(_ node: UniqueID) {
        for (id, entry) in entries where entry.holders.contains(node) {
            entries[id]?.holders.remove(node)
            if entries[id]?.holders.isEmpty == true { entries[id] = nil }
        }
    }

    func locations(_ id: UniqueID) -> ObjectLocations {
        var reply = ObjectLocations()
        reply.objectId = id.bytes
        guard let entry = entries[id] else { return reply }
        reply.nodeIds = entry.holders.map(\.bytes)
        reply.size = entry.size
        reply.owner = entry.owner
        return reply
    }
}

extension Head {
    func addObjectLocations(_ request: AddObjectLocationsRequest) -> AddObjectLocationsReply {
        for location in request.locations where nodes.isAlive(UniqueID(bytes: location.nodeId)) {
            objectDirectory.add(location)
        }
        return AddObjectLocationsReply()
    }

    func removeObjectLocations(_ request: RemoveObjectLocationsRequest) -> RemoveObjectLocationsReply {
        for location in request.locations { objectDirectory.remove(location) }
        return RemoveObjectLocationsReply()
    }

    func objectLocations(_ request: GetObjectLocationsRequest) -> GetObjectLocationsReply {
        var reply = GetObjectLocationsReply()
        reply.objects = request.objectIds.map { bytes in
            guard bytes.count == 16 else { return ObjectLocations() }
            var found = objectDirectory.locations(UniqueID(bytes: bytes))
            found.nodeIds = found.nodeIds.filter { nodes.isAlive(UniqueID(bytes: $0)) }
            return found
        }
        return reply
    }
}
