import Testing
@testable import StarlingCore

@Suite("Scheduling policy")
struct SchedulingPolicyTests {
    let policy = SchedulingPolicy()

    func node(_ id: String, cpu: Double, used: Double = 0, extra: [String: Double] = [:]) -> NodeView {
        let total = ResourceSet(["CPU": cpu].merging(extra) { a, _ in a })
        return NodeView(id: id, total: total, available: total - ResourceSet(["CPU": used]))
    }

    @Test("hybrid packs the local node until half full, then spreads to the least utilized")
    func hybridPacksThenSpreads() {
        let ask: ResourceSet = ["CPU": 1]
        var nodes = [node("a", cpu: 4), node("b", cpu: 4)]
        #expect(policy.place(ask, strategy: .hybrid, nodes: nodes, localNodeID: "a") == .place(nodeID: "a"))
        nodes[0] = node("a", cpu: 4, used: 1)
        #expect(policy.place(ask, strategy: .hybrid, nodes: nodes, localNodeID: "a") == .place(nodeID: "a"))
        nodes[0] = node("a", cpu: 4, used: 2) // a third task would take "a" to 75%
        #expect(policy.place(ask, strategy: .hybrid, nodes: nodes, localNodeID: "a") == .place(nodeID: "b"))
        nodes[1] = node("b", cpu: 4, used: 3)
        #expect(policy.place(ask, strategy: .hybrid, nodes: nodes, localNodeID: "a") == .place(nodeID: "a"))
    }

    @Test("spread places round-robin over nodes with room")
    func spread() {
        let nodes = [node("a", cpu: 4), node("b", cpu: 4), node("c", cpu: 4, used: 4)]
        let picks = (0..<4).map { policy.place(["CPU": 1], strategy: .spread, nodes: nodes, localNodeID: "a", roundRobin: $0) }
        #expect(picks == [.place(nodeID: "a"), .place(nodeID: "b"), .place(nodeID: "a"), .place(nodeID: "b")])
    }

    @Test("a demand in short supply waits at a feasible node")
    func waitsWhenBusy() {
        let nodes = [node("a", cpu: 2, used: 2), node("b", cpu: 2, used: 2)]
        #expect(policy.place(["CPU": 1], strategy: .hybrid, nodes: nodes, localNodeID: "a") == .wait(nodeID: "a"))
    }

    @Test("an infeasible demand names what was asked and the largest node")
    func infeasible() {
        let nodes = [node("a", cpu: 2), node("b", cpu: 8, extra: ["memory": Double(1 << 30)])]
        guard case let .infeasible(reason) = policy.place(["CPU": 16], strategy: .hybrid, nodes: nodes, localNodeID: "a", taskName: "Train") else {
            Issue.record("expected infeasible")
            return
        }
        #expect(reason.contains("Train needs {CPU: 16}"))
        #expect(reason.contains("largest node (b)"))
        #expect(reason.contains("CPU: 8"))
        #expect(reason.contains("memory: 1.0 GiB"))
        guard case .infeasible = policy.place(["GPU": 1], strategy: .spread, nodes: nodes, localNodeID: "a") else {
            Issue.record("a resource no node has is infeasible")
            return
        }
    }

    @Test("dead nodes are never chosen")
    func deadNodes() {
        var dead = node("b", cpu: 8)
        dead.alive = false
        let nodes = [node("a", cpu: 1, used: 1), dead]
        #expect(policy.place(["CPU": 1], strategy: .hybrid, nodes: nodes, localNodeID: "a") == .wait(nodeID: "a"))
        guard case .infeasible = policy.place(["CPU": 4], strategy: .hybrid, nodes: nodes, localNodeID: "a") else {
            Issue.record("only a dead node could fit")
            return
        }
    }

    @Test("node affinity: hard fails for a missing node, soft falls back")
    func nodeAffinity() {
        let nodes = [node("a", cpu: 2), node("b", cpu: 2)]
        #expect(policy.place(["CPU": 1], strategy: .nodeAffinity(nodeID: "b", soft: false), nodes: nodes, localNodeID: "a") == .place(nodeID: "b"))
        guard case let .infeasible(reason) = policy.place(["CPU": 1], strategy: .nodeAffinity(nodeID: "z", soft: false), nodes: nodes, localNodeID: "a") else {
            Issue.record("hard affinity to a missing node must fail")
            return
        }
        #expect(reason.contains("not alive"))
        #expect(policy.place(["CPU": 1], strategy: .nodeAffinity(nodeID: "z", soft: true), nodes: nodes, localNodeID: "a") == .place(nodeID: "a"))
    }

    @Test("fractional resources add up without float drift")
    func fractional() {
        let available: ResourceSet = ["GPU": 0.3]
        #expect(available.fits(["GPU": 0.1] + ["GPU": 0.2]))
        #expect((available - ["GPU": 0.1] - ["GPU": 0.2]).isEmpty)
    }
}
