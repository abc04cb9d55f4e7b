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
    @Test("a departed creator's unsealed objects are freed, even a worker's job-owned result; its sealed job results stay")
    func unsealedFreedWithTheirCreator() throws {
        let spill = NSTemporaryDirectory() + "starling-store-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        var store = ObjectStore(capacity: 1 << 20, nodeID: UniqueID.random(), spillDirectory: spill)
        defer {
            store.removeAll()
            try? FileManager.default.removeItem(atPath: spill)
        }
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

    @Test("a freed object's range is reused warm; a reader with its old location finds it gone, not the new object's bytes")
    func reusedRangeReadsAsGone() throws {
        let spill = NSTemporaryDirectory() + "starling-store-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        var store = ObjectStore(capacity: 16 << 20, nodeID: UniqueID.random(), spillDirectory: spill)
        defer {
            store.removeAll()
            try? FileManager.default.removeItem(atPath: spill)
        }
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
        try store.seal(second, abort: false)
        #expect(throws: SharedSegment.Failure.self) {
            try read.withUnsafeMutableBytes { try SharedSegment.read(old, id: first.bytes, into: $0.baseAddress!) }
        }
        try read.withUnsafeMutableBytes { try SharedSegment.read(new, id: second.bytes, into: $0.baseAddress!) }
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
