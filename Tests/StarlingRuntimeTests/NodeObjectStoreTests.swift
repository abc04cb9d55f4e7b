import Foundation
import Testing
import StarlingCore
@testable import StarlingNode
import StarlingWire

/// The object store as local processes use it, through a real node's RPCs on a real socket
/// (a node with no head and no workers).
@Suite("Object store through a node's RPCs")
struct NodeObjectStoreTests {
    func withNode(_ body: (RPCClient) async throws -> Void) async throws {
        let directory = NSTemporaryDirectory() + "starling-node-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let token = ClusterToken.generate()
        var settings = NodeSettings(sessionDir: directory, tokenFile: directory + "/token", workerExecutable: nil)
        settings.objectStoreCapacity = 64 << 20
        settings.prestartWorkers = 0
        let node = NodeManager(settings: settings, token: token)
        try await node.start()
        do {
            guard let address = await node.address else { throw StoreTestFailure.noAddress }
            let client = try await RPCClient.connect(to: address, token: token)
            defer { client.close() }
            try await body(client)
        } catch {
            await node.stop()
            throw error
        }
        await node.stop()
    }

    enum StoreTestFailure: Error { case noAddress, noLocation }

    /// Creates `id` (`bytes`) and writes it, without sealing.
    func createAndWrite(_ client: RPCClient, _ id: UniqueID, _ bytes: [UInt8]) async throws -> ShmLocation {
        var create = CreateObjectRequest()
        create.objectId = id.bytes
        create.dataSize = UInt64(bytes.count)
        create.primary = true
        guard let location = try await client.call(ObjectStoreRPC.createObject, create).location else { throw StoreTestFailure.noLocation }
        try bytes.withUnsafeBytes { try SharedSegment.write(location, [$0]) }
        return location
    }

    func seal(_ client: RPCClient, _ id: UniqueID, abort: Bool = false) async throws {
        var seal = SealObjectRequest()
        seal.objectId = id.bytes
        seal.abort = abort
        _ = try await client.call(ObjectStoreRPC.sealObject, seal)
    }

    func ask(_ client: RPCClient, _ id: UniqueID) -> Task<GetStoredObjectsReply, any Error> {
        Task {
            var get = GetStoredObjectsRequest()
            get.objectIds = [id.bytes]
            return try await client.call(ObjectStoreRPC.getStoredObjects, get, timeout: .seconds(30))
        }
    }

    @Test("a reader that asks before the writer's seal arrived waits for it, then reads the object")
    func readerWaitsForSeal() async throws {
        try await withNode { client in
            let id = UniqueID.random()
            let bytes = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7) }
            _ = try await createAndWrite(client, id, bytes)
            // Writers that hand a value on at once seal without waiting: a reader can get here first.
            let reader = ask(client, id)
            try await Task.sleep(for: .milliseconds(300))
            try await seal(client, id)
            let object = try #require(try await reader.value.objects.first)
            #expect(object.found, "\(object.status?.message ?? "")")
            let location = try #require(object.location)
            var read = [UInt8](repeating: 0, count: bytes.count)
            try read.withUnsafeMutableBytes { try SharedSegment.read(location, id: id.bytes, into: $0.baseAddress!) }
            #expect(read == bytes)
        }
    }

    @Test("a reader waiting for a seal hears at once when the writer aborts instead")
    func readerWokenByAbort() async throws {
        try await withNode { client in
            let id = UniqueID.random()
            _ = try await createAndWrite(client, id, [UInt8](repeating: 3, count: 4096))
            let reader = ask(client, id)
            try await Task.sleep(for: .milliseconds(300))
            let aborted = ContinuousClock.now
            try await seal(client, id, abort: true)
            let object = try #require(try await reader.value.objects.first)
            #expect(!object.found)
            // Woken by the abort, not by the node's 10 s deadline for seals.
            #expect(ContinuousClock.now - aborted < .seconds(5))
        }
    }

    @Test("past the most readers a node holds for seals, more are told UNAVAILABLE at once; the held ones read after the seal")
    func sealWaitersCapped() async throws {
        try await withNode { client in
            let id = UniqueID.random()
            _ = try await createAndWrite(client, id, [UInt8](repeating: 5, count: 8192))
            let held = (0..<NodeManager.maxSealWaiters).map { _ in ask(client, id) }
            try await Task.sleep(for: .milliseconds(500))
            let asked = ContinuousClock.now
            let extra = try #require(try await ask(client, id).value.objects.first)
            // Turned away at once, not held until the node's deadline for seals.
            #expect(ContinuousClock.now - asked < NodeManager.sealWait / 2)
            #expect(!extra.found)
            #expect(extra.status?.code == .unavailable, "\(extra.status?.message ?? "")")
            try await seal(client, id)
            for reader in held {
                let object = try #require(try await reader.value.objects.first)
                #expect(object.found, "\(object.status?.message ?? "")")
            }
        }
    }

    @Test("another node asking about an object whose seal is on its way is answered once it is sealed")
    func peerWaitsForSeal() async throws {
        try await withNode { client in
            let id = UniqueID.random()
            _ = try await createAndWrite(client, id, [UInt8](repeating: 8, count: 1 << 20))
            let peer = Task {
                var ask = GetObjectInfoRequest()
                ask.objectId = id.bytes
                return try await client.call(ObjectManagerRPC.getObjectInfo, ask, timeout: .seconds(30))
            }
            try await Task.sleep(for: .milliseconds(300))
            try await seal(client, id)
            let info = try #require(try await peer.value.info)
            #expect(info.dataSize == 1 << 20)
        }
    }

    @Test("a reader held for a seal that never comes is answered UNAVAILABLE at the node's deadline")
    func sealDeadline() async throws {
        try await withNode { client in
            let id = UniqueID.random()
            _ = try await createAndWrite(client, id, [UInt8](repeating: 1, count: 4096))
            let object = try #require(try await ask(client, id).value.objects.first)
            #expect(!object.found)
            #expect(object.status?.code == .unavailable, "\(object.status?.message ?? "")")
        }
    }
}
