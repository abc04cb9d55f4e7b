#if canImport(Glibc)
import Glibc
#endif

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
