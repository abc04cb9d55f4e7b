import StarlingCodec
import StarlingCore
import StarlingLog
import StarlingNode
import StarlingWire
import Synchronization

/// Large objects in the node's shared-memory store: written once by their owner (the node
/// places them in its arena), read by any process on the node.
enum SharedMemory {
    /// A copy of a sealed object's bytes. Throws `SharedSegment.Failure.gone` when the node
    /// spilled or freed it (ask the node again: it restores a spilled object).
    static func read(_ location: ShmLocation, id: UniqueID) throws -> [UInt8] {
        let count = Int(location.dataSize)
        return try [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            if count > 0 {
                try SharedSegment.read(location, id: id.bytes, into: UnsafeMutableRawPointer(buffer.baseAddress!))
            }
            initialized = count
        }
    }
}

/// The objects this process put into its node's store, by id.
final class StoredObjects: Sendable {
    private let locations = Mutex<[UniqueID: ShmLocation]>([:])

    /// Values at least this large go to the store instead of staying in the owner's memory.
    static let threshold = 100 * 1024
    /// Stored values at least this large are decoded in place (pinned for the while), not
    /// copied out first: a copy that large would land in fresh pages, and fault on each. The
    /// pin costs a call to the node, small beside the copy.
    static let decodeInPlaceSize: UInt64 = 16 << 20

    func add(_ id: UniqueID, _ location: ShmLocation) { locations.withLock { $0[id] = location } }
    func location(_ id: UniqueID) -> ShmLocation? { locations.withLock { $0[id] } }
    func remove(_ id: UniqueID) -> ShmLocation? { locations.withLock { $0.removeValue(forKey: id) } }
    var count: Int { locations.withLock { $0.count } }

    /// Puts an encoded value into the store of the node behind `node`: its gathered arrays are
    /// copied once, straight from the value's memory into shared memory.
    static func put(_ value: EncodedParts, id: UniqueID, owner: String, node: RPCClient,
                    sealWithoutWaiting: Bool = false) async throws -> ShmLocation {
        let padding = value.withParts { parts in parts.first.map(PackedLayout.alignmentPadding(for:)) ?? 0 }
        return try await put(size: value.count, padding: padding, id: id, owner: owner, node: node,
                             sealWithoutWaiting: sealWithoutWaiting) { location in
            try value.withParts { try SharedSegment.write(location, $0) }
        }
    }

    /// Creates an object of `size` bytes (after `padding`) in the node's store, lets `write`
    /// fill it (given its location; `SharedSegment.write`), and seals it.
    ///
    /// `sealWithoutWaiting` sends the seal and returns without its answer, one round trip
    /// sooner: for values handed on at once in a message (results, large arguments), whose
    /// readers ask the node after the seal was sent (the node holds such a reader until the
    /// seal arrives). A seal that fails leaves the object unsealed until this process leaves.
    static func put(size: Int, padding: Int, id: UniqueID, owner: String, node: RPCClient, sealWithoutWaiting: Bool = false,
                    write: (ShmLocation) throws -> Void) async throws -> ShmLocation {
        var create = CreateObjectRequest()
        create.objectId = id.bytes
        create.dataSize = UInt64(size)
        create.dataOffset = UInt32(padding)
        create.primary = true
        create.owner = ProcessAddress(url: owner, nodeId: [])
        let location: ShmLocation
        do {
            guard let created = try await node.call(ObjectStoreRPC.createObject, create, timeout: .seconds(300)).location else {
                throw StarlingError.cluster("the node gave no place in its store for object \(id.short)")
            }
            location = created
        } catch let WireError.remote(_, _, code, message) where code == .objectStoreFull {
            throw StarlingError.objectStoreFull(bytes: size, detail: message)
        }
        var seal = SealObjectRequest()
        seal.objectId = id.bytes
        do {
            try write(location)
        } catch {
            seal.abort = true
            _ = try? await node.call(ObjectStoreRPC.sealObject, seal)
            if case let SharedSegment.Failure.cannotWrite(_, reason, full) = error, full {
                throw StarlingError.objectStoreFull(bytes: size, detail: "shared memory (/dev/shm) has no room left (\(reason))")
            }
            throw error
        }
        if sealWithoutWaiting {
            // The seal is on its way before the message naming the object is.
            node.post(ObjectStoreRPC.sealObject, seal) { error in
                // Not found: its reader was quicker and freed it already, nothing to seal.
                if case let WireError.remote(_, _, code, _) = error, code == .notFound { return }
                Logger(label: "objects").warning("sealing object \(id.short) failed: \(error)")
            }
            return location
        }
        do {
            _ = try await node.call(ObjectStoreRPC.sealObject, seal)
        } catch {
            // Not sealed: give the space back now (if the connection is gone, the node frees
            // what this process left unsealed when it notices).
            seal.abort = true
            _ = try? await node.call(ObjectStoreRPC.sealObject, seal, timeout: .seconds(5))
            throw error
        }
        return location
    }

    /// Puts a value too large to travel inline (a result, or an actor call's arguments) into
    /// the node of the code running now, and describes it for the message (the reader finds
    /// it through its own node).
    static func storeInNode(_ value: EncodedParts, id: UniqueID, owner: String, sealWithoutWaiting: Bool) async throws -> ReturnObject {
        let cluster = try Cluster.current()
        _ = try await put(value, id: id, owner: owner, node: cluster.node, sealWithoutWaiting: sealWithoutWaiting)
        var stored = ReturnObject()
        stored.objectId = id.bytes
        stored.isInline = false
        stored.nodeId = UniqueID(hex: cluster.nodeID)?.bytes ?? []
        stored.size = UInt64(value.count)
        return stored
    }

    /// Drops a pin `locate(pin: true)` took (without waiting).
    static func unpin(_ id: UniqueID, node: RPCClient) {
        var release = ReleaseObjectsRequest()
        release.objectIds = [id.bytes]
        node.post(ObjectStoreRPC.releaseObjects, release, timeout: .seconds(10))
    }

    /// Where a stored object lies in this process's node: there already, restored from its
    /// spill file, or pulled from `holders` (other nodes) first. Throws
    /// `StarlingError.objectLost` when no live node holds it.
    static func locate(_ id: UniqueID, holders: [[UInt8]], node: RPCClient, pin: Bool = false) async throws -> ShmLocation {
        var request = GetStoredObjectsRequest()
        request.objectIds = [id.bytes]
        request.holderNodeIds = holders
        request.pin = pin
        var object = StoredObject()
        for attempt in 1... {
            // Pulling a large object between nodes takes a while.
            guard let answer = try await node.call(ObjectStoreRPC.getStoredObjects, request, timeout: .seconds(600)).objects.first else {
                throw StarlingError.cluster("the node answered nothing for object \(id.short)")
            }
            object = answer
            // Not sealed yet, and the node holds enough readers already: ask again shortly.
            guard object.status?.code == .unavailable, let delay = RPCClient.delayBeforeAskingAgain(after: attempt) else { break }
            try await Task.sleep(for: delay)
        }
        if object.found, let location = object.location { return location }
        let detail = object.status?.message ?? "not found"
        switch object.status?.code {
        case .objectStoreFull?: throw StarlingError.objectStoreFull(bytes: 0, detail: detail)
        case .objectLost?, .notFound?: throw StarlingError.objectLost(object: id.short, detail: detail)
        default: throw StarlingError.cluster("reading object \(id.short) through this node failed: \(detail)")
        }
    }

    /// A stored object's value where it lies in this process's node (pulled or restored there
    /// first, see `locate`), pinned there until `release` is called: read in place through this
    /// process's mapping of the arena, never copied out.
    struct PinnedValue {
        let bytes: UnsafeRawBufferPointer
        /// Drops the pin; calls after the first do nothing.
        let release: @Sendable () -> Void
    }

    /// Pins `id` in this process's node and maps its value (see `PinnedValue`).
    static func pin(_ id: UniqueID, holders: [[UInt8]], node: RPCClient) async throws -> PinnedValue {
        for _ in 0..<3 {
            let location = try await locate(id, holders: holders, node: node, pin: true)
            let released = Atomic(false)
            let release: @Sendable () -> Void = {
                if !released.exchange(true, ordering: .relaxed) { unpin(id, node: node) }
            }
            do {
                let start = try SharedSegment.mappedValue(location)
                return PinnedValue(bytes: UnsafeRawBufferPointer(start: start, count: Int(location.dataSize)), release: release)
            } catch SharedSegment.Failure.gone {
                release()
            } catch {
                release()
                throw StarlingError.cluster("cannot map object \(id.short): \(error)")
            }
        }
        throw StarlingError.objectLost(object: id.short, detail: "its arena could not be opened")
    }

    /// `body` run on a stored object's value in place (see `pin`): for values decoded once,
    /// one pass over the bytes instead of a copy and a pass.
    static func withValue<R>(_ id: UniqueID, holders: [[UInt8]], node: RPCClient,
                             _ body: (UnsafeRawBufferPointer) throws -> R) async throws -> R {
        let pinned = try await pin(id, holders: holders, node: node)
        defer { pinned.release() }
        return try body(pinned.bytes)
    }

    /// A stored object's bytes, read through this process's node (see `locate`).
    static func get(_ id: UniqueID, holders: [[UInt8]], node: RPCClient) async throws -> [UInt8] {
        // An object can be spilled or moved between the answer and the read: ask again then.
        for _ in 0..<3 {
            let location = try await locate(id, holders: holders, node: node)
            do {
                return try SharedMemory.read(location, id: id)
            } catch SharedSegment.Failure.gone {
                continue
            }
        }
        throw StarlingError.objectLost(object: id.short, detail: "it kept moving (spilled or freed) while being read")
    }
}
