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

        public var description: String {
            switch self {
            case let .gone(segment): "shared-memory segment \(segment) is gone (freed or spilled)"
            case let .cannotMap(segment, reason): "cannot map shared-memory segment \(segment): \(reason)"
            }
        }
    }

    /// Maps the whole segment; `populate` maps every page at once instead of faulting each in.
    public static func map(_ segment: String, size: Int, writable: Bool, populate: Bool) throws -> UnsafeMutableRawPointer {
        let fd = shm_open(segment, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC, 0)
        guard fd >= 0 else {
            if errno == ENOENT { throw Failure.gone(segment: segment) }
            throw Failure.cannotMap(segment: segment, reason: String(cString: strerror(errno)))
        }
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
