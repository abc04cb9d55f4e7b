import CSystem
#if canImport(Glibc)
import Glibc
#endif

/// The space of a file's pages, for the object store's arena (glibc calls Swift's Glibc
/// module does not expose).
public enum FileSpace {
    /// Frees the pages of `length` bytes at `offset` (on tmpfs they go back to the system);
    /// the size stays, and the range reads as zeros. Returns errno on failure.
    public static func punchHole(_ fd: Int32, offset: UInt64, length: UInt64) -> Int32? {
        starling_punch_hole(fd, Int64(offset), Int64(length)) == 0 ? nil : errno
    }
}
