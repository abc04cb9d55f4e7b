#if canImport(Glibc)
import Glibc
#endif
import Foundation
import StarlingCore
import StarlingWire

/// The node's link to the head: registration, heartbeats carrying its available resources,
/// and the cluster view it schedules and spills with.
extension NodeManager {
    func joinCluster(at headAddress: Address) async throws {
        let head = try await RPCClient.connect(to: headAddress, token: token, name: "node \(nodeID.short)")
        self.head = head
        var info = NodeInfo()
        info.nodeId = nodeID.bytes
        info.address = ProcessAddress(url: advertisedAddress?.description ?? "", nodeId: nodeID.bytes)
        info.hostname = ProcessInfo.processInfo.hostName
        info.ipAddress = advertisedAddress?.host ?? ""
        info.totalResources = settings.resources.quantities
        info.labels = settings.labels
        info.isHead = settings.isHead
        info.startTimeUnixMs = Int64(Date().timeIntervalSince1970 * 1000)
        info.sessionDir = settings.sessionDir
        info.pid = getpid()
        var request = RegisterNodeRequest()
        request.node = info
        let reply = try await head.call(HeadRPC.registerNode, request, timeout: .seconds(10))
        updateView(reply.clusterView, version: reply.clusterViewVersion)
        let interval = Duration.milliseconds(Int(max(reply.heartbeatIntervalMs, 10)))
        statsEvery = max(1, UInt64(1000 / max(reply.heartbeatIntervalMs, 10)))
        let timeout = Duration.milliseconds(Int(max(reply.nodeTimeoutMs, 100)))
        heartbeats = Task { [weak self] in
            var sequence: UInt64 = 0
            var lastReply = ContinuousClock.now
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                guard let self else { return }
                sequence += 1
                switch await self.heartbeat(sequence: sequence, head: head) {
                case .ok: lastReply = .now
                case let .dead(reason): await self.fail(reason); return
                case .unreachable:
                    if ContinuousClock.now - lastReply > timeout {
                        await self.fail("lost the head at \(headAddress) (no reply for \(timeout))")
                        return
                    }
                }
            }
        }
    }

    enum HeartbeatOutcome { case ok, dead(String), unreachable }

    func heartbeat(sequence: UInt64, head: RPCClient) async -> HeartbeatOutcome {
        var request = HeartbeatRequest()
        request.nodeId = nodeID.bytes
        request.sequence = sequence
        request.resources = resourceReport()
        // Statistics travel about once a second.
        if sequence % statsEvery == 1 % statsEvery { request.stats = statistics() }
        do {
            let reply = try await head.call(HealthMetricsRPC.heartbeat, request, timeout: .seconds(2))
            if reply.status?.code == .nodeDied { return .dead(reply.status?.message ?? "declared dead by the head") }
            if reply.clusterViewVersion != viewVersion {
                var viewRequest = GetClusterViewRequest()
                viewRequest.knownVersion = viewVersion
                let view = try await head.call(HeadRPC.getClusterView, viewRequest, timeout: .seconds(2))
                updateView(view.nodes, version: view.version)
            }
            return .ok
        } catch let WireError.remote(_, _, code, message) where code == .nodeDied {
            return .dead(message)
        } catch {
            return .unreachable
        }
    }

    func resourceReport() -> NodeResources {
        var report = NodeResources()
        report.nodeId = nodeID.bytes
        report.address = ProcessAddress(url: advertisedAddress?.description ?? "", nodeId: nodeID.bytes)
        report.total = settings.resources.quantities
        report.available = available.quantities
        report.labels = settings.labels
        report.queuedLeases = UInt32(max(0, queuedLeases))
        report.objectStoreUsed = store.used
        report.objectStoreCapacity = store.capacity
        report.draining = stopping
        report.bundleEpoch = bundleEpoch
        return report
    }

    /// This node's statistics for the head's health service.
    func statistics() -> NodeStats {
        let host = hostStats.sample()
        var stats = NodeStats()
        stats.nodeId = nodeID.bytes
        stats.timeUnixMs = Int64(Date().timeIntervalSince1970 * 1000)
        stats.cpuPercent = host.cpuPercent
        stats.cpuCount = UInt32(ProcessInfo.processInfo.activeProcessorCount)
        stats.loadAverage1m = host.loadAverage
        stats.memoryTotalBytes = host.memoryTotal
        stats.memoryUsedBytes = host.memoryUsed
        stats.nodeRssBytes = ProcessTable.residentBytes(getpid())
        stats.workersRssBytes = workers.values.reduce(0) { $0 + ProcessTable.residentBytes($1.pid) }
        let storeStats = store.stats(node: nodeID)
        stats.objectStoreCapacity = storeStats.capacity
        stats.objectStoreUsed = storeStats.used
        stats.objectStoreSpilled = storeStats.spilledBytes
        stats.numObjects = storeStats.numObjects
        stats.workersTotal = UInt32(workers.count)
        stats.workersIdle = UInt32(idle.count)
        stats.numActors = UInt32(leases.values.filter { !$0.actor.isEmpty }.count)
        stats.tasksRunning = UInt32(leases.values.filter { $0.actor.isEmpty }.count)
        stats.tasksQueued = UInt32(max(0, queuedLeases))
        stats.resourcesTotal = settings.resources.quantities
        stats.resourcesUsed = (settings.resources - available).quantities
        return stats
    }

    /// Asks the head for the cluster view now rather than at the next heartbeat. False when
    /// this node has no head or it did not answer.
    func refreshClusterView() async -> Bool {
        guard let head else { return false }
        var request = GetClusterViewRequest()
        request.knownVersion = viewVersion
        guard let view = try? await head.call(HeadRPC.getClusterView, request, timeout: .seconds(2)) else { return false }
        updateView(view.nodes, version: view.version)
        return true
    }

    func updateView(_ nodes: [NodeResources], version: UInt64) {
        guard version >= viewVersion else { return }
        viewVersion = version
        var view: [UniqueID: NodeResources] = [:]
        for node in nodes where node.nodeId.count == 16 { view[UniqueID(bytes: node.nodeId)] = node }
        if view.count != clusterView.count {
            log.info("node \(nodeID.short) sees \(view.count) live nodes")
        }
        // Connections to nodes that left would redial them for ever.
        for (id, node) in clusterView where view[id] == nil {
            if let url = node.address?.url {
                peers.drop(url)
                chunkPeers.drop(url)
            }
        }
        clusterView = view
        // Waiting lease requests may now fit elsewhere (or became infeasible): decide again.
        wakeWaiters()
    }
}
