import Testing
@testable import StarlingNode

/// The object arena's ranges: warm ranges (freed objects' pages) are taken first, holes next;
/// neighbours merge; cooling turns warm ranges into holes and names them for punching.
@Suite("Object arena allocator")
struct ArenaAllocatorTests {
    let page = ArenaAllocator.pageSize

    func allocate(_ arena: inout ArenaAllocator, _ length: UInt64) throws -> (range: ArenaAllocator.Range, warm: Bool) {
        let placed = arena.allocate(length)
        return try #require(placed)
    }

    /// Free ranges never overlap, never touch a neighbour of the same kind, and with the
    /// allocated bytes add up to the arena.
    func checkInvariants(_ arena: ArenaAllocator, allocated: UInt64) {
        var end: UInt64 = 0
        var total: UInt64 = 0
        var warm: UInt64 = 0
        for (index, range) in arena.free.enumerated() {
            #expect(range.start >= end)
            if index > 0 {
                let previous = arena.free[index - 1]
                #expect(!(previous.start + previous.length == range.start && previous.warm == range.warm))
            }
            end = range.start + range.length
            total += range.length
            if range.warm { warm += range.length }
        }
        #expect(end <= arena.size)
        #expect(total + allocated == arena.size)
        #expect(warm == arena.warmBytes)
    }

    @Test("a freed range is reused warm, the smallest warm range that fits")
    func warmFirst() throws {
        var arena = ArenaAllocator(size: 64 * page)
        let a = try allocate(&arena, 8 * page)
        let b = try allocate(&arena, 4 * page)
        let c = try allocate(&arena, 2 * page)
        #expect(!a.warm && !b.warm && !c.warm)
        #expect([a.range.start, b.range.start, c.range.start] == [0, 8 * page, 12 * page])
        arena.release(a.range, warm: true)
        arena.release(c.range, warm: true)
        #expect(arena.warmBytes == 10 * page)
        checkInvariants(arena, allocated: 4 * page)
        // 2 pages: the smaller warm range (c's), not a's and not the hole.
        let d = try allocate(&arena, 2 * page)
        #expect(d.warm && d.range.start == 12 * page)
        // 3 pages: part of a's range, still warm.
        let e = try allocate(&arena, 3 * page)
        #expect(e.warm && e.range.start == 0)
        #expect(arena.warmBytes == 5 * page)
        // 6 pages: no warm range is that long, so the lowest hole.
        let f = try allocate(&arena, 6 * page)
        #expect(!f.warm && f.range.start == 14 * page)
        checkInvariants(arena, allocated: (4 + 2 + 3 + 6) * page)
    }

    @Test("neighbours of the same kind merge; warm and hole neighbours stay apart")
    func merging() throws {
        var arena = ArenaAllocator(size: 16 * page)
        let ranges = (0..<4).compactMap { _ in arena.allocate(4 * page)?.range }
        #expect(ranges.count == 4)
        #expect(arena.allocate(page) == nil)
        arena.release(ranges[1], warm: true)
        arena.release(ranges[2], warm: true)
        #expect(arena.free == [.init(start: 4 * page, length: 8 * page, warm: true)])
        arena.release(ranges[3], warm: false)
        #expect(arena.free.count == 2)
        checkInvariants(arena, allocated: 4 * page)
        // 8 pages in one piece: the merged warm range.
        let whole = try allocate(&arena, 8 * page)
        #expect(whole.warm && whole.range.start == 4 * page)
        checkInvariants(arena, allocated: 12 * page)
    }

    @Test("cooling turns warm ranges into holes, largest first, and names them for punching")
    func cooling() throws {
        var arena = ArenaAllocator(size: 32 * page)
        let small = try allocate(&arena, 2 * page).range
        let spacer = try allocate(&arena, page).range
        let large = try allocate(&arena, 6 * page).range
        arena.release(small, warm: true)
        arena.release(large, warm: true)
        #expect(arena.warmBytes == 8 * page)
        // One page wanted: the largest warm range goes, whole.
        #expect(arena.cool(atLeast: page) == [large])
        #expect(arena.warmBytes == 2 * page)
        checkInvariants(arena, allocated: page)
        #expect(arena.cool() == [small])
        #expect(arena.warmBytes == 0)
        #expect(arena.cool().isEmpty)
        // The spacer freed: every hole merges into one, the whole arena.
        arena.release(spacer, warm: false)
        #expect(arena.free == [.init(start: 0, length: 32 * page, warm: false)])
    }

    @Test("lengths that are not whole pages, or zero, are refused")
    func refusesBadLengths() {
        var arena = ArenaAllocator(size: 8 * page)
        #expect(arena.allocate(0) == nil)
        #expect(arena.allocate(page + 1) == nil)
        #expect(arena.allocate(9 * page) == nil)
        #expect(ArenaAllocator.rounded(1) == page)
        #expect(ArenaAllocator.rounded(page) == page)
    }
}
