import StarlingCore
import StarlingNode
import StarlingWire

/// The head's placement groups: bundles of resources reserved across nodes (two-phase:
/// prepare on every node, then commit; a failed prepare releases the others and retries).
struct PlacementGroupDirectory {
    var entries: [UniqueID: PlacementGroupInfo] = [:]
    var names: [String: UniqueID] = [:]
    /// Groups with a placement under way, and groups with a background loop retrying one:
    /// at most one of each per group (two would reserve the same bundles twice).
    var placing: Set<UniqueID> = []
    var retrying: Set<UniqueID> = []
}

extension Head {
    func createPlacementGroup(_ request: CreatePlacementGroupRequest) async throws -> CreatePlacementGroupReply {
        guard var spec = request.spec else { throw RPCFailure(.invalidArgument, "CreatePlacementGroup without a spec") }
        guard spec.placementGroupId.count == 16 else { throw RPCFailure(.invalidArgument, "placement_group_id must be 16 bytes") }
        let id = UniqueID(bytes: spec.placementGroupId)
        var reply = CreatePlacementGroupReply()
        if let existing = groups.entries[id] {
            reply.group = existing
            return reply
        }
        if !spec.name.isEmpty, let holder = groups.names["\(spec.namespace)/\(spec.name)"], groups.entries[holder]?.state != .removed {
            reply.status = Status(code: .alreadyExists, message: "a placement group named \"\(spec.name)\" already exists in namespace \"\(spec.namespace)\"")
            reply.group = groups.entries[holder]
            return reply
        }
        for index in spec.bundles.indices { spec.bundles[index].index = UInt32(index) }
        for bundle in spec.bundles {
            let negative = ResourceSet(bundle.resources).negativeNames
            if !negative.isEmpty { throw RPCFailure(.invalidArgument, "bundle \(bundle.index) asks for negative amounts of \(negative.joined(separator: ", "))") }
        }
        var info = PlacementGroupInfo()
        info.spec = spec
        info.state = .pending
        info.bundles = spec.bundles
        info.createTimeUnixMs = Head.unixMs()
        groups.entries[id] = info
        if !spec.name.isEmpty { groups.names["\(spec.namespace)/\(spec.name)"] = id }
        await placeGroup(id)
        keepPlacing(id)
        reply.group = await waitForGroup(id, upTo: .milliseconds(Int(min(request.waitMs, 60_000))))
        if reply.group?.state == .infeasible {
            reply.status = Status(code: .infeasible, message: reply.group?.reason ?? "")
        }
        return reply
    }

    /// Whether the group still waits for (some of) its bundles to be placed.
    func groupWaiting(_ id: UniqueID) -> Bool { [.pending, .rescheduling].contains(groups.entries[id]?.state) }

    /// Keeps trying in the background as resources free up or nodes join.
    private func keepPlacing(_ id: UniqueID) {
        guard groupWaiting(id), groups.retrying.insert(id).inserted else { return }
        Task { [weak self] in
            while let self, await self.groupWaiting(id) {
                try? await Task.sleep(for: .milliseconds(100))
                await self.placeGroup(id)
            }
            await self?.stoppedRetrying(id)
        }
    }

    private func stoppedRetrying(_ id: UniqueID) {
        groups.retrying.remove(id)
        // Lost more bundles between the loop's last check and now: go on.
        keepPlacing(id)
    }

    /// A node died: the bundles it held are placed again elsewhere (the group is RESCHEDULING
    /// meanwhile; its other bundles, and what runs in them, stay where they are). Actors of the
    /// group are restarted once their bundle has a node again.
    func groupsLost(onNode node: UniqueID, reason: String) {
        for (id, info) in groups.entries where info.state == .created || info.state == .rescheduling {
            let lost = info.bundles.indices.filter { info.bundles[$0].nodeId == node.bytes }
            guard !lost.isEmpty else { continue }
            for index in lost { groups.entries[id]?.bundles[index].nodeId = [] }
            groups.entries[id]?.state = .rescheduling
            groups.entries[id]?.reason = "rescheduling bundle(s) \(lost.map(String.init).joined(separator: ", ")): node \(node.short) died (\(reason))"
            log.warning("placement group \(id.short): \(groups.entries[id]?.reason ?? "")")
            record(.message, .warning, "placement group \(id.short) \(groups.entries[id]?.reason ?? "")", node: node,
                   labels: ["placement_group_id": id.hex])
            keepPlacing(id)
        }
    }

    /// The node of bundle `index` (-1: the first), waiting while the group places it again
    /// after its node died; nil when the group is not placed (pending, removed, unknown), has
    /// no such bundle, or `limit` passed.
    func awaitBundleNode(_ group: [UInt8], index: Int32, upTo limit: Duration) async -> UniqueID? {
        let id = UniqueID(bytes: group)
        let deadline = ContinuousClock.now + limit
        while bundleNode(group, index: index) == nil, groups.entries[id]?.state == .rescheduling, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        return bundleNode(group, index: index)
    }

    func getPlacementGroup(_ request: GetPlacementGroupRequest) async throws -> GetPlacementGroupReply {
        let id: UniqueID
        if !request.placementGroupId.isEmpty {
            id = UniqueID(bytes: request.placementGroupId)
        } else if let named = groups.names["\(request.namespace)/\(request.name)"] {
            id = named
        } else {
            throw RPCFailure(.notFound, "no placement group named \"\(request.name)\" in namespace \"\(request.namespace)\"")
        }
        guard groups.entries[id] != nil else { throw RPCFailure(.notFound, "no placement group \(id.short)") }
        var reply = GetPlacementGroupReply()
        reply.group = await waitForGroup(id, upTo: .milliseconds(Int(min(request.waitMs, 60_000))))
        return reply
    }

    func removePlacementGroup(_ request: RemovePlacementGroupRequest) async -> RemovePlacementGroupReply {
        await removeGroup(UniqueID(bytes: request.placementGroupId))
        return RemovePlacementGroupReply()
    }

    func removeGroup(_ id: UniqueID) async {
        guard let info = groups.entries[id], info.state != .removed else { return }
        groups.entries[id]?.state = .removed
        if let spec = info.spec, !spec.name.isEmpty { groups.names["\(spec.namespace)/\(spec.name)"] = nil }
        await release(id, onNodes: Set(info.bundles.map(\.nodeId).filter { !$0.isEmpty }))
        // Its actors' workers were stopped with the bundles: they are over, not to be restarted.
        await endActors(inGroup: id)
        log.info("placement group \(id.short) removed")
    }

    /// Non-detached placement groups of a job end with it.
    func endGroups(ofJob job: UniqueID) async {
        for (id, info) in groups.entries where info.spec?.jobId == job.bytes && info.spec?.detached == false && info.state != .removed {
            await removeGroup(id)
        }
    }

    private func waitForGroup(_ id: UniqueID, upTo limit: Duration) async -> PlacementGroupInfo? {
        let deadline = ContinuousClock.now + limit
        while groupWaiting(id), ContinuousClock.now < deadline, !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(10))
        }
        return groups.entries[id]
    }

    /// Decides where the bundles without a node go and reserves them (prepare everywhere, then
    /// commit): all of a pending group's, or those a rescheduling group lost with a node.
    private func placeGroup(_ id: UniqueID) async {
        guard let info = groups.entries[id], info.state == .pending || info.state == .rescheduling, let spec = info.spec,
              groups.placing.insert(id).inserted else { return }
        defer { groups.placing.remove(id) }
        let expected = info.state
        let missing = info.bundles.indices.filter { info.bundles[$0].nodeId.isEmpty }
        guard !missing.isEmpty else {
            groups.entries[id]?.state = .created
            return
        }
        let strategy: PlacementGroupStrategy
        switch spec.strategy {
        case .spread: strategy = .spread
        case .strictPack: strategy = .strictPack
        case .strictSpread: strategy = .strictSpread
        default: strategy = .pack
        }
        // The bundles still placed bind the rest: strict spread avoids their nodes, strict
        // pack needs theirs.
        let holding = Set(info.bundles.map(\.nodeId).filter { !$0.isEmpty })
        let views = nodes.alive
            .filter { node in
                switch strategy {
                case .strictSpread: !holding.contains(node.info.nodeId)
                case .strictPack: holding.isEmpty || holding.contains(node.info.nodeId)
                default: true
                }
            }
            .map { NodeView(id: UniqueID(bytes: $0.info.nodeId).hex, total: ResourceSet($0.resources.total),
                            available: ResourceSet($0.resources.available)) }
        switch BundlePlacement.place(missing.map { ResourceSet(info.bundles[$0].resources) }, strategy: strategy, nodes: views) {
        case let .infeasible(reason):
            if expected == .pending {
                groups.entries[id]?.state = .infeasible
                groups.entries[id]?.reason = reason
            } else {
                // Its bundles fitted before: a node may join that fits them again.
                groups.entries[id]?.reason = "rescheduling: \(reason)"
            }
        case let .wait(reason):
            groups.entries[id]?.reason = "\(expected == .pending ? "pending" : "rescheduling"): \(reason)"
        case let .place(chosen):
            var byNode: [String: [PlacementBundle]] = [:]
            for (position, node) in chosen.enumerated() { byNode[node, default: []].append(info.bundles[missing[position]]) }
            let placing = missing.map { UInt32(info.bundles[$0].index) }
            var prepared: Set<[UInt8]> = []
            // Nodes asked, whatever they answered: a prepare whose reply was lost may still
            // have reserved, and releasing is harmless where nothing was.
            var asked: Set<[UInt8]> = []
            for (node, bundles) in byNode {
                guard let nodeID = UniqueID(hex: node), let url = nodes.info(nodeID)?.address?.url,
                      let client = try? await nodeClient(url: url) else { break }
                var request = PrepareBundlesRequest()
                request.bundles = bundles.map { BundleReservation(placementGroupId: spec.placementGroupId, bundleIndex: $0.index, resources: $0.resources) }
                asked.insert(nodeID.bytes)
                do {
                    let reply = try await client.call(NodeManagerRPC.prepareBundles, request, timeout: .seconds(5))
                    prepared.insert(nodeID.bytes)
                    nodes.adjustAvailable(nodeID, by: bundles.reduce(ResourceSet()) { $0 + ResourceSet($1.resources) }, releasing: false,
                                          epoch: reply.bundleEpoch)
                } catch {
                    break
                }
            }
            guard prepared.count == byNode.count, groups.entries[id]?.state == expected else {
                // A node's view was stale (or the group was removed meanwhile): undo, retry.
                await release(id, onNodes: asked, indexes: placing)
                if groups.entries[id]?.state == expected {
                    groups.entries[id]?.reason = "\(expected == .pending ? "pending" : "rescheduling"): a node had less free than the head's view said; retrying"
                }
                return
            }
            for nodeBytes in prepared {
                guard let url = nodes.info(UniqueID(bytes: nodeBytes))?.address?.url, let client = try? await nodeClient(url: url) else { continue }
                var commit = CommitBundlesRequest()
                commit.placementGroupId = spec.placementGroupId
                _ = try? await client.call(NodeManagerRPC.commitBundles, commit, timeout: .seconds(5))
            }
            guard groups.entries[id]?.state == expected else {
                // Removed while it was being committed: nothing may stay reserved.
                await release(id, onNodes: prepared, indexes: placing)
                return
            }
            for (position, node) in chosen.enumerated() { groups.entries[id]?.bundles[missing[position]].nodeId = UniqueID(hex: node)?.bytes ?? [] }
            // A node may have died while this placement waited on the nodes: its bundles (the
            // ones placed now, or others the death already cleared) are placed again.
            var unplaced: [Int] = []
            for (index, bundle) in (groups.entries[id]?.bundles ?? []).enumerated()
            where bundle.nodeId.isEmpty || nodes.info(UniqueID(bytes: bundle.nodeId))?.state != .alive {
                groups.entries[id]?.bundles[index].nodeId = []
                unplaced.append(index)
            }
            guard unplaced.isEmpty else {
                groups.entries[id]?.reason = "\(expected == .pending ? "pending" : "rescheduling"): bundle(s) \(unplaced.map(String.init).joined(separator: ", ")) lost their node while being placed"
                return
            }
            groups.entries[id]?.state = .created
            groups.entries[id]?.reason = ""
            if expected == .rescheduling {
                log.info("placement group \(id.short): bundle(s) \(placing.map(String.init).joined(separator: ", ")) placed again")
                record(.message, .info, "placement group \(id.short) rescheduled: bundle(s) \(placing.map(String.init).joined(separator: ", ")) placed again",
                       labels: ["placement_group_id": id.hex])
            } else {
                log.info("placement group \(id.short) placed on \(Set(chosen).count) node(s)")
            }
        }
    }

    /// Releases the group's bundles on `nodeIDs` (only `indexes` of them when given).
    private func release(_ id: UniqueID, onNodes nodeIDs: Set<[UInt8]>, indexes: [UInt32] = []) async {
        let bundles = groups.entries[id]?.bundles ?? []
        for nodeBytes in nodeIDs {
            guard let url = nodes.info(UniqueID(bytes: nodeBytes))?.address?.url, let client = try? await nodeClient(url: url) else { continue }
            var request = ReleaseBundlesRequest()
            request.placementGroupId = id.bytes
            request.bundleIndexes = indexes
            if let reply = try? await client.call(NodeManagerRPC.releaseBundles, request, timeout: .seconds(5)) {
                // What this node held of them: placed bundles the head knows of (bundles just
                // prepared were never credited as placed).
                let freed = bundles.filter { $0.nodeId == nodeBytes && (indexes.isEmpty || indexes.contains($0.index)) }
                nodes.adjustAvailable(UniqueID(bytes: nodeBytes), by: freed.reduce(ResourceSet()) { $0 + ResourceSet($1.resources) }, releasing: true,
                                      epoch: reply.bundleEpoch)
            }
        }
    }

    /// The node holding bundle `index` of a group (for placing an actor into it): nil unless
    /// the group is placed, or rescheduling others of its bundles.
    func bundleNode(_ group: [UInt8], index: Int32) -> UniqueID? {
        guard let info = groups.entries[UniqueID(bytes: group)], info.state == .created || info.state == .rescheduling else { return nil }
        let bundle = index >= 0 ? info.bundles.first { Int32($0.index) == index } : info.bundles.first
        guard let bundle, !bundle.nodeId.isEmpty else { return nil }
        return UniqueID(bytes: bundle.nodeId)
    }
}
