#if canImport(Glibc)
import Glibc
#endif
import Foundation
import StarlingCore
import StarlingLog
import StarlingWire

private let log = Logger(label: "store")

/// A node's store of large objects in POSIX shared memory: one arena (a sparse shared-memory
/// file) in which every object has a page-aligned range, created and named here (so the node
/// removes it), written by the process that made the object, read by any process on this node.
///
/// A range holds padding, a 64-byte header naming the object (written once it is sealed), then
/// the value. Freed ranges
/// keep their pages ("warm") for the next objects, so a put into one copies at memory speed;
/// warm memory goes back to the system when the store needs room for new pages, and after a
/// second without new objects (`coolIfIdle`).
///
/// Space is accounted against `capacity`. An object that does not fit makes room: cached
/// copies pulled from other nodes are dropped first, then the least recently used sealed
/// primaries are spilled to files in `spillDirectory` (and restored on access). When nothing
/// more can go, the create fails with OBJECT_STORE_FULL stating the sizes.
struct ObjectStore {
    struct Entry {
        /// Where it lies in the arena; nil while spilled.
        var range: ArenaAllocator.Range?
        /// Bytes of the value, and of padding before its header.
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

        /// The bytes of its range: padding, header and value, in whole pages.
        var footprint: UInt64 { ArenaAllocator.rounded(offset + UInt64(SharedSegment.objectHeaderSize) + size) }
        /// Where its value starts in the arena.
        var valueOffset: UInt64? { range.map { $0.start + offset + UInt64(SharedSegment.objectHeaderSize) } }
    }

    /// A freed object that readers still have views of: its range is kept (counted in `used`)
    /// until the last view closes.
    private struct Released {
        var pins: [UInt32: Int]
        var size: UInt64
        var ranges: [ArenaAllocator.Range]
    }

    let capacity: UInt64
    let prefix: String
    let spillDirectory: String
    /// The arena's shm_open name, and its size: twice the capacity, so objects placed around
    /// the ranges of freed ones rarely run out of room to lie in one piece.
    let arenaName: String
    let arenaSize: UInt64
    private var arena: Int32 = -1
    private var allocator: ArenaAllocator
    private var lastPlaced = ContinuousClock.now
    private(set) var used: UInt64 = 0
    private(set) var spilledBytes: UInt64 = 0
    private(set) var restoredBytes: UInt64 = 0
    private(set) var failedPuts: UInt64 = 0
    private(set) var entries: [UniqueID: Entry] = [:]
    /// Copies dropped since the last `takeDropped` (the object directory is told).
    private var dropped: [UniqueID] = []
    private var nextGeneration: UInt64 = 0
    private var releasedWithViews: [UniqueID: Released] = [:]
    /// Unsealed objects freed while their writer may still be writing (a pull in flight, a
    /// worker of a job that ended): each range stays reserved, counted in `used`, until the
    /// writer seals or aborts or its connection closes, so a late write cannot land in the
    /// next object's range.
    private var abandoned: [(id: UniqueID, generation: UInt64, writer: UInt32, range: ArenaAllocator.Range, size: UInt64)] = []
    /// Objects spilled since the last `takeSpills` (reported as events): id, bytes, file.
    private var spills: [(id: UniqueID, size: UInt64, path: String)] = []

    init(capacity: UInt64, nodeID: UniqueID, spillDirectory: String) {
        self.capacity = capacity
        // Its own directory: a spill directory given by the user may be shared, or hold other files.
        self.spillDirectory = spillDirectory + "/node-\(nodeID.short)"
        // The pid lets the next Starling process remove the arena of a node killed with
        // SIGKILL (SessionDirectory.removeStale).
        prefix = "/starling-\(getpid())-\(nodeID.short)-"
        arenaName = prefix + "arena"
        arenaSize = ArenaAllocator.rounded(min(capacity, 1 << 46) * 2)
        allocator = ArenaAllocator(size: arenaSize)
    }

    struct NewObject {
        var owner: UInt32
        var job: [UInt8]?
        var ownerURL = ""
        var jobID: [UInt8] = []
        var primary = true
        /// Padding before the value's header in its range.
        var offset: UInt64 = 0
    }

    /// Memory the store holds for objects to come (freed ranges whose pages are kept).
    var warmBytes: UInt64 { allocator.warmBytes }

    func location(of entry: Entry, resident: Bool = false) -> ShmLocation {
        ShmLocation(segment: arenaName, offset: entry.valueOffset ?? 0, dataSize: entry.size, metadataSize: 0,
                    segmentSize: arenaSize, resident: resident, generation: entry.generation)
    }

    mutating func create(_ id: UniqueID, size: UInt64, _ object: NewObject) throws -> ShmLocation {
        guard entries[id] == nil else { throw RPCFailure(.alreadyExists, "object \(id.short) is already in the store") }
        guard size > 0 else { throw RPCFailure(.invalidArgument, "an object of 0 bytes belongs inline, not in the store") }
        guard object.offset <= 4096 else { throw RPCFailure(.invalidArgument, "data_offset \(object.offset) is over 4096") }
        let footprint = ArenaAllocator.rounded(object.offset + UInt64(SharedSegment.objectHeaderSize) + min(size, capacity))
        guard size <= capacity, footprint <= capacity else {
            failedPuts += 1
            throw RPCFailure(.objectStoreFull, "it is larger than the whole object store (\(capacity) bytes)")
        }
        let (range, warm) = try place(footprint)
        nextGeneration += 1
        let entry = Entry(range: range, size: size, offset: object.offset, sealed: false, owner: object.owner, job: object.job,
                          ownerURL: object.ownerURL, jobID: object.jobID, primary: object.primary, spillPath: nil,
                          lastAccess: .now, createdUnixMs: Int64(Date().timeIntervalSince1970 * 1000), generation: nextGeneration)
        entries[id] = entry
        used += footprint
        return location(of: entry, resident: warm)
    }

    /// A range of `length` bytes for a new object: frees cached copies, then spills least
    /// recently used primaries, until it fits; throws OBJECT_STORE_FULL with the sizes when it
    /// cannot. Warm memory is given back as needed for used + warm to stay within capacity.
    private mutating func place(_ length: UInt64) throws -> (range: ArenaAllocator.Range, warm: Bool) {
        try openArena()
        var spillFailure: String?
        while true {
            if used + length <= capacity {
                if let placed = allocator.allocate(length) {
                    if !placed.warm, used + allocator.warmBytes + length > capacity {
                        punch(allocator.cool(atLeast: used + allocator.warmBytes + length - capacity))
                    }
                    lastPlaced = .now
                    return placed
                }
                // Room enough, but not in one piece: warm ranges made holes merge with theirs.
                if allocator.warmBytes > 0 {
                    punch(allocator.cool())
                    continue
                }
            }
            let candidates = entries.filter { $0.value.sealed && $0.value.spillPath == nil && $0.value.pins.isEmpty }
            let victim = candidates.filter { !$0.value.primary }.min { $0.value.lastAccess < $1.value.lastAccess }
                ?? (spillFailure == nil ? candidates.min { $0.value.lastAccess < $1.value.lastAccess } : nil)
            guard let (id, entry) = victim else {
                failedPuts += 1
                let unsealed = entries.values.filter { !$0.sealed }.reduce(0) { $0 + $1.footprint }
                let pinned = entries.values.filter { !$0.pins.isEmpty && $0.spillPath == nil }.reduce(0) { $0 + $1.footprint }
                    + releasedWithViews.values.reduce(0) { $0 + $1.size }
                let writing = abandoned.reduce(0) { $0 + $1.size }
                throw RPCFailure(.objectStoreFull, "the object store cannot fit \(length) bytes: \(used) of its \(capacity) bytes are in use"
                                 + (unsealed + writing > 0 ? " (\(unsealed + writing) by objects still being written)" : "")
                                 + (pinned > 0 ? " (\(pinned) by objects readers hold views of)" : "")
                                 + (used + length <= capacity ? " (free space is split into pieces too small)" : "")
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

    /// Creates the arena on first use: sized, not filled (its pages come as objects are written).
    private mutating func openArena() throws {
        guard arena < 0 else { return }
        let fd = shm_open(arenaName, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw RPCFailure(.internal, "shm_open \(arenaName): \(String(cString: strerror(errno)))") }
        guard ftruncate(fd, off_t(arenaSize)) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            shm_unlink(arenaName)
            throw RPCFailure(.internal, "sizing the object arena \(arenaName) to \(arenaSize) bytes failed: \(reason)")
        }
        arena = fd
    }

    /// Returns ranges' pages to the system.
    private func punch(_ ranges: [ArenaAllocator.Range]) {
        for range in ranges {
            if let code = FileSpace.punchHole(arena, offset: range.start, length: range.length) {
                log.warning("object store: freeing \(range.length) bytes of \(arenaName) failed: \(String(cString: strerror(code)))")
            }
        }
    }

    /// Gives a range back, keeping its pages for the next object (`keepPages`: the range held
    /// a sealed object, so every page of it was written: a writer seals only after writing
    /// the whole value, a pull after its last chunk, a restore after the whole file, and the
    /// node writes the header), else punching them out. Asking the file instead (SEEK_HOLE)
    /// walks every page: 2 ms for 100 MB, a sixth of a put.
    private mutating func releaseRange(_ range: ArenaAllocator.Range, keepPages: Bool) {
        if !keepPages { punch([range]) }
        allocator.release(range, warm: keepPages)
    }

    /// Gives warm memory back to the system once no object was placed for a second.
    mutating func coolIfIdle(now: ContinuousClock.Instant = .now) {
        guard allocator.warmBytes > 0, now - lastPlaced >= .seconds(1) else { return }
        punch(allocator.cool())
    }

    /// Writes the header naming `id` before the entry's value, once the value is complete.
    private func writeHeader(_ id: UniqueID, of entry: Entry) throws {
        try writeArena(SharedSegment.objectHeader(for: id.bytes, generation: entry.generation),
                       at: entry.valueOffset! - UInt64(SharedSegment.objectHeaderSize))
    }

    /// Zeroes the header: a reader that was not pinned sees the object gone from its range.
    private func clearHeader(of entry: Entry) {
        guard let valueOffset = entry.valueOffset else { return }
        try? writeArena([UInt8](repeating: 0, count: SharedSegment.objectHeaderSize), at: valueOffset - UInt64(SharedSegment.objectHeaderSize))
    }

    private func writeArena(_ bytes: [UInt8], at offset: UInt64) throws {
        let n = bytes.withUnsafeBytes { pwrite(arena, $0.baseAddress, $0.count, off_t(offset)) }
        guard n == bytes.count else {
            let code = errno
            if code == ENOSPC { throw RPCFailure(.objectStoreFull, "shared memory (/dev/shm) is full") }
            throw RPCFailure(.internal, "writing \(arenaName) at \(offset): \(String(cString: strerror(code)))")
        }
    }

    /// Moves a sealed object's bytes to a file and releases its shared memory (its range stays
    /// warm for the object that needed the room).
    private mutating func spill(_ id: UniqueID) throws {
        guard let entry = entries[id], entry.sealed, entry.spillPath == nil, let range = entry.range, let valueOffset = entry.valueOffset else { return }
        try FileManager.default.createDirectory(atPath: spillDirectory, withIntermediateDirectories: true)
        let path = spillDirectory + "/" + id.hex
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw RPCFailure(.internal, "open \(path): \(String(cString: strerror(errno)))") }
        do {
            try Self.copy(from: arena, at: valueOffset, to: fd, at: 0, count: entry.size, describing: path)
        } catch {
            close(fd)
            unlink(path)
            throw error
        }
        close(fd)
        clearHeader(of: entry)
        releaseRange(range, keepPages: true)
        used -= entry.footprint
        spilledBytes += entry.footprint
        entries[id]?.range = nil
        entries[id]?.spillPath = path
        spills.append((id, entry.footprint, path))
    }

    /// Brings a spilled object back into shared memory (making room as a create would).
    private mutating func restore(_ id: UniqueID) throws {
        guard var entry = entries[id], let path = entry.spillPath else { return }
        let (range, _) = try place(entry.footprint)
        entry.range = range
        do {
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw RPCFailure(.objectLost, "open \(path): \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            try Self.copy(from: fd, at: 0, to: arena, at: entry.valueOffset!, count: entry.size, describing: arenaName)
            try writeHeader(id, of: entry)
        } catch {
            clearHeader(of: entry)
            releaseRange(range, keepPages: false)
            if let failure = error as? RPCFailure, failure.code == .objectStoreFull {
                throw RPCFailure(.objectStoreFull, "restoring object \(id.short) (\(entry.size) bytes) failed: \(failure.message)")
            }
            throw RPCFailure(.internal, "restoring object \(id.short) from \(path) failed: \(error)")
        }
        unlink(path)
        entries[id]?.range = range
        entries[id]?.spillPath = nil
        used += entry.footprint
        spilledBytes -= entry.footprint
        restoredBytes += entry.footprint
    }

    mutating func seal(_ id: UniqueID, abort: Bool) throws {
        guard entries[id] != nil else {
            endWrites { written, _, _ in written == id }
            throw RPCFailure(.notFound, "no object \(id.short) in the store (freed while it was written)")
        }
        if abort {
            free(id, writerDone: true)
            return
        }
        guard let entry = entries[id], !entry.sealed else { return }
        do {
            try writeHeader(id, of: entry)
        } catch {
            free(id, writerDone: true)
            throw error
        }
        entries[id]?.sealed = true
    }

    /// The writer of the object made with `generation` is done (a pull that ended).
    mutating func writeEnded(generation: UInt64) {
        endWrites { _, made, _ in made == generation }
    }

    private mutating func endWrites(where ended: (UniqueID, UInt64, UInt32) -> Bool) {
        let done = abandoned.filter { ended($0.id, $0.generation, $0.writer) }
        guard !done.isEmpty else { return }
        abandoned.removeAll { ended($0.id, $0.generation, $0.writer) }
        for write in done {
            used -= write.size
            releaseRange(write.range, keepPages: false)
        }
    }

    func contains(_ id: UniqueID) -> Bool { entries[id]?.sealed == true }

    /// Where a sealed object lies in shared memory, restoring it first when it was spilled;
    /// nil when it is not here.
    mutating func location(_ id: UniqueID) throws -> ShmLocation? {
        guard let entry = entries[id], entry.sealed else { return nil }
        if entry.spillPath != nil { try restore(id) }
        entries[id]?.lastAccess = .now
        return entries[id].map { location(of: $0) }
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
    private mutating func settleReleased(_ id: UniqueID, _ released: Released) {
        if released.pins.isEmpty {
            releasedWithViews[id] = nil
            used -= released.size
            for range in released.ranges { releaseRange(range, keepPages: true) }
        } else {
            releasedWithViews[id] = released
        }
    }

    /// Opens bytes `offset..<offset+length` of a sealed object for a node pulling it: in the
    /// arena, or in its spill file when spilled (so serving never needs room). The bytes are
    /// read outside the node's actor (`ChunkSource.read`); a read from the arena checks the
    /// object's header afterwards, so a range spilled or reused meanwhile is an error
    /// (UNAVAILABLE: ask again), not data.
    mutating func chunk(_ id: UniqueID, offset: UInt64, length: UInt32) throws -> ChunkSource {
        guard let entry = entries[id], entry.sealed else { throw RPCFailure(.notFound, "object \(id.short) is not in this node's store") }
        guard offset <= entry.size else { throw RPCFailure(.invalidArgument, "offset \(offset) is past the end of object \(id.short) (\(entry.size) bytes)") }
        entries[id]?.lastAccess = .now
        let count = Int(min(UInt64(length), entry.size - offset))
        if let path = entry.spillPath {
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw RPCFailure(.objectLost, "spill file \(path) of object \(id.short) cannot be opened: \(String(cString: strerror(errno)))") }
            return ChunkSource(object: id, descriptor: fd, offset: Int(offset), count: count, valueOffset: nil, generation: entry.generation)
        }
        guard let valueOffset = entry.valueOffset else { throw RPCFailure(.objectLost, "object \(id.short) has no place in the store") }
        let fd = dup(arena)
        guard fd >= 0 else { throw RPCFailure(.internal, "dup of \(arenaName): \(String(cString: strerror(errno)))") }
        return ChunkSource(object: id, descriptor: fd, offset: Int(valueOffset + offset), count: count, valueOffset: Int(valueOffset),
                           generation: entry.generation)
    }

    /// Frees an object; `writerDone` when its writer can no longer write it (it aborted, or
    /// its process is gone).
    @discardableResult
    mutating func free(_ id: UniqueID, writerDone: Bool = false) -> Bool {
        guard let entry = entries.removeValue(forKey: id) else { return false }
        if let path = entry.spillPath {
            unlink(path)
            spilledBytes -= entry.footprint
        } else if let range = entry.range {
            if entry.sealed { clearHeader(of: entry) }
            if !entry.sealed && !writerDone {
                abandoned.append((id, entry.generation, entry.owner, range, entry.footprint))
            } else if entry.pins.isEmpty {
                used -= entry.footprint
                releaseRange(range, keepPages: entry.sealed)
            } else {
                // Readers still map it: its range stays until their views close.
                let earlier = releasedWithViews[id]
                releasedWithViews[id] = Released(pins: entry.pins.merging(earlier?.pins ?? [:], uniquingKeysWith: +),
                                                 size: entry.footprint + (earlier?.size ?? 0), ranges: [range] + (earlier?.ranges ?? []))
            }
        }
        if entry.sealed { dropped.append(id) }
        return true
    }

    /// The objects a departed process created: its own primaries, and any it never sealed (a
    /// worker's result whose seal did not arrive would otherwise wait for the job's end).
    mutating func freeAll(ownedBy owner: UInt32) {
        for (id, entry) in entries where entry.owner == owner && ((entry.job == nil && entry.primary) || !entry.sealed) {
            free(id, writerDone: true)
        }
        endWrites { _, _, writer in writer == owner }
    }

    /// Results workers stored for a job that ended, and the job's copies pulled here.
    mutating func freeAll(job: [UInt8]) {
        for (id, entry) in entries where entry.job == job || (!entry.jobID.isEmpty && entry.jobID == job) { free(id) }
    }

    /// Frees everything and removes the arena. Its pages are punched out first, so processes
    /// that still map it hold no memory with it; all but those of views still open, which
    /// keep reading their object until they close (the memory goes with the last mapping).
    mutating func removeAll() {
        for id in Array(entries.keys) { free(id, writerDone: true) }
        let viewed = releasedWithViews.values.flatMap(\.ranges).sorted { $0.start < $1.start }
        for (_, released) in releasedWithViews { used -= released.size }
        releasedWithViews.removeAll()
        for write in abandoned { used -= write.size }
        abandoned.removeAll()
        dropped.removeAll()
        if arena >= 0 {
            var gaps: [ArenaAllocator.Range] = []
            var start: UInt64 = 0
            for range in viewed {
                if range.start > start { gaps.append(.init(start: start, length: range.start - start)) }
                start = max(start, range.end)
            }
            if start < arenaSize { gaps.append(.init(start: start, length: arenaSize - start)) }
            punch(gaps)
            close(arena)
            shm_unlink(arenaName)
            arena = -1
            allocator = ArenaAllocator(size: arenaSize)
        }
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
        stats.pinnedBytes = entries.values.filter { !$0.pins.isEmpty && $0.spillPath == nil }.reduce(0) { $0 + $1.footprint }
        stats.spilledBytes = spilledBytes
        stats.numSpilled = UInt32(entries.values.filter { $0.spillPath != nil }.count)
        stats.restoredBytes = restoredBytes
        stats.failedPuts = failedPuts
        stats.spillDirectory = spillDirectory
        stats.warmBytes = allocator.warmBytes
        return stats
    }

    /// Copies `count` bytes between two descriptors, a few MiB at a time (a spill, a restore).
    /// ENOSPC while writing shared memory is OBJECT_STORE_FULL.
    private static func copy(from source: Int32, at sourceOffset: UInt64, to target: Int32, at targetOffset: UInt64,
                             count: UInt64, describing name: String) throws {
        let bufferSize = Int(min(count, 8 << 20))
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(bufferSize, 1), alignment: 64)
        defer { buffer.deallocate() }
        var done: UInt64 = 0
        while done < count {
            let n = pread(source, buffer, min(Int(count - done), bufferSize), off_t(sourceOffset + done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw RPCFailure(.objectLost, "reading for \(name): \(n == 0 ? "it ends early" : String(cString: strerror(errno)))") }
            var written = 0
            while written < n {
                let w = pwrite(target, buffer + written, n - written, off_t(targetOffset + done) + off_t(written))
                if w < 0 && errno == EINTR { continue }
                guard w > 0 else {
                    let code = errno
                    if code == ENOSPC { throw RPCFailure(.objectStoreFull, "no room left writing \(name) (\(String(cString: strerror(code))))") }
                    throw RPCFailure(.internal, "writing \(name): \(String(cString: strerror(code)))")
                }
                written += w
            }
            done += UInt64(n)
        }
    }
}

/// An open chunk of an object (in the arena or its spill file), read once and closed with it.
final class ChunkSource: Sendable {
    let object: UniqueID
    private let descriptor: Int32
    /// From the start of the arena (or of the spill file).
    let offset: Int
    let count: Int
    /// Where the object's value starts in the arena (its header is checked after the read);
    /// nil for a spill file, which is the object's alone.
    let valueOffset: Int?
    let generation: UInt64

    init(object: UniqueID, descriptor: Int32, offset: Int, count: Int, valueOffset: Int?, generation: UInt64) {
        self.object = object
        self.descriptor = descriptor
        self.offset = offset
        self.count = count
        self.valueOffset = valueOffset
        self.generation = generation
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
        if let valueOffset, !SharedSegment.holds(descriptor, valueOffset: valueOffset, id: object.bytes, generation: generation) {
            throw RPCFailure(.unavailable, "object \(object.short) moved (spilled or freed) here while being read: ask again")
        }
    }
}
