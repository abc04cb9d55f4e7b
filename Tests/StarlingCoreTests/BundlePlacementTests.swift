import StarlingCore
import Testing

@Suite("Placement-group bundle placement")
struct BundlePlacementTests {
    let nodes = [NodeView(id: "a", total: ["CPU": 4], available: ["CPU": 4]),
                 NodeView(id: "b", total: ["CPU": 4], available: ["CPU": 4]),
                 NodeView(id: "c", total: ["CPU": 2], available: ["CPU": 1])]

    @Test("strictPack puts every bundle on one node, or waits, or is infeasible")
    func strictPack() {
        #expect(BundlePlacement.place([["CPU": 2], ["CPU": 2]], strategy: .strictPack, nodes: nodes) == .place(["a", "a"]))
        var busy = nodes
        busy[0].available = ["CPU": 1]
        busy[1].available = ["CPU": 3]
        guard case .wait = BundlePlacement.place([["CPU": 2], ["CPU": 2]], strategy: .strictPack, nodes: busy) else {
            Issue.record("expected a wait"); return
        }
        guard case let .infeasible(reason) = BundlePlacement.place([["CPU": 3], ["CPU": 2]], strategy: .strictPack, nodes: nodes) else {
            Issue.record("expected infeasible"); return
        }
        #expect(reason.contains("strictPack needs {CPU: 5} on one node"))
    }

    @Test("pack fills one node before the next")
    func pack() {
        #expect(BundlePlacement.place([["CPU": 2], ["CPU": 2], ["CPU": 2]], strategy: .pack, nodes: nodes) == .place(["a", "a", "b"]))
    }

    @Test("strictSpread uses distinct nodes; spread spreads but may share")
    func spreads() {
        guard case let .place(chosen) = BundlePlacement.place([["CPU": 1], ["CPU": 1], ["CPU": 1]], strategy: .strictSpread, nodes: nodes) else {
            Issue.record("expected a placement"); return
        }
        #expect(Set(chosen).count == 3)
        guard case let .place(shared) = BundlePlacement.place([["CPU": 1], ["CPU": 1], ["CPU": 1], ["CPU": 1]], strategy: .spread, nodes: nodes) else {
            Issue.record("expected a placement"); return
        }
        #expect(Set(shared).count == 3)
        guard case let .infeasible(reason) = BundlePlacement.place(Array(repeating: ["CPU": 1], count: 4), strategy: .strictSpread, nodes: nodes) else {
            Issue.record("expected infeasible"); return
        }
        #expect(reason == "strictSpread needs 4 different nodes but the cluster has 3 live nodes")
    }

    @Test("a bundle no node could ever hold is infeasible, named")
    func tooBig() {
        #expect(BundlePlacement.place([["CPU": 1], ["GPU": 1]], strategy: .pack, nodes: nodes)
                == .infeasible(reason: "bundle 1 needs {GPU: 1} but no live node has that much in all"))
    }
}
