import Testing
@testable import StarlingHead
@testable import StarlingCore
import StarlingWire

/// A head's directory with one 2-CPU node, and the node's heartbeats as the test sends them.
struct OneNode {
    var directory = NodeDirectory()
    let id = UniqueID.random()
    let now = ContinuousClock.now

    init() throws {
        try directory.register(NodeInfo(nodeId: id.bytes, address: ProcessAddress(url: "tcp://127.0.0.1:1", nodeId: id.bytes),
                                        totalResources: ["CPU": 2]), connection: 1, now: now)
    }

    var available: Double? { directory.entries[id]?.resources.available["CPU"] }

    mutating func beat(_ sequence: UInt64, cpu: Double, epoch: UInt64) {
        _ = directory.heartbeat(id, sequence: sequence, resources: NodeResources(nodeId: id.bytes, total: ["CPU": 2], available: ["CPU": cpu], bundleEpoch: epoch), now: now)
    }

    mutating func adjust(cpu: Double, releasing: Bool, epoch: UInt64) {
        directory.adjustAvailable(id, by: ResourceSet(["CPU": cpu]), releasing: releasing, epoch: epoch)
    }
}

@Suite("Head's node directory")
struct NodeDirectoryTests {
    @Test("a heartbeat taken before the node applied the head's latest bundle change does not undo the head's adjustment")
    func staleHeartbeatAfterRelease() throws {
        var node = try OneNode()
        // A bundle of 2 CPUs is reserved (epoch 1), reported, then released (epoch 2).
        node.adjust(cpu: 2, releasing: false, epoch: 1)
        node.beat(1, cpu: 0, epoch: 1)
        #expect(node.available == 0)
        node.adjust(cpu: 2, releasing: true, epoch: 2)
        #expect(node.available == 2)
        // A heartbeat the node took before the release arrives after it: ignored for `available`.
        node.beat(2, cpu: 0, epoch: 1)
        #expect(node.available == 2)
        // One taken after the release counts again (a task leased one CPU meanwhile).
        node.beat(3, cpu: 1, epoch: 2)
        #expect(node.available == 1)
    }

    @Test("a heartbeat taken after the change that arrives before the head's own adjustment is not counted twice")
    func heartbeatBeforeAdjustment() throws {
        var node = try OneNode()
        // The node reserved 2 CPUs (epoch 1) and its heartbeat says so before the prepare reply is handled.
        node.beat(1, cpu: 0, epoch: 1)
        node.adjust(cpu: 2, releasing: false, epoch: 1)
        #expect(node.available == 0)
    }
}
