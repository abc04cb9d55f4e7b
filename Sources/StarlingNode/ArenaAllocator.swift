/// The ranges of a node's object arena: one large, sparse shared-memory file in which every
/// object has a page-aligned range.
///
/// A free range remembers whether its pages are still in memory. A freed object leaves a
/// *warm* range: its pages stay allocated, and the next object of a size that fits takes it,
/// so its copy needs no page allocated or zeroed and runs at memory speed. A range never used,
/// or whose pages were punched out, is a *hole*. An object takes the smallest warm range that
/// fits, else the lowest hole that fits.
struct ArenaAllocator {
    struct Range: Equatable, Sendable {
        var start: UInt64
        var length: UInt64
        var end: UInt64 { start + length }
    }

    struct FreeRange: Equatable {
        var start: UInt64
        var length: UInt64
        var warm: Bool
    }

    static let pageSize: UInt64 = 4096

    /// The arena's bytes, a multiple of the page size.
    let size: UInt64
    /// Free ranges in address order; neighbours of the same kind are merged.
    private(set) var free: [FreeRange]
    /// Bytes of warm free ranges (memory allocated but holding no object).
    private(set) var warmBytes: UInt64 = 0

    init(size: UInt64) {
        self.size = Self.rounded(size)
        free = self.size > 0 ? [FreeRange(start: 0, length: self.size, warm: false)] : []
    }

    /// `bytes` rounded up to whole pages.
    static func rounded(_ bytes: UInt64) -> UInt64 {
        (bytes + pageSize - 1) / pageSize * pageSize
    }

    /// A range of `length` bytes (whole pages), and whether its pages are already in memory;
    /// nil when no free range is long enough.
    mutating func allocate(_ length: UInt64) -> (range: Range, warm: Bool)? {
        guard length > 0, length % Self.pageSize == 0 else { return nil }
        var chosen: Int?
        for (index, candidate) in free.enumerated() where candidate.warm && candidate.length >= length {
            if chosen.map({ candidate.length < free[$0].length }) ?? true { chosen = index }
        }
        if chosen == nil { chosen = free.firstIndex { !$0.warm && $0.length >= length } }
        guard let index = chosen else { return nil }
        let taken = free[index]
        if taken.length == length {
            free.remove(at: index)
        } else {
            free[index].start += length
            free[index].length -= length
        }
        if taken.warm { warmBytes -= length }
        return (Range(start: taken.start, length: length), taken.warm)
    }

    /// Gives a range back: `warm` when every page of it is still in memory.
    mutating func release(_ range: Range, warm: Bool) {
        insert(FreeRange(start: range.start, length: range.length, warm: warm))
        if warm { warmBytes += range.length }
    }

    /// Turns warm ranges (largest first) into holes until at least `bytes` are cooled, or all
    /// of them when nil. Returns the ranges whose pages the caller must now punch out.
    mutating func cool(atLeast bytes: UInt64? = nil) -> [Range] {
        var cooled: [Range] = []
        var total: UInt64 = 0
        while bytes.map({ total < $0 }) ?? true {
            guard let index = free.indices.filter({ free[$0].warm }).max(by: { free[$0].length < free[$1].length }) else { break }
            let range = free.remove(at: index)
            warmBytes -= range.length
            total += range.length
            insert(FreeRange(start: range.start, length: range.length, warm: false))
            cooled.append(Range(start: range.start, length: range.length))
        }
        return cooled
    }

    private mutating func insert(_ range: FreeRange) {
        let index = free.firstIndex { $0.start > range.start } ?? free.count
        free.insert(range, at: index)
        if index + 1 < free.count, free[index + 1].warm == range.warm, range.start + range.length == free[index + 1].start {
            free[index].length += free[index + 1].length
            free.remove(at: index + 1)
        }
        if index > 0, free[index - 1].warm == range.warm, free[index - 1].start + free[index - 1].length == free[index].start {
            free[index - 1].length += free[index].length
            free.remove(at: index)
        }
    }
}
