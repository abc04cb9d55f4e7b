#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
@testable import StarlingNode
@testable import StarlingCore
import StarlingWire

@Suite("Object store bookkeeping")
struct ObjectStoreBookkeepingTests {
    /// Runs `body` on a store of its own (its spill directory in /tmp), removed afterwards.
    func withStore(capacity: UInt64, _ body: (inout ObjectStore) throws -> Void) throws {
        let spill = NSTemporaryDirectory() + "starling-store-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        var store = ObjectStore(capacity: capacity, nodeID: UniqueID.random(), spillDirectory: spill)
        defer {
            store.removeAll()
            try? FileManager.default.removeItem(atPath: spill)
        }
        try body(&store)
    }
    /// Creates object `id` of `size` bytes, each `byte`, writes and seals it.
    func putSealed(_ store: inout ObjectStore, _ id: UniqueID, size: Int, byte: UInt8) throws -> ShmLocation {
        let location = try store.create(id, size: UInt64(size), .init(owner: 1))
        try [UInt8](repeating: byte, count: size).withUnsafeBytes { try SharedSegment.write(location, [$0]) }
        try store.seal(id, abort: false)
        return location
    }

    /// True when `read` throws `SharedSegment.Failure.gone`.
    func gone(_ read: () throws -> Void) -> Bool {
        do {
            try read()
            return false
        } catch SharedSegment.Failure.gone {
            return true
        } catch {
            return false
        }
    }

    @Test("a departed creator's unsealed objects are freed, even a worker's job-owned result; its sealed job results stay")
    func unsealedFreedWithTheirCreator() throws {
        try withStore(capacity: 1 << 20) { store in
            let job: [UInt8] = Array(repeating: 7, count: 16)
            let sealed = UniqueID.random(), unsealed = UniqueID.random(), own = UniqueID.random()
            // A worker (connection 5) stores two results for its job and seals one; the other's
            // seal never arrives. It also made an object of its own, unsealed.
            _ = try store.create(sealed, size: 1000, .init(owner: 5, job: job, jobID: job))
            try store.seal(sealed, abort: false)
            _ = try store.create(unsealed, size: 1000, .init(owner: 5, job: job, jobID: job))
            _ = try store.create(own, size: 1000, .init(owner: 5, job: nil))
            store.freeAll(ownedBy: 5)
            #expect(store.entries[sealed] != nil, "a sealed result belongs to the job")
            #expect(store.entries[unsealed] == nil, "an unsealed one goes with its creator")
            #expect(store.entries[own] == nil)
        }
    }

    @Test("a freed object's range is reused warm; a reader with its old location finds it gone, not the new object's bytes")
    func reusedRangeReadsAsGone() throws {
        try withStore(capacity: 16 << 20) { store in
            let size = 1 << 20
            let first = UniqueID.random(), second = UniqueID.random()
            let old = try store.create(first, size: UInt64(size), .init(owner: 1))
            #expect(!old.resident, "a new arena has no pages yet")
            let ones = [UInt8](repeating: 1, count: size)
            try ones.withUnsafeBytes { try SharedSegment.write(old, [$0]) }
            try store.seal(first, abort: false)
            var read = [UInt8](repeating: 0, count: size)
            try read.withUnsafeMutableBytes { try SharedSegment.read(old, id: first.bytes, into: $0.baseAddress!) }
            #expect(read == ones)

            store.free(first)
            #expect(store.warmBytes >= UInt64(size), "its pages are kept for the next object")
            let new = try store.create(second, size: UInt64(size), .init(owner: 1))
            #expect(new.resident && new.offset == old.offset, "the next object of that size takes the warm range")
            #expect(store.warmBytes == 0)
            let twos = [UInt8](repeating: 2, count: size)
            try twos.withUnsafeBytes { try SharedSegment.write(new, [$0]) }
            #expect(gone { try read.withUnsafeMutableBytes { try SharedSegment.read(new, id: second.bytes, into: $0.baseAddress!) } },
                    "unsealed: no header yet, so no reader takes a half-written value")
            #expect(gone { try read.withUnsafeMutableBytes { try SharedSegment.read(old, id: first.bytes, into: $0.baseAddress!) } })
            try store.seal(second, abort: false)
            try read.withUnsafeMutableBytes { try SharedSegment.read(new, id: second.bytes, into: $0.baseAddress!) }
            #expect(read == twos)

            // The same object again in the same range (a copy evicted, then pulled again): a
            // location of the earlier copy reads as gone, as its generation is not the header's.
            store.free(second)
            let again = try store.create(second, size: UInt64(size), .init(owner: 1, primary: false))
            #expect(again.offset == new.offset && again.generation != new.generation)
            try twos.withUnsafeBytes { try SharedSegment.write(again, [$0]) }
            try store.seal(second, abort: false)
            #expect(gone { try read.withUnsafeMutableBytes { try SharedSegment.read(new, id: second.bytes, into: $0.baseAddress!) } })
            try read.withUnsafeMutableBytes { try SharedSegment.read(again, id: second.bytes, into: $0.baseAddress!) }
            #expect(read == twos)

            // Idle for a second: the freed pages go back to the system.
            store.free(second)
            #expect(store.warmBytes > 0)
            store.coolIfIdle(now: .now + .seconds(2))
            #expect(store.warmBytes == 0)
            var info = stat()
            #expect(stat("/dev/shm" + store.arenaName, &info) == 0 && info.st_blocks == 0, "no page of the arena is left in /dev/shm")
        }
    }

    @Test("an unsealed object freed while its writer may still write keeps its range until the writer seals, aborts or leaves")
    func abandonedWritesKeepTheirRange() throws {
        try withStore(capacity: 16 << 20) { store in
            let size: UInt64 = 1 << 20
            let job: [UInt8] = Array(repeating: 3, count: 16)
            // A worker (connection 3) is writing its job's result when the job ends.
            let writing = UniqueID.random()
            let first = try store.create(writing, size: size, .init(owner: 3, job: job, jobID: job))
            store.freeAll(job: job)
            #expect(store.entries[writing] == nil)
            #expect(store.used > 0, "its range is still reserved for the writer")
            let other = UniqueID.random()
            let second = try store.create(other, size: size, .init(owner: 4))
            #expect(second.offset != first.offset, "a new object must not take a range still being written")
            // The writer's seal finds the object gone, and gives the range back.
            #expect(throws: RPCFailure.self) { try store.seal(writing, abort: false) }
            try store.seal(other, abort: false)
            store.free(other)
            #expect(store.used == 0)

            // A writer that leaves without sealing gives its ranges back too.
            let left = UniqueID.random()
            _ = try store.create(left, size: size, .init(owner: 5, job: job, jobID: job))
            store.freeAll(job: job)
            #expect(store.used > 0)
            store.freeAll(ownedBy: 5)
            #expect(store.used == 0)
        }
    }

    @Test("a chunk read while its object is freed and its range reused is refused as UNAVAILABLE (ask again), never served")
    func chunkOfAMovedObject() throws {
        try withStore(capacity: 16 << 20) { store in
            let size = 1 << 20
            let id = UniqueID.random(), next = UniqueID.random()
            let location = try putSealed(&store, id, size: size, byte: 1)
            var buffer = [UInt8](repeating: 0, count: 4096)
            try buffer.withUnsafeMutableBytes { try store.chunk(id, offset: 0, length: 4096).read(into: $0.baseAddress!) }
            #expect(buffer == [UInt8](repeating: 1, count: 4096))

            let source = try store.chunk(id, offset: 0, length: 4096)
            store.free(id)
            let reused = try store.create(next, size: UInt64(size), .init(owner: 1))
            #expect(reused.offset == location.offset)
            try [UInt8](repeating: 2, count: size).withUnsafeBytes { try SharedSegment.write(reused, [$0]) }
            try store.seal(next, abort: false)
            do {
                try buffer.withUnsafeMutableBytes { try source.read(into: $0.baseAddress!) }
                Issue.record("a chunk of a freed object was served")
            } catch let failure as RPCFailure {
                #expect(failure.code == .unavailable)
            }
        }
    }

    @Test("removing the store keeps the pages of objects views still read, and only those")
    func removeAllKeepsViewedPages() throws {
        try withStore(capacity: 16 << 20) { store in
            let size = 1 << 20
            let viewed = UniqueID.random(), dropped = UniqueID.random()
            let kept = try putSealed(&store, viewed, size: size, byte: 7)
            _ = try putSealed(&store, dropped, size: size, byte: 8)
            store.pin(viewed, for: 9)
            // A reader's mapping of the arena outlives the node's removal of it.
            let fd = shm_open(store.arenaName, O_RDONLY, 0)
            #expect(fd >= 0)
            defer { close(fd) }
            store.removeAll()
            var info = stat()
            #expect(fstat(fd, &info) == 0 && Int(info.st_blocks) * 512 >= size && Int(info.st_blocks) * 512 < 2 * size,
                    "the viewed object's pages stay, the other's are gone: \(info.st_blocks * 512) bytes")
            var read = [UInt8](repeating: 0, count: size)
            #expect(read.withUnsafeMutableBytes { pread(fd, $0.baseAddress, size, off_t(kept.offset)) } == size)
            #expect(read == [UInt8](repeating: 7, count: size))
        }
    }

    @Test("accounting through spill, restore and a freed object still viewed: used, spilled and warm bytes add up, and the bytes survive")
    func accountingThroughSpillAndViews() throws {
        try withStore(capacity: 4 << 20) { store in
            let size = 3 << 19 // 1.5 MiB: two fit in 4 MiB, three do not
            let footprint = ArenaAllocator.rounded(UInt64(size) + UInt64(SharedSegment.objectHeaderSize))
            let a = UniqueID.random(), b = UniqueID.random(), c = UniqueID.random()
            _ = try putSealed(&store, a, size: size, byte: 1)
            _ = try putSealed(&store, b, size: size, byte: 2)
            #expect(store.used == 2 * footprint && store.spilledBytes == 0)
            // A third spills the least recently used (a), whose range it then takes warm.
            let third = try putSealed(&store, c, size: size, byte: 3)
            #expect(third.resident, "the spilled object's pages are reused")
            #expect(store.used == 2 * footprint && store.spilledBytes == footprint && store.warmBytes == 0)
            #expect(store.entries[a]?.spillPath != nil)
            // Reading a restores it (spilling b, now the least recently used), bit-exact.
            let restored = try #require(try store.location(a))
            var read = [UInt8](repeating: 0, count: size)
            try read.withUnsafeMutableBytes { try SharedSegment.read(restored, id: a.bytes, into: $0.baseAddress!) }
            #expect(read == [UInt8](repeating: 1, count: size))
            #expect(store.entries[b]?.spillPath != nil && store.used == 2 * footprint && store.spilledBytes == footprint)
            // Freed while a reader views it: counted until the view closes, then warm.
            store.pin(a, for: 7)
            store.free(a)
            #expect(store.used == 2 * footprint && store.warmBytes == 0)
            store.unpin(a, for: 7)
            #expect(store.used == footprint && store.warmBytes == footprint)
            // Freeing a spilled object removes its file and its count.
            store.free(b)
            #expect(store.spilledBytes == 0)
            store.free(c)
            #expect(store.used == 0 && store.warmBytes == 2 * footprint)
        }
    }
}
