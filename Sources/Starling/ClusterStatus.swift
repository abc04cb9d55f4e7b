import Foundation
import StarlingCore
import StarlingWire

/// A summary of a running cluster for a terminal (`starling status`): nodes with resources
/// used of total, workers, actors, pending tasks, recent failures.
public struct ClusterStatus: Sendable, CustomStringConvertible {
    public struct Node: Sendable {
        public let id: String
        public let address: String
        public let isHead: Bool
        public let alive: Bool
        public let total: [String: Double]
        public let available: [String: Double]
        public let workers: Int
        public let idleWorkers: Int
        public let cpuPercent: Double
        public let memoryUsed: UInt64
        public let memoryTotal: UInt64
        public let storeUsed: UInt64
        public let storeCapacity: UInt64
        public let deathReason: String
    }

    public let nodes: [Node]
    public let actorsAlive: Int
    public let actorsDead: Int
    public let jobsRunning: Int
    public let pendingTasks: Int
    /// Tasks by state as their owners report them: "PENDING", "RUNNING", "FINISHED", "FAILED",
    /// "RETRIED" (finished, failed and retried count since each owner started).
    public let tasksByState: [String: Int]
    public let dashboardURL: String
    /// The latest failure events (node, worker, task, actor deaths; lost objects), oldest first.
    public let recentFailures: [String]

    /// Asks the head at `address` (`HOST:PORT`) with the token in `tokenFile`.
    public static func collect(address: String, tokenFile: String) async throws -> ClusterStatus {
        let head = try await HeadConnection.open(address: address, tokenFile: tokenFile, name: "status").head
        defer { head.close() }
        var listNodes = ListNodesRequest()
        listNodes.includeDead = true
        let nodeInfos = try await head.call(HeadRPC.listNodes, listNodes).nodes
        let view = try await head.call(HeadRPC.getClusterView, GetClusterViewRequest()).nodes
        let stats = try await head.call(HealthMetricsRPC.listNodeStats, ListNodeStatsRequest()).stats
        var listActors = ListActorsRequest()
        listActors.includeDead = true
        let actors = try await head.call(HeadRPC.listActors, listActors).actors
        let jobs = try await head.call(HeadRPC.listJobs, ListJobsRequest()).jobs
        let info = try await head.call(HeadRPC.getClusterInfo, GetClusterInfoRequest())
        var eventRequest = ListEventsRequest()
        eventRequest.kinds = [.nodeDied, .workerDied, .taskFailed, .actorDied, .objectLost]
        eventRequest.limit = 5
        let failures = try await head.call(HealthMetricsRPC.listEvents, eventRequest).events
        let tasks = try await head.call(HealthMetricsRPC.listTasks, ListTasksRequest()).countsByState.mapValues { Int($0) }
        let nodes = nodeInfos.map { node -> Node in
            let resources = view.first { $0.nodeId == node.nodeId }
            let latest = stats.last { $0.nodeId == node.nodeId }
            return Node(id: UniqueID(bytes: node.nodeId).hex, address: node.address?.url ?? "", isHead: node.isHead,
                        alive: node.state == .alive, total: node.totalResources, available: resources?.available ?? [:],
                        workers: Int(latest?.workersTotal ?? 0), idleWorkers: Int(latest?.workersIdle ?? 0),
                        cpuPercent: latest?.cpuPercent ?? 0, memoryUsed: latest?.memoryUsedBytes ?? 0,
                        memoryTotal: latest?.memoryTotalBytes ?? 0, storeUsed: latest?.objectStoreUsed ?? 0,
                        storeCapacity: latest?.objectStoreCapacity ?? 0, deathReason: node.deathReason)
        }
        let formatter = DateFormatter()
        formatter.dateFormat = "HH:mm:ss"
        return ClusterStatus(nodes: nodes, actorsAlive: actors.filter { $0.state == .alive }.count,
                             actorsDead: actors.filter { $0.state == .dead }.count,
                             jobsRunning: jobs.filter { $0.state == .running }.count,
                             pendingTasks: view.reduce(0) { $0 + Int($1.queuedLeases) }, tasksByState: tasks, dashboardURL: info.dashboardUrl,
                             recentFailures: failures.map { "\(formatter.string(from: Date(timeIntervalSince1970: Double($0.timeUnixMs) / 1000))) \($0.message)" })
    }

    public var description: String {
        let alive = nodes.filter(\.alive)
        var lines = ["\(alive.count) node(s) alive, \(nodes.count - alive.count) dead; \(actorsAlive) actor(s) alive; \(jobsRunning) job(s) running; \(pendingTasks) lease request(s) pending"]
        let count = { (state: String) in self.tasksByState[state] ?? 0 }
        lines.append("tasks: \(count("PENDING")) pending, \(count("RUNNING")) running, \(count("FINISHED")) finished, "
                     + "\(count("FAILED")) failed, \(count("RETRIED")) retried")
        if !dashboardURL.isEmpty { lines.append("dashboard: \(dashboardURL)") }
        lines.append("")
        for node in nodes {
            let state = node.alive ? "alive" : "dead (\(node.deathReason))"
            lines.append("node \(node.id.prefix(8))\(node.isHead ? " (head)" : "")  \(state)  \(node.address)")
            guard node.alive else { continue }
            let resources = node.total.keys.sorted().map { name -> String in
                let total = node.total[name] ?? 0, used = total - (node.available[name] ?? total)
                return name == "memory" ? "memory \(MemoryReport.size(UInt64(max(0, used))))/\(MemoryReport.size(UInt64(total)))"
                                        : "\(name) \(Self.amount(used))/\(Self.amount(total))"
            }
            lines.append("  resources used: \(resources.joined(separator: ", "))")
            lines.append("  workers: \(node.workers) (\(node.idleWorkers) idle)  CPU \(String(format: "%.1f", node.cpuPercent))%  "
                         + "memory \(MemoryReport.size(node.memoryUsed))/\(MemoryReport.size(node.memoryTotal))  "
                         + "object store \(MemoryReport.size(node.storeUsed))/\(MemoryReport.size(node.storeCapacity))")
        }
        lines.append("")
        lines.append(recentFailures.isEmpty ? "no recent failures" : "recent failures:")
        lines += recentFailures.map { "  " + $0 }
        return lines.joined(separator: "\n")
    }

    /// The summary as JSON.
    public var json: String {
        let object: [String: Any] = [
            "nodes": nodes.map { node -> [String: Any] in
                ["id": node.id, "address": node.address, "is_head": node.isHead, "alive": node.alive, "resources_total": node.total,
                 "resources_available": node.available, "workers": node.workers, "idle_workers": node.idleWorkers,
                 "cpu_percent": node.cpuPercent, "memory_used": node.memoryUsed, "memory_total": node.memoryTotal,
                 "object_store_used": node.storeUsed, "object_store_capacity": node.storeCapacity, "death_reason": node.deathReason]
            },
            "actors_alive": actorsAlive, "actors_dead": actorsDead, "jobs_running": jobsRunning, "pending_tasks": pendingTasks, "tasks": tasksByState,
            "dashboard_url": dashboardURL, "recent_failures": recentFailures,
        ]
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    private static func amount(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(format: "%.2f", value)
    }
}
