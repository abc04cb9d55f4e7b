/// Where a task or actor should run: the pure decision, no sockets (tested on its own).
///
/// Policies (as in Ray):
/// - `hybrid` (default): keep work on the local node while its utilization stays under
///   `spreadThreshold`, then prefer the least-utilized node that fits; pack, then spread.
/// - `spread`: round-robin across nodes with room.
/// - `nodeAffinity`: a given node; `soft` falls back to `hybrid` when it is gone or full.
public enum SchedulingStrategy: Sendable, Hashable {
    case hybrid
    case spread
    case nodeAffinity(nodeID: String, soft: Bool)
}

/// A node as the scheduler sees it.
public struct NodeView: Sendable, Hashable {
    public var id: String
    public var total: ResourceSet
    public var available: ResourceSet
    public var alive: Bool

    public init(id: String, total: ResourceSet, available: ResourceSet, alive: Bool = true) {
        self.id = id
        self.total = total
        self.available = available
        self.alive = alive
    }

    /// The highest fraction in use over the resources `demand` asks for (Ray's "critical
    /// resource utilization"); all resources when the demand is empty.
    func utilization(after demand: ResourceSet) -> Double {
        let names = demand.isEmpty ? Array(total.quantities.keys) : Array(demand.quantities.keys)
        var highest = 0.0
        for name in names where total[name] > 0 {
            highest = max(highest, (total[name] - available[name] + demand[name]) / total[name])
        }
        return highest
    }
}

/// The scheduler's answer.
public enum PlacementDecision: Sendable, Equatable {
    /// Run on this node now.
    case place(nodeID: String)
    /// Feasible, but no node has room now: wait (queue) at this node.
    case wait(nodeID: String)
    /// No live node could ever fit the demand.
    case infeasible(reason: String)
}

public struct SchedulingPolicy: Sendable {
    /// Utilization under which the hybrid policy keeps packing a node.
    public var spreadThreshold: Double = 0.5

    public init(spreadThreshold: Double = 0.5) {
        self.spreadThreshold = spreadThreshold
    }

    /// Chooses a node for `demand`. `localNodeID` is the node asked first (the caller's own);
    /// `roundRobin` is a counter the caller advances for `spread`.
    public func place(_ demand: ResourceSet, strategy: SchedulingStrategy, nodes: [NodeView],
                      localNodeID: String?, roundRobin: Int = 0, taskName: String = "task") -> PlacementDecision {
        let live = nodes.filter(\.alive)
        let feasible = live.filter { $0.total.fits(demand) }
        guard !feasible.isEmpty else {
            return .infeasible(reason: infeasibleReason(demand, live: live, taskName: taskName))
        }
        switch strategy {
        case let .nodeAffinity(nodeID, soft):
            if let node = feasible.first(where: { $0.id == nodeID }) {
                return node.available.fits(demand) ? .place(nodeID: node.id) : .wait(nodeID: node.id)
            }
            if !soft {
                let known = live.contains { $0.id == nodeID }
                return .infeasible(reason: known
                    ? "\(taskName) is pinned to node \(nodeID), which has \(live.first { $0.id == nodeID }!.total) in all, less than the \(demand) asked"
                    : "\(taskName) is pinned to node \(nodeID), which is not alive (hard node affinity; use soft: true to fall back)")
            }
            return hybrid(demand, feasible: feasible, localNodeID: localNodeID)
        case .spread:
            let withRoom = feasible.filter { $0.available.fits(demand) }.sorted { $0.id < $1.id }
            if withRoom.isEmpty { return .wait(nodeID: leastUtilized(feasible, demand).id) }
            return .place(nodeID: withRoom[roundRobin % withRoom.count].id)
        case .hybrid:
            return hybrid(demand, feasible: feasible, localNodeID: localNodeID)
        }
    }

    private func hybrid(_ demand: ResourceSet, feasible: [NodeView], localNodeID: String?) -> PlacementDecision {
        // Local node first, then the others in a stable order: packing is deterministic.
        let ordered = feasible.sorted { a, b in
            if a.id == localNodeID { return b.id != localNodeID }
            if b.id == localNodeID { return false }
            return a.id < b.id
        }
        let withRoom = ordered.filter { $0.available.fits(demand) }
        if let packed = withRoom.first(where: { $0.utilization(after: demand) <= spreadThreshold + ResourceSet.epsilon }) {
            return .place(nodeID: packed.id)
        }
        if !withRoom.isEmpty {
            return .place(nodeID: leastUtilized(withRoom, demand).id)
        }
        if let local = ordered.first, local.id == localNodeID { return .wait(nodeID: local.id) }
        return .wait(nodeID: leastUtilized(ordered, demand).id)
    }

    private func leastUtilized(_ nodes: [NodeView], _ demand: ResourceSet) -> NodeView {
        // `nodes` is never empty here; ties go to the first in order.
        var best = nodes[0]
        for node in nodes.dropFirst() where node.utilization(after: demand) < best.utilization(after: demand) {
            best = node
        }
        return best
    }

    private func infeasibleReason(_ demand: ResourceSet, live: [NodeView], taskName: String) -> String {
        guard !live.isEmpty else { return "\(taskName) needs \(demand) but the cluster has no live node" }
        let largest = live.max { a, b in
            demand.quantities.keys.reduce(0) { $0 + min(a.total[$1], demand[$1]) }
                < demand.quantities.keys.reduce(0) { $0 + min(b.total[$1], demand[$1]) }
        }!
        let missing = demand.quantities.keys.sorted().filter { largest.total[$0] + ResourceSet.epsilon < demand[$0] }
        return "\(taskName) needs \(demand) but no node can ever fit it: the largest node (\(largest.id)) has \(largest.total) (short of \(missing.joined(separator: ", "))); add a node with these resources or ask for less"
    }
}
