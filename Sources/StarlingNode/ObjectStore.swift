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
/// Space is accounted against `capacity`. An object that does not fit makes room: cached
/// copies pulled from other nodes are dropped first, then the least recently used sealed
/// primaries are spilled to files in `spillDirectory` (and restored on access). When nothing
/// more can go, the create fails with OBJECT_STORE_FULL stating the sizes.
struct ObjectStore {
    struct Entry {
        let segment: String
        /// Bytes of the value, and of padding before it in the segment.
        let size: UInt64
        let offset: UInt64
        var sealed: Bool
        /// The connection of the process that created it (its objects go when it goes),
        /// unless a worker made it for its task's owner: then it belongs to the job.
        let owner: UInt32
        let job: [UInt8]?
        /// The owner's address and job, for listings.
        let ownerURL: String
        let jobID: [UInt8]
        /// The copy its owner made (kept while referenced); false for a copy pulled from
        /// another node (dropped first under pressure, pulled again if needed).
        let primary: Bool
        /// Set while the object lives in a file instead of shared memory.
        var spillPath: String?
        var lastAccess: ContinuousClock.Instant
        let createdUnixMs: Int64
        /// Reader pins by connection: a pinned object stays in shared memory.
        var pins: [UInt32: Int] = [:]
        /// Tells this entry from a later one of the same id (a pull checks it before sealing).
        var generation: UInt64 = 0

        var segmentSize: UInt64 { offset + size }
        var location: ShmLocation {
            ShmLocation(segment: segment, offset: offset, dataSize: size, metadataSize: 0, segmentSize: offset + size)
        }
    }

    let capacity: UInt64
    let prefix: String
    let spillDirectory: String
    private(set) var used: UInt64 = 0
    private(set) var spilledBytes: UInt64 = 0
    private(set) var restoredBytes: UInt64 = 0
    private(set) var failedPuts: UInt64 = 0
    private(set) var entries: [UniqueID: Entry] = [:]
    /// Copies dropped since the last `takeDropped` (the object directory is told).
    private var dropped: [UniqueID] = []
    private var nextGeneration: UInt64 = 0
    /// Objects freed while readers still had views: their segment is unlinked (no new
    /// reader finds it) but its memory stays counted in `used` until the last view closes.
    private var releasedWithViews: [UniqueID: (pins: [UInt32: Int], size: UInt64)] = [:]
    /// Objects spilled since the last `takeSpills` (reported as events): id, bytes, file.
    private var spills: [(id: UniqueID, size: UInt64, path: String)] = []

    init(capacity: UInt64, nodeID: UniqueID, spillDirectory: String) {
        self.capacity = capacity
        // Its own directory: a spill directory given by the user may be shared, or hold other files.
        self.spillDirectory = spillDirectory + "/node-\(nodeID.short)"
        // The pid lets the next Starling process remove the segments of a node killed with
        // SIGKILL (SessionDirectory.removeStale).
        prefix = "/starling-\(getpid())-\(nodeID.short)-"
    }

    struct NewObject {
        var owner: UInt32
        var job: [UInt8]?
        var ownerURL = ""
        var jobID: [UInt8] = []
        var primary = true
        /// Padding before the value in its segment.
        var offset: UInt64 = 0
    }

    mutating func create(_ id: UniqueID, size: UInt64, _ object: NewObject) throws -> ShmLocation {
        guard entries[id] == nil else { throw RPCFailure(.alreadyExists, "object \(id.short) is already in the store") }
        guard size > 0 else { throw RPCFailure(.invalidArgument, "an object of 0 bytes belongs inline, not in the store") }
        guard object.offset <= 4096 else { throw RPCFailure(.invalidArgument, "data_offset \(object.offset) is over 4096") }
        guard size <= capacity, object.offset <= capacity - size else {
            failedPuts += 1
            throw RPCFailure(.objectStoreFull, "it is larger than the whole object store (\(capacity) bytes)")
        }
        let segmentSize = size + object.offset
        try makeRoom(for: segmentSize)
        let segment = prefix + id.hex
        try Self.createSegment(segment, size: segmentSize)
        nextGeneration += 1
        let entry = Entry(segment: segment, size: size, offset: object.offset, sealed: false, owner: object.owner, job: object.job,
                          ownerURL: object.ownerURL, jobID: object.jobID, primary: object.primary, spillPath: nil,
                          lastAccess: .now, createdUnixMs: Int64(Date().timeIntervalSince1970 * 1000), generation: nextGeneration)
        entries[id] = entry
        used += segmentSize
        return entry.location
    }

    /// Frees cached copies, then spills least recently used primaries, until `size` more
    /// bytes fit; throws OBJECT_STORE_FULL with the sizes when they cannot.
    private mutating func makeRoom(for size: UInt64) throws {
        var spillFailure: String?
        while used + size > capacity {
            let candidates = entries.filter { $0.value.sealed && $0.value.spillPath == nil && $0.value.pins.isEmpty }
            let victim = candidates.filter { !$0.value.primary }.min { $0.value.lastAccess < $1.value.lastAccess }
                ?? (spillFailure == nil ? candidates.min { $0.value.lastAccess < $1.value.lastAccess } : nil)
            guard let (id, entry) = victim else {
                failedPuts += 1
                let unsealed = entries.values.filter { !$0.sealed }.reduce(0) { $0 + $1.segmentSize }
                let pinned = entries.values.filter { !$0.pins.isEmpty && $0.spillPath == nil }.reduce(0) { $0 + $1.segmentSize }
                throw RPCFailure(.objectStoreFull, "the object store cannot fit \(size) bytes: \(used) of its \(capacity) bytes are in use"
                                 + (unsealed > 0 ? " (\(unsealed) by objects still being written)" : "")
                                 + (pinned > 0 ? " (\(pinned) by objects readers hold views of)" : "")
                                 + (spillFailure.map { "; spilling to \(spillDirectory) failed: \($0)" } ?? "; nothing more can be spilled"))
            }
            if !entry.primary {
                free(id)
                continue
            }
            do {
                try spill(id)
            } catch {
                spillFailure = "\(error)"
            }
        }
    }

    /// Moves a sealed object's bytes to a file and releases its shared memory.
    private mutating func spill(_ id: UniqueID) throws {
        guard let entry = entries[id], entry.sealed, entry.spillPath == nil else { return }
        try FileManager.default.createDirectory(atPath: spillDirectory, withIntermediateDirectories: true)
        let path = spillDirectory + "/" + id.hex
        let total = Int(entry.segmentSize)
        let region = try SharedSegment.map(entry.segment, size: total, writable: false, populate: false)
        defer { SharedSegment.unmap(region, size: total) }
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw RPCFailure(.internal, "open \(path): \(String(cString: strerror(errno)))") }
        var written = 0
        while written < total {
            let n = write(fd, region + written, min(total - written, 8 << 20))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                let reason = String(cString: strerror(errno))
                close(fd)
                unlink(path)
                throw RPCFailure(.internal, "writing \(path): \(reason)")
            }
            written += n
        }
        close(fd)
        shm_unlink(entry.segment)
        used -= entry.segmentSize
        spilledBytes += entry.segmentSize
        entries[id]?.spillPath = path
        spills.append((id, entry.segmentSize, path))
    }

    /// Brings a spilled object back into shared memory (making room as a create would).
    private mutating func restore(_ id: UniqueID) throws {
        guard let entry = entries[id], let path = entry.spillPath else { return }
        try makeRoom(for: entry.segmentSize)
        try Self.createSegment(entry.segment, size: entry.segmentSize)
        do {
            try Self.copyFile(path, into: entry.segment, count: Int(entry.segmentSize))
        } catch {
            shm_unlink(entry.segment)
            if case let SharedSegment.Failure.cannotWrite(_, reason, full) = error, full {
                throw RPCFailure(.objectStoreFull, "restoring object \(id.short) (\(entry.segmentSize) bytes) failed: shared memory (/dev/shm) is full (\(reason))")
            }
            throw RPCFailure(.internal, "restoring object \(id.short) from \(path) failed: \(error)")
        }
        unlink(path)
        entries[id]?.spillPath = nil
        used += entry.segmentSize
        spilledBytes -= entry.segmentSize
        restoredBytes += entry.segmentSize
    }

    mutating func seal(_ id: UniqueID, abort: Bool) throws {
        guard entries[id] != nil else { throw RPCFailure(.notFound, "no object \(id.short) in the store") }
        if abort { free(id) } else { entries[id]?.sealed = true }
    }

    func contains(_ id: UniqueID) -> Bool { entries[id]?.sealed == true }

    /// Where a sealed object lies in shared memory, restoring it first when it was spilled;
    /// nil when it is not here.
    mutating func location(_ id: UniqueID) throws -> ShmLocation? {
        guard let entry = entries[id], entry.sealed else { return nil }
        if entry.spillPath != nil { try restore(id) }
        entries[id]?.lastAccess = .now
        return entry.location
    }

    /// Keeps a sealed object in shared memory for a reader's view until `unpin`.
    mutating func pin(_ id: UniqueID, for connection: UInt32) {
        entries[id]?.pins[connection, default: 0] += 1
    }

    mutating func unpin(_ id: UniqueID, for connection: UInt32) {
        if var released = releasedWithViews[id], let count = released.pins[connection] {
            released.pins[connection] = count > 1 ? count - 1 : nil
            settleReleased(id, released)
            return
        }
        guard let count = entries[id]?.pins[connection] else { return }
        entries[id]?.pins[connection] = count > 1 ? count - 1 : nil
    }

    /// A reader's connection closed: its views are gone.
    mutating func unpinAll(for connection: UInt32) {
        for (id, entry) in entries where entry.pins[connection] != nil { entries[id]?.pins[connection] = nil }
        for (id, var released) in releasedWithViews where released.pins[connection] != nil {
            released.pins[connection] = nil
            settleReleased(id, released)
        }
    }

    /// A freed object's memory leaves the count once its last view is closed.
    private mutating func settleReleased(_ id: UniqueID, _ released: (pins: [UInt32: Int], size: UInt64)) {
        if released.pins.isEmpty {
            releasedWithViews[id] = nil
            used -= released.size
        } else {
            releasedWithViews[id] = released
        }
    }

    /// Opens bytes `offset..<offset+length` of a sealed object for a node pulling it: its
    /// segment, or its spill file when spilled (so serving never needs room). The descriptor is
    /// opened here, so a spill, restore or free after this cannot change what is read; the
    /// bytes are read outside the node's actor (`ChunkSource.read`).
    mutating func chunk(_ id: UniqueID, offset: UInt64, length: UInt32) throws -> ChunkSource {
        guard let entry = entries[id], entry.sealed else { throw RPCFailure(.notFound, "object \(id.short) is not in this node's store") }
        guard offset <= entry.size else { throw RPCFailure(.invalidArgument, "offset \(offset) is past the end of object \(id.short) (\(entry.size) bytes)") }
        entries[id]?.lastAccess = .now
        let fd: Int32
        if let path = entry.spillPath {
            fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw RPCFailure(.objectLost, "spill file \(path) of object \(id.short) cannot be opened: \(String(cString: strerror(errno)))") }
        } else {
            fd = shm_open(entry.segment, O_RDONLY | O_CLOEXEC, 0)
            guard fd >= 0 else { throw RPCFailure(.objectLost, "segment \(entry.segment) of object \(id.short) cannot be opened: \(String(cString: strerror(errno)))") }
        }
        return ChunkSource(object: id, descriptor: fd, offset: Int(entry.offset + offset), count: Int(min(UInt64(length), entry.size - offset)))
    }

    @discardableResult
    mutating func free(_ id: UniqueID) -> Bool {
        guard let entry = entries.removeValue(forKey: id) else { return false }
        if let path = entry.spillPath {
            unlink(path)
            spilledBytes -= entry.segmentSize
        } else {
            shm_unlink(entry.segment)
            if entry.pins.isEmpty {
                used -= entry.segmentSize
            } else {
                // Readers still map it: its pages stay until their views close.
                let earlier = releasedWithViews[id]
                releasedWithViews[id] = (entry.pins.merging(earlier?.pins ?? [:], uniquingKeysWith: +), entry.segmentSize + (earlier?.size ?? 0))
            }
        }
        if entry.sealed { dropped.append(id) }
        return true
    }

    /// The objects a departed process created: its own primaries, and any it never sealed (a
    /// worker's result whose seal did not arrive would otherwise wait for the job's end).
    mutating func freeAll(ownedBy owner: UInt32) {
        for (id, entry) in entries where entry.owner == owner && ((entry.job == nil && entry.primary) || !entry.sealed) { free(id) }
    }

    /// Results workers stored for a job that ended, and the job's copies pulled here.
    mutating func freeAll(job: [UInt8]) {
        for (id, entry) in entries where entry.job == job || (!entry.jobID.isEmpty && entry.jobID == job) { free(id) }
    }

    mutating func removeAll() {
        for id in Array(entries.keys) { free(id) }
        for (_, released) in releasedWithViews { used -= released.size }
        releasedWithViews.removeAll()
        dropped.removeAll()
        try? FileManager.default.removeItem(atPath: spillDirectory)
    }

    /// Objects spilled since the last call (for events).
    mutating func takeSpills() -> [(id: UniqueID, size: UInt64, path: String)] {
        defer { spills.removeAll() }
        return spills
    }

    /// Objects dropped since the last call (for the object directory).
    mutating func takeDropped() -> [UniqueID] {
        defer { dropped.removeAll() }
        return dropped
    }

    func info(_ id: UniqueID, entry: Entry, node: UniqueID, now: ContinuousClock.Instant) -> ObjectInfo {
        var info = ObjectInfo()
        info.objectId = id.bytes
        info.dataSize = entry.size
        info.owner = ProcessAddress(url: entry.ownerURL, nodeId: [])
        info.nodeId = node.bytes
        info.isPrimary = entry.primary
        info.spilled = entry.spillPath != nil
        info.spillUrl = entry.spillPath.map { "file://\($0)" } ?? ""
        info.createTimeUnixMs = entry.createdUnixMs
        info.jobId = entry.job ?? entry.jobID
        info.dataOffset = UInt32(entry.offset)
        info.pins = UInt32(entry.pins.values.reduce(0, +))
        let idle = now - entry.lastAccess
        info.idleMs = idle.components.seconds * 1000 + idle.components.attoseconds / 1_000_000_000_000_000
        return info
    }

    func stats(node: UniqueID) -> StoreStats {
        var stats = StoreStats()
        stats.nodeId = node.bytes
        stats.capacity = capacity
        stats.used = used
        stats.numObjects = UInt32(entries.count)
        stats.pinnedBytes = entries.values.filter { !$0.pins.isEmpty && $0.spillPath == nil }.reduce(0) { $0 + $1.segmentSize }
        stats.spilledBytes = spilledBytes
        stats.numSpilled = UInt32(entries.values.filter { $0.spillPath != nil }.count)
        stats.restoredBytes = restoredBytes
        stats.failedPuts = failedPuts
        stats.spillDirectory = spillDirectory
        return stats
    }

    private static func createSegment(_ segment: String, size: UInt64) throws {
        let fd = shm_open(segment, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw RPCFailure(.internal, "shm_open \(segment): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        // Sized, not reserved: every writer fills segments with pwrite (SharedSegment.write),
        // which reports a full /dev/shm as ENOSPC. Reserving first (posix_fallocate) cost more
        // than the copy itself.
        guard ftruncate(fd, off_t(size)) == 0 else {
            let reason = String(cString: strerror(errno))
            shm_unlink(segment)
            throw RPCFailure(.objectStoreFull, "the object store cannot fit \(size) bytes: shared memory (/dev/shm) refused it (\(reason))")
        }
    }

    /// Copies a spill file into a segment, a few MiB at a time.
    private static func copyFile(_ path: String, into segment: String, count: Int) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw RPCFailure(.objectLost, "open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let bufferSize = min(count, 8 << 20)
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: bufferSize, alignment: 64)
        defer { buffer.deallocate() }
        var done = 0
        while done < count {
            let n = read(fd, buffer, min(count - done, bufferSize))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw RPCFailure(.objectLost, "reading \(path): \(n == 0 ? "file too short" : String(cString: strerror(errno)))") }
            try SharedSegment.write(segment, at: done, [UnsafeRawBufferPointer(start: buffer, count: n)])
            done += n
        }
    }
}

/// An open chunk of an object (its segment or its spill file), read once and closed with it.
final class ChunkSource: Sendable {
    let object: UniqueID
    private let descriptor: Int32
    /// From the start of the segment (or file), padding included.
    let offset: Int
    let count: Int

    init(object: UniqueID, descriptor: Int32, offset: Int, count: Int) {
        self.object = object
        self.descriptor = descriptor
        self.offset = offset
        self.count = count
    }

    deinit { close(descriptor) }

    func read(into target: UnsafeMutableRawPointer) throws {
        var done = 0
        while done < count {
            let n = pread(descriptor, target + done, count - done, off_t(offset + done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                throw RPCFailure(.objectLost, "reading object \(object.short): \(n == 0 ? "it ends early" : String(cString: strerror(errno)))")
            }
            done += n
        }
    }
}
