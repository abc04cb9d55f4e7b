#if canImport(Glibc)
import Glibc
#endif
import StarlingCore
import StarlingWire
import Synchronization

/// Large objects in the node's shared-memory store: written once by their owner (the node
/// creates the segment), read by mapping from any process on the node.
enum SharedMemory {
    /// Copies `bytes` into a segment the node created for them.
    static func write(_ bytes: [UInt8], to location: ShmLocation) throws {
        let region = try map(location, writable: true)
        defer { munmap(region, Int(location.segmentSize)) }
        bytes.withUnsafeBytes { source in
            (region + Int(location.offset)).copyMemory(from: source.baseAddress!, byteCount: source.count)
        }
    }

    /// Runs `body` on a sealed object's bytes in place (valid only during the call).
    static func withMapped<R>(_ location: ShmLocation, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let region = try map(location, writable: false)
        defer { munmap(region, Int(location.segmentSize)) }
        return try body(UnsafeRawBufferPointer(start: region + Int(location.offset), count: Int(location.dataSize)))
    }

    /// The bytes of a sealed object.
    static func read(_ location: ShmLocation) throws -> [UInt8] {
        let region = try map(location, writable: false)
        defer { munmap(region, Int(location.segmentSize)) }
        let count = Int(location.dataSize)
        return [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            UnsafeMutableRawPointer(buffer.baseAddress!).copyMemory(from: region + Int(location.offset), byteCount: count)
            initialized = count
        }
    }

    private static func map(_ location: ShmLocation, writable: Bool) throws -> UnsafeMutableRawPointer {
        let fd = shm_open(location.segment, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC, 0)
        guard fd >= 0 else {
            throw StarlingError.ownerDied(object: location.segment, detail: "its shared-memory segment is gone (\(String(cString: strerror(errno))))")
        }
        defer { close(fd) }
        // MAP_POPULATE: the kernel maps every page at once, instead of a fault per page.
        let region = mmap(nil, Int(location.segmentSize), writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0)
        guard let region, region != MAP_FAILED else {
            throw StarlingError.cluster("cannot map \(location.segment): \(String(cString: strerror(errno)))")
        }
        return region
    }
}

/// The objects this process put into its node's store, by id.
final class StoredObjects: Sendable {
    private let locations = Mutex<[UniqueID: ShmLocation]>([:])

    /// Values at least this large go to the store instead of staying in the owner's memory.
    static let threshold = 100 * 1024

    func add(_ id: UniqueID, _ location: ShmLocation) { locations.withLock { $0[id] = location } }
    func location(_ id: UniqueID) -> ShmLocation? { locations.withLock { $0[id] } }

    /// Puts `bytes` into the store of the node behind `node`.
    static func put(_ bytes: [UInt8], id: UniqueID, node: RPCClient) async throws -> ShmLocation {
        var create = CreateObjectRequest()
        create.objectId = id.bytes
        create.dataSize = UInt64(bytes.count)
        create.primary = true
        let location: ShmLocation
        do {
            guard let created = try await node.call(ObjectStoreRPC.createObject, create).location else {
                throw StarlingError.cluster("the node created no segment for object \(id.short)")
            }
            location = created
        } catch let WireError.remote(_, _, code, message) where code == .objectStoreFull {
            throw StarlingError.objectStoreFull(bytes: bytes.count, detail: message)
        }
        var seal = SealObjectRequest()
        seal.objectId = id.bytes
        do {
            try SharedMemory.write(bytes, to: location)
        } catch {
            seal.abort = true
            _ = try? await node.call(ObjectStoreRPC.sealObject, seal)
            throw error
        }
        _ = try await node.call(ObjectStoreRPC.sealObject, seal)
        return location
    }

    /// Puts a result too big to travel inline into the node of the code running now, and
    /// describes it for the reply (the reader finds it through its own node).
    static func storeResult(_ bytes: [UInt8], id: UniqueID) async throws -> ReturnObject {
        let cluster = try Cluster.current()
        _ = try await put(bytes, id: id, node: cluster.node)
        var stored = ReturnObject()
        stored.objectId = id.bytes
        stored.isInline = false
        stored.nodeId = UniqueID(hex: cluster.nodeID)?.bytes ?? []
        stored.size = UInt64(bytes.count)
        return stored
    }

    /// A stored object's bytes, found through the node of this process.
    static func get(_ id: UniqueID, node: RPCClient) async throws -> [UInt8]? {
        var request = GetStoredObjectsRequest()
        request.objectIds = [id.bytes]
        guard let object = try await node.call(ObjectStoreRPC.getStoredObjects, request).objects.first, object.found,
              let location = object.location else { return nil }
        return try SharedMemory.read(location)
    }
}
