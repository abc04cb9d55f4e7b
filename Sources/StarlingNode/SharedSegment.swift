#if canImport(Glibc)
import Glibc
#endif
import StarlingWire
import Synchronization

/// Mapping POSIX shared-memory segments of a node's object store (the node, its workers and
/// drivers on the host all read and write objects this way).
public enum SharedSegment {
    public enum Failure: Error, CustomStringConvertible {
        /// No segment of that name: freed, or spilled to disk (ask the node to restore it).
        case gone(segment: String)
        case cannotMap(segment: String, reason: String)
        /// Writing failed; `full` when shared memory (/dev/shm) has no room left.
        case cannotWrite(segment: String, reason: String, full: Bool)
        case cannotRead(segment: String, reason: String)

        public var description: String {
            switch self {
            case let .gone(segment): "shared-memory segment \(segment) is gone (freed or spilled)"
            case let .cannotMap(segment, reason): "cannot map shared-memory segment \(segment): \(reason)"
            case let .cannotWrite(segment, reason, _): "cannot write shared-memory segment \(segment): \(reason)"
            case let .cannotRead(segment, reason): "cannot read shared-memory segment \(segment): \(reason)"
            }
        }
    }

    // MARK: - Objects in a node's arena

    /// Bytes of the header the node writes just before a sealed object's value: a magic
    /// number, the object's id and its generation at the node; written once the value is
    /// complete, zeroed when the object leaves its range. A reader that was not pinned checks
    /// it before and after copying, so a range reused meanwhile (even by a later copy of the
    /// same object) reads as gone.
    public static let objectHeaderSize = 64
    private static let headerMagic: [UInt8] = Array("STLOBJ02".utf8)

    /// The header of object `id` (16 bytes) in its `generation`.
    static func objectHeader(for id: [UInt8], generation: UInt64) -> [UInt8] {
        var header = [UInt8](repeating: 0, count: objectHeaderSize)
        header.replaceSubrange(0..<8, with: headerMagic)
        header.replaceSubrange(8..<8 + min(id.count, 16), with: id.prefix(16))
        withUnsafeBytes(of: generation.littleEndian) { header.replaceSubrange(24..<32, with: $0) }
        return header
    }

    /// True when the header before the value at `valueOffset` names object `id` in `generation`.
    static func holds(_ fd: Int32, valueOffset: Int, id: [UInt8], generation: UInt64) -> Bool {
        guard valueOffset >= objectHeaderSize else { return false }
        var header = [UInt8](repeating: 0, count: objectHeaderSize)
        let n = header.withUnsafeMutableBytes { pread(fd, $0.baseAddress, objectHeaderSize, off_t(valueOffset - objectHeaderSize)) }
        return n == objectHeaderSize && header == objectHeader(for: id, generation: generation)
    }

    /// Copies the value of object `id` at `location` into `target` (`location.dataSize` bytes),
    /// with `pread`: a range punched out meanwhile reads as zeros instead of allocating memory.
    /// Throws `.gone` when the object left that range before or during the copy.
    public static func read(_ location: ShmLocation, id: [UInt8], into target: UnsafeMutableRawPointer) throws {
        let fd = try open(location.segment, writable: false)
        defer { close(fd) }
        let offset = Int(location.offset)
        guard holds(fd, valueOffset: offset, id: id, generation: location.generation) else { throw Failure.gone(segment: location.segment) }
        try read(fd, location.segment, at: offset, count: Int(location.dataSize), into: target)
        guard holds(fd, valueOffset: offset, id: id, generation: location.generation) else { throw Failure.gone(segment: location.segment) }
    }

    /// Writes `parts` one after another at the value's place in `location`. A range whose
    /// pages are in memory already (`resident`) is filled through this process's mapping of the
    /// arena, at memory speed (no page to allocate, so no SIGBUS). The first time this process
    /// writes a range, its page-table entries are made in one call rather than a fault each;
    /// the same range again (a put after a put freed) finds them there. Other ranges are written
    /// with `pwrite`: the kernel fills fresh pages faster that way, and reports a full /dev/shm
    /// as ENOSPC.
    public static func write(_ location: ShmLocation, _ parts: [UnsafeRawBufferPointer]) throws {
        let offset = Int(location.offset)
        let total = parts.reduce(0) { $0 + $1.count }
        if location.resident, total > 0, let arena = try? mapping(location),
           alreadyTouched(location) || populate(arena + offset, count: total, advice: madvisePopulateWrite) {
            var position = arena + offset
            for part in parts where part.count > 0 {
                position.copyMemory(from: part.baseAddress!, byteCount: part.count)
                position += part.count
            }
            return
        }
        try write(location.segment, at: offset, parts)
    }

    /// The address of a pinned object's value in this process's mapping of its arena (valid
    /// while the pin lasts). The pages are mapped in one call first, rather than a fault each.
    public static func mappedValue(_ location: ShmLocation) throws -> UnsafeRawPointer {
        let arena = try mapping(location)
        let value = arena + Int(location.offset)
        if !alreadyTouched(location) { _ = populate(value, count: Int(location.dataSize), advice: madvisePopulateRead) }
        return UnsafeRawPointer(value)
    }

    /// Arenas mapped by this process, by name. A mapping is made once and kept for the life of
    /// the process: a node's arena lasts as long as the node, and the processes that read it
    /// (its workers and drivers) run on that node. The mapping reserves addresses only; pages
    /// are shared with the node's file.
    private static let arenas = Mutex<[String: (address: UInt, size: UInt64)]>([:])

    private static func mapping(_ location: ShmLocation) throws -> UnsafeMutableRawPointer {
        try arenas.withLock { arenas in
            let arena: (address: UInt, size: UInt64)
            if let mapped = arenas[location.segment] {
                arena = mapped
            } else {
                guard location.segmentSize > 0 else {
                    throw Failure.cannotMap(segment: location.segment, reason: "the node gave no arena size")
                }
                let base = try map(location.segment, size: Int(location.segmentSize), writable: true, populate: false)
                arena = (UInt(bitPattern: base), location.segmentSize)
                arenas[location.segment] = arena
            }
            // Every location is checked against the mapping, not only the first.
            guard location.offset <= arena.size, location.dataSize <= arena.size - location.offset else {
                throw Failure.cannotMap(segment: location.segment, reason: "the value at \(location.offset) (\(location.dataSize) bytes) is outside the arena's \(arena.size) bytes")
            }
            return UnsafeMutableRawPointer(bitPattern: arena.address)!
        }
    }

    /// Linux's MADV_POPULATE_READ and MADV_POPULATE_WRITE (5.14), not exported by Glibc.
    private static let madvisePopulateRead: Int32 = 22
    private static let madvisePopulateWrite: Int32 = 23

    /// Values this process wrote or read through its mapping lately (arena, offset, size): their
    /// page-table entries are likely still there. When the node punched the pages out since,
    /// the copy faults them back in one by one: slower, never wrong (the range is resident or
    /// pinned).
    private struct TouchedRange: Hashable {
        let segment: String
        let offset: UInt64
        let size: UInt64
    }

    private static let touched = Mutex<Set<TouchedRange>>([])

    /// True when this process touched this very range before; remembers it otherwise.
    private static func alreadyTouched(_ location: ShmLocation) -> Bool {
        let range = TouchedRange(segment: location.segment, offset: location.offset, size: location.dataSize)
        return touched.withLock { set in
            if set.contains(range) { return true }
            if set.count >= 256 { set.removeAll() }
            set.insert(range)
            return false
        }
    }

    private static func populate(_ start: UnsafeMutableRawPointer, count: Int, advice: Int32) -> Bool {
        let page = UInt(ArenaAllocator.pageSize)
        let first = UInt(bitPattern: start) / page * page
        let end = (UInt(bitPattern: start) + UInt(count) + page - 1) / page * page
        return madvise(UnsafeMutableRawPointer(bitPattern: first), Int(end - first), advice) == 0
    }

    // MARK: - Segments by name

    /// Writes `parts` one after another from `offset` of the segment, with `pwrite`. Copying
    /// into fresh shared memory this way costs about half of a mapped copy: the kernel fills
    /// each new page without a fault and a page-table entry for it (PITFALLS.md). A full
    /// /dev/shm is an error here, where a mapped copy would die of SIGBUS.
    public static func write(_ segment: String, at offset: Int, _ parts: [UnsafeRawBufferPointer]) throws {
        let fd = try open(segment, writable: true)
        defer { close(fd) }
        var position = offset
        for part in parts {
            guard let base = part.baseAddress else { continue }
            var done = 0
            while done < part.count {
                let n = pwrite(fd, base + done, min(part.count - done, 64 << 20), off_t(position + done))
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else {
                    let code = errno
                    throw Failure.cannotWrite(segment: segment, reason: String(cString: strerror(code)), full: code == ENOSPC)
                }
                done += n
            }
            position += part.count
        }
    }

    /// Reads `count` bytes from `offset` of the segment into `target`, with `pread` (no mapping:
    /// for a one-time read that is several times cheaper than mapping the pages).
    public static func read(_ segment: String, at offset: Int, count: Int, into target: UnsafeMutableRawPointer) throws {
        let fd = try open(segment, writable: false)
        defer { close(fd) }
        try read(fd, segment, at: offset, count: count, into: target)
    }

    private static func read(_ fd: Int32, _ segment: String, at offset: Int, count: Int, into target: UnsafeMutableRawPointer) throws {
        var done = 0
        while done < count {
            let n = pread(fd, target + done, min(count - done, 64 << 20), off_t(offset + done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                throw Failure.cannotRead(segment: segment, reason: n == 0 ? "it ends before \(offset + count) bytes" : String(cString: strerror(errno)))
            }
            done += n
        }
    }

    private static func open(_ segment: String, writable: Bool) throws -> Int32 {
        let fd = shm_open(segment, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC, 0)
        guard fd >= 0 else {
            if errno == ENOENT { throw Failure.gone(segment: segment) }
            throw Failure.cannotMap(segment: segment, reason: String(cString: strerror(errno)))
        }
        return fd
    }

    /// Maps the whole segment; `populate` maps every page at once instead of faulting each in.
    public static func map(_ segment: String, size: Int, writable: Bool, populate: Bool) throws -> UnsafeMutableRawPointer {
        let fd = try open(segment, writable: writable)
        defer { close(fd) }
        let flags = MAP_SHARED | (populate ? MAP_POPULATE : 0)
        let region = mmap(nil, size, writable ? PROT_READ | PROT_WRITE : PROT_READ, flags, fd, 0)
        guard let region, region != MAP_FAILED else {
            throw Failure.cannotMap(segment: segment, reason: String(cString: strerror(errno)))
        }
        return region
    }

    public static func unmap(_ region: UnsafeMutableRawPointer, size: Int) {
        munmap(region, size)
    }
}
