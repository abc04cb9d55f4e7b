import CSystem
#if canImport(Glibc)
import Glibc
#endif

/// Process-wide settings every Starling process applies at start-up.
public enum ProcessTuning {
    /// Largest allocation glibc serves from its heap rather than a fresh mapping (its maximum
    /// on 64-bit is 32 MiB); larger ones are rare and get fresh pages anyway.
    public static let mmapThreshold: Int32 = 32 << 20
    /// Free heap memory glibc keeps instead of trimming it back to the kernel.
    public static let trimThreshold: Int32 = 256 << 20

    /// Applies the allocator settings. Idempotent; call before the hot path starts.
    public static func apply() {
        starling_tune_malloc(mmapThreshold, trimThreshold)
    }

    /// Has the kernel kill this process when its parent dies (workers of a node).
    public static func dieWithParent() {
        _ = starling_die_with_parent(SIGKILL)
    }
}
