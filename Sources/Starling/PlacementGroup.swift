import StarlingCore
import StarlingWire

/// Bundles of resources reserved together across nodes, for gangs of tasks and actors
/// (training workers, Tune trials). Create with `Cluster.createPlacementGroup`, wait with
/// `Cluster.ready`, schedule into it with `Scheduling.placementGroup`, free with `Cluster.remove`.
/// ```swift
/// let group = try await cluster.ready(cluster.createPlacementGroup([["CPU": 1], ["CPU": 1]], strategy: .strictSpread))
/// let ref = try await cluster.submit(Train.self, shard, options: .init(scheduling: .placementGroup(group, bundle: 0)))
/// try await cluster.remove(group)
/// ```
public struct PlacementGroup: Sendable, Hashable, Codable, CustomStringConvertible {
    /// Hex id.
    public let id: String
    public let strategy: PlacementGroupStrategy
    /// Each bundle's resources and, once placed, its node.
    public let bundles: [Bundle]

    public struct Bundle: Sendable, Hashable, Codable {
        public let index: Int
        public let resources: [String: Double]
        /// Hex id of the node holding it (empty until the group is placed).
        public let nodeID: String
        /// That node's address.
        let nodeURL: String
    }

    /// True once every bundle has its node.
    public var isReady: Bool { !bundles.isEmpty && bundles.allSatisfy { !$0.nodeURL.isEmpty } }

    public static func == (a: PlacementGroup, b: PlacementGroup) -> Bool { a.id == b.id && a.bundles == b.bundles }
    public func hash(into hasher: inout Hasher) { hasher.combine(id) }
    public var description: String { "placement group \(id.prefix(8))" }
}

/// How a placement group's bundles spread over nodes: `pack`, `spread`, `strictPack`,
/// `strictSpread` (defined with the scheduler in StarlingCore).
public typealias PlacementGroupStrategy = StarlingCore.PlacementGroupStrategy

extension PlacementGroupStrategy {
    var wire: PlacementStrategy {
        switch self {
        case .pack: return .pack
        case .spread: return .spread
        case .strictPack: return .strictPack
        case .strictSpread: return .strictSpread
        }
    }
}

extension Cluster {
    /// Registers a placement group; the head places it now if it can, else as soon as resources
    /// free up. Throws `StarlingError.infeasible` when no set of nodes could ever hold it.
    public func createPlacementGroup(_ bundles: [[String: Double]], strategy: PlacementGroupStrategy = .pack,
                                     name: String? = nil) async throws -> PlacementGroup {
        var spec = PlacementGroupSpec()
        spec.placementGroupId = UniqueID.random().bytes
        spec.jobId = jobID
        spec.name = name ?? ""
        spec.namespace = "default"
        spec.strategy = strategy.wire
        spec.bundles = bundles.enumerated().map { PlacementBundle(index: UInt32($0.offset), resources: $0.element) }
        var request = CreatePlacementGroupRequest()
        request.spec = spec
        let reply: CreatePlacementGroupReply
        do {
            reply = try await actorSystem.head().call(HeadRPC.createPlacementGroup, request, timeout: .seconds(60), returningFailures: true)
        } catch {
            throw StarlingError.cluster("creating a placement group failed: \(error)")
        }
        switch reply.status?.code ?? .ok {
        case .ok: break
        case .infeasible: throw StarlingError.infeasible(task: "placement group \(name ?? UniqueID(bytes: spec.placementGroupId).short)", reason: reply.status?.message ?? "")
        default: throw StarlingError.cluster(reply.status?.message ?? "creating a placement group failed")
        }
        return try await actorSystem.placementGroupHandle(reply.group, strategy: strategy)
    }

    /// Waits until `group` is placed (at most `timeout`) and returns it with its nodes, as the
    /// head knows them now: a group that lost bundles with a node is placed again (it is
    /// rescheduling meanwhile), and the handle this returns names their new nodes.
    /// Throws `StarlingError.placementGroupNotReady` with the reason it is still pending.
    public func ready(_ group: PlacementGroup, timeout: Duration? = nil) async throws -> PlacementGroup {
        try await actorSystem.placementGroup(group, timeout: timeout)
    }

    /// Frees the group's bundles; tasks and actors running in them are stopped.
    public func remove(_ group: PlacementGroup) async throws {
        var request = RemovePlacementGroupRequest()
        request.placementGroupId = UniqueID(hex: group.id)?.bytes ?? []
        _ = try await actorSystem.head().call(HeadRPC.removePlacementGroup, request)
    }
}

extension StarlingActorSystem {
    /// `Cluster.ready`: the group as the head knows it, once placed.
    func placementGroup(_ group: PlacementGroup, timeout: Duration?) async throws -> PlacementGroup {
        let deadline = timeout.map { ContinuousClock.now + $0 }
        while true {
            var request = GetPlacementGroupRequest()
            request.placementGroupId = UniqueID(hex: group.id)?.bytes ?? []
            let remaining = deadline.map { max(.zero, $0 - .now) } ?? .seconds(10)
            request.waitMs = UInt32(min(10_000, max(0, remaining.components.seconds * 1000 + remaining.components.attoseconds / 1_000_000_000_000_000)))
            let info: PlacementGroupInfo?
            do {
                info = try await head().call(HeadRPC.getPlacementGroup, request, timeout: .seconds(30)).group
            } catch {
                throw StarlingError.cluster("asking for \(group) failed: \(error)")
            }
            switch info?.state ?? .unspecified {
            case .created: return try await placementGroupHandle(info, strategy: group.strategy)
            case .removed: throw StarlingError.placementGroupNotReady(group: group.id, reason: "it was removed")
            case .infeasible: throw StarlingError.infeasible(task: "\(group)", reason: info?.reason ?? "")
            default:
                if let deadline, ContinuousClock.now >= deadline {
                    throw StarlingError.placementGroupNotReady(group: group.id, reason: info?.reason ?? "pending")
                }
            }
        }
    }

    /// The handle of a placed group as the head describes it, with its nodes' addresses.
    func placementGroupHandle(_ info: PlacementGroupInfo?, strategy: PlacementGroupStrategy) async throws -> PlacementGroup {
        guard let info, let spec = info.spec else { throw StarlingError.cluster("the head described no placement group") }
        var urls: [[UInt8]: String] = [:]
        if info.state == .created {
            let nodes = try await head().call(HeadRPC.listNodes, ListNodesRequest()).nodes
            for node in nodes { urls[node.nodeId] = node.address?.url ?? "" }
        }
        let bundles = info.bundles.map { bundle in
            PlacementGroup.Bundle(index: Int(bundle.index), resources: bundle.resources,
                                  nodeID: bundle.nodeId.isEmpty ? "" : UniqueID(bytes: bundle.nodeId).hex,
                                  nodeURL: info.state == .created ? urls[bundle.nodeId] ?? "" : "")
        }
        return PlacementGroup(id: UniqueID(bytes: spec.placementGroupId).hex, strategy: strategy, bundles: bundles)
    }
}
