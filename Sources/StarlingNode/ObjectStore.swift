#if canImport(Glibc)
import Glibc
#endif
import Foundation
import StarlingCore
import StarlingWire

/// A node's store of large objects in POSIX shared memory: one segment per object, created
/// here (so the node owns every name and removes them all), written by the process that made
/// the object, read by any process on this node by mapping it.
///
/// Space is accounted against `capacity`; a create that does not fit fails with
/// OBJECT_STORE_FULL stating the sizes. (Spilling, eviction and reference counting come with
/// the rest of the object-store issue; until then an object lives until its owner frees it or
/// disconnects, or the node stops.)
struct ObjectStore {
    struct Entry {
        let segment: String
        let size: UInt64
        var sealed: Bool
        /// The connection of the process that created it (its objects go when it goes),
        /// unless a worker made it for its task's owner: then it belongs to the job.
        let owner: UInt32
        let job: [UInt8]?
    }

    let capacity: UInt64
    let prefix: String
    private(set) var used: UInt64 = 0
    private(set) var entries: [UniqueID: Entry] = [:]

    init(capacity: UInt64, nodeID: UniqueID) {
        self.capacity = capacity
        prefix = "/starling-\(nodeID.short)-"
    }

    mutating func create(_ id: UniqueID, size: UInt64, owner: UInt32, job: [UInt8]?) throws -> ShmLocation {
        guard entries[id] == nil else { throw RPCFailure(.alreadyExists, "object \(id.short) is already in the store") }
        guard size > 0 else { throw RPCFailure(.invalidArgument, "an object of 0 bytes belongs inline, not in the store") }
        guard used + size <= capacity else {
            throw RPCFailure(.objectStoreFull, "the object store cannot fit \(size) bytes: \(used) of its \(capacity) bytes are in use")
        }
        let segment = prefix + id.hex
        let fd = shm_open(segment, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw RPCFailure(.internal, "shm_open \(segment): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        // Reserve the pages now: shared memory that is merely truncated fails later, with
        // SIGBUS in the writer, when the machine runs out.
        let rc = posix_fallocate(fd, 0, off_t(size))
        guard rc == 0 else {
            shm_unlink(segment)
            throw RPCFailure(.objectStoreFull, "the object store cannot fit \(size) bytes: shared memory (/dev/shm) is short (\(String(cString: strerror(rc))))")
        }
        entries[id] = Entry(segment: segment, size: size, sealed: false, owner: owner, job: job)
        used += size
        return ShmLocation(segment: segment, offset: 0, dataSize: size, metadataSize: 0, segmentSize: size)
    }

    mutating func seal(_ id: UniqueID, abort: Bool) throws {
        guard entries[id] != nil else { throw RPCFailure(.notFound, "no object \(id.short) in the store") }
        if abort { free(id) } else { entries[id]?.sealed = true }
    }

    func location(_ id: UniqueID) -> ShmLocation? {
        guard let entry = entries[id], entry.sealed else { return nil }
        return ShmLocation(segment: entry.segment, offset: 0, dataSize: entry.size, metadataSize: 0, segmentSize: entry.size)
    }

    @discardableResult
    mutating func free(_ id: UniqueID) -> Bool {
        guard let entry = entries.removeValue(forKey: id) else { return false }
        shm_unlink(entry.segment)
        used -= entry.size
        return true
    }

    mutating func freeAll(ownedBy owner: UInt32) {
        for (id, entry) in entries where entry.owner == owner && entry.job == nil { free(id) }
    }

    /// Results workers stored for a job that ended.
    mutating func freeAll(job: [UInt8]) {
        for (id, entry) in entries where entry.job == job { free(id) }
    }

    mutating func removeAll() {
        for id in Array(entries.keys) { free(id) }
    }
}
