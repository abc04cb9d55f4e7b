#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
@testable import StarlingNode
@testable import StarlingCore

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
}
