import Foundation
import StarlingCore
import StarlingWire

/// `starling list nodes|actors|tasks|workers|jobs`: one line per item, or JSON.
public enum ClusterListing {
    public static func list(_ what: String, address: String, tokenFile: String, json: Bool) async throws -> String {
        let connection = try await HeadConnection.open(address: address, tokenFile: tokenFile, name: "list")
        let head = connection.head
        defer { head.close() }
        var rows: [[String: Any]] = []
        switch what {
        case "nodes":
            var request = ListNodesRequest()
            request.includeDead = true
            rows = try await head.call(HeadRPC.listNodes, request).nodes.map { node in
                ["node_id": UniqueID(bytes: node.nodeId).hex, "state": node.state == .alive ? "alive" : "dead", "address": node.address?.url ?? "",
                 "is_head": node.isHead, "resources": node.totalResources, "hostname": node.hostname, "pid": node.pid]
            }
        case "actors":
            var request = ListActorsRequest()
            request.includeDead = true
            rows = try await head.call(HeadRPC.listActors, request).actors.map { actor in
                ["actor_id": UniqueID(bytes: actor.spec?.actorId ?? []).hex, "class": actor.spec?.displayName ?? "", "name": actor.spec?.name ?? "",
                 "state": "\(actor.state)", "node_id": actor.lastNodeId.isEmpty ? "" : UniqueID(bytes: actor.lastNodeId).hex,
                 "restarts": actor.numRestarts, "pid": actor.pid]
            }
        case "tasks":
            // Tasks live with their owners (drivers and workers), who report their counts per
            // function to the head, and their failures as events.
            let reply = try await head.call(HealthMetricsRPC.listTasks, ListTasksRequest())
            rows = reply.functions.map { entry in
                let counts = entry.counts ?? TaskStateCounts()
                return ["job_id": entry.jobId.count == 16 ? UniqueID(bytes: entry.jobId).hex : "", "task": counts.functionName,
                        "pending": counts.pending, "running": counts.running, "finished": counts.finished,
                        "failed": counts.failed, "retried": counts.retried]
            }
            if !json {
                guard !rows.isEmpty else { return "no tasks reported by any owner" }
                let failures = reply.recentFailures.suffix(5).map { "  " + $0.message }
                return table(rows, columns: ["job_id", "task", "pending", "running", "finished", "failed", "retried"])
                    + (failures.isEmpty ? "" : "\nrecent failures:\n" + failures.joined(separator: "\n"))
            }
        case "workers":
            // Every node's workers: idle, running an actor, or leased to run an owner's tasks
            // (with the task the lease was asked for); and lease requests still waiting.
            let view = try await head.call(HeadRPC.getClusterView, GetClusterViewRequest()).nodes
            let pool = ConnectionPool(token: connection.token, name: "list")
            defer { pool.closeAll() }
            for node in try await head.liveNodes() {
                guard let url = node.address?.url else { continue }
                let nodeID = UniqueID(bytes: node.nodeId).hex
                let workers = try await pool.client(url).call(NodeManagerRPC.listWorkers, ListWorkersRequest()).workers
                for worker in workers {
                    let state = !worker.actorId.isEmpty ? "actor" : worker.state == .leased ? "running" : "\(worker.state)"
                    rows.append(["node_id": nodeID, "state": state, "task": worker.actorId.isEmpty ? worker.taskName : UniqueID(bytes: worker.actorId).hex,
                                 "pid": worker.pid, "job_id": worker.jobId.count == 16 ? UniqueID(bytes: worker.jobId).hex : "",
                                 "worker_id": UniqueID(bytes: worker.workerId).hex])
                }
                let queued = view.first { $0.nodeId == node.nodeId }?.queuedLeases ?? 0
                if queued > 0 {
                    rows.append(["node_id": nodeID, "state": "queued", "task": "\(queued) lease request(s) waiting for resources",
                                 "pid": 0, "job_id": "", "worker_id": ""])
                }
            }
            if rows.isEmpty && !json { return "no workers" }
        case "jobs":
            var request = ListJobsRequest()
            request.includeFinished = true
            rows = try await head.call(HeadRPC.listJobs, request).jobs.map { job in
                ["job_id": job.jobId.isEmpty ? "" : UniqueID(bytes: job.jobId).hex, "name": job.name, "state": "\(job.state)",
                 "driver": job.driver?.url ?? "", "submission_id": job.submissionId,
                 "start_time_unix_ms": job.startTimeUnixMs, "end_time_unix_ms": job.endTimeUnixMs]
            }
        default:
            throw StarlingError.cluster("cannot list \(what): expected nodes, actors, tasks, workers or jobs")
        }
        if json {
            let data = try JSONSerialization.data(withJSONObject: rows, options: [.prettyPrinted, .sortedKeys])
            return String(decoding: data, as: UTF8.self)
        }
        guard let first = rows.first else { return "no \(what)" }
        return table(rows, columns: first.keys.sorted { a, b in (a.hasSuffix("_id") ? 0 : 1, a) < (b.hasSuffix("_id") ? 0 : 1, b) })
    }

    /// Rows as lines of space-separated columns under a header (ids cut to 8 characters).
    private static func table(_ rows: [[String: Any]], columns: [String]) -> String {
        ([columns.joined(separator: "  ")] + rows.map { row in
            columns.map { key in
                let value: String
                if let resources = row[key] as? [String: Double] {
                    value = resources.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value == $0.value.rounded() ? String(Int64($0.value)) : String($0.value))" }
                        .joined(separator: ",")
                } else {
                    value = row[key].map { "\($0)" } ?? ""
                }
                return key.hasSuffix("_id") ? String(value.prefix(8)) : value
            }.joined(separator: "  ")
        }).joined(separator: "\n")
    }
}
