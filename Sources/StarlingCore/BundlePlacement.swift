/// Where the bundles of a placement group go: the pure decision, no sockets (tested on its own).
public enum PlacementGroupStrategy: String, Sendable, Hashable, Codable {
    /// As few nodes as possible, others if needed.
    case pack
    /// As many nodes as possible, shared if needed.
    case spread
    /// All bundles on one node, or not at all.
    case strictPack
    /// Every bundle on a different node, or not at all.
    case strictSpread
}

public enum BundlePlacement {
    public enum Decision: Sendable, Equatable {
        /// Node id per bundle, in bundle order.
        case place([String])
        /// It fits the cluster's totals, not what is free now.
        case wait(reason: String)
        /// No set of live nodes could ever hold it.
        case infeasible(reason: String)
    }

    public static func place(_ bundles: [ResourceSet], strategy: PlacementGroupStrategy, nodes: [NodeView]) -> Decision {
        let live = nodes.filter(\.alive).sorted { $0.id < $1.id }
        guard !bundles.isEmpty else { return .infeasible(reason: "a placement group needs at least one bundle") }
        if let reason = infeasibility(bundles, strategy: strategy, live: live) { return .infeasible(reason: reason) }
        var free = Dictionary(uniqueKeysWithValues: live.map { ($0.id, $0.available) })
        var chosen = [String](repeating: "", count: bundles.count)
        switch strategy {
        case .strictPack:
            let total = bundles.reduce(ResourceSet()) { $0 + $1 }
            guard let node = live.first(where: { free[$0.id]!.fits(total) }) else {
                return .wait(reason: "no node has \(total) free for all bundles together")
            }
            return .place(Array(repeating: node.id, count: bundles.count))
        case .pack:
            // The node that takes the most bundles first, then the next.
            for index in bundles.indices {
                let used = Set(chosen.filter { !$0.isEmpty })
                let candidates = live.filter { free[$0.id]!.fits(bundles[index]) }
                guard let node = candidates.first(where: { used.contains($0.id) }) ?? candidates.max(by: { room(free[$0.id]!) < room(free[$1.id]!) }) else {
                    return .wait(reason: "no node has \(bundles[index]) free for bundle \(index)")
                }
                chosen[index] = node.id
                free[node.id] = free[node.id]! - bundles[index]
            }
        case .spread, .strictSpread:
            // Largest bundles first, each to the node holding fewest of this group's bundles.
            var count: [String: Int] = [:]
            for index in bundles.indices.sorted(by: { room(bundles[$0]) > room(bundles[$1]) }) {
                let candidates = live.filter { free[$0.id]!.fits(bundles[index]) && (strategy == .spread || count[$0.id, default: 0] == 0) }
                guard let node = candidates.min(by: { count[$0.id, default: 0] < count[$1.id, default: 0] }) else {
                    return .wait(reason: "no \(strategy == .strictSpread ? "unused " : "")node has \(bundles[index]) free for bundle \(index)")
                }
                chosen[index] = node.id
                count[node.id, default: 0] += 1
                free[node.id] = free[node.id]! - bundles[index]
            }
        }
        return .place(chosen)
    }

    private static func room(_ resources: ResourceSet) -> Double {
        resources.quantities.values.reduce(0, +)
    }

    private static func infeasibility(_ bundles: [ResourceSet], strategy: PlacementGroupStrategy, live: [NodeView]) -> String? {
        for (index, bundle) in bundles.enumerated() where !live.contains(where: { $0.total.fits(bundle) }) {
            return "bundle \(index) needs \(bundle) but no live node has that much in all"
        }
        switch strategy {
        case .strictPack:
            let total = bundles.reduce(ResourceSet()) { $0 + $1 }
            if !live.contains(where: { $0.total.fits(total) }) {
                return "strictPack needs \(total) on one node but no live node has that much in all"
            }
        case .strictSpread:
            if bundles.count > live.count {
                return "strictSpread needs \(bundles.count) different nodes but the cluster has \(live.count) live nodes"
            }
        case .pack, .spread:
            break
        }
        return nil
    }
}
