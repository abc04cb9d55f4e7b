import Foundation
import StarlingCore
import StarlingWire

/// `starling list nodes|actors|jobs`: one line per item, or JSON.
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
            // Tasks live with their owners (drivers and workers); the nodes know the workers
            // leased to run them, each with the task its lease was asked for, and the lease
            // requests still waiting.
            let view = try await head.call(HeadRPC.getClusterView, GetClusterViewRequest()).nodes
            let pool = ConnectionPool(token: connection.token, name: "list")
            defer { pool.closeAll() }
            for node in try await head.liveNodes() {
                guard let url = node.address?.url else { continue }
                let nodeID = UniqueID(bytes: node.nodeId).hex
                let workers = try await pool.client(url).call(NodeManagerRPC.listWorkers, ListWorkersRequest()).workers
                for worker in workers where worker.state == .leased && worker.actorId.isEmpty {
                    rows.append(["node_id": nodeID, "state": "running", "task": worker.taskName, "pid": worker.pid,
                                 "job_id": worker.jobId.count == 16 ? UniqueID(bytes: worker.jobId).hex : "",
                                 "worker_id": UniqueID(bytes: worker.workerId).hex])
                }
                let queued = view.first { $0.nodeId == node.nodeId }?.queuedLeases ?? 0
                if queued > 0 {
                    rows.append(["node_id": nodeID, "state": "queued", "task": "\(queued) lease request(s) waiting for resources",
                                 "pid": 0, "job_id": "", "worker_id": ""])
                }
            }
            if rows.isEmpty && !json { return "no tasks running or queued" }
        case "jobs":
            var request = ListJobsRequest()
            request.includeFinished = true
            rows = try await head.call(HeadRPC.listJobs, request).jobs.map { job in
                ["job_id": job.jobId.isEmpty ? "" : UniqueID(bytes: job.jobId).hex, "name": job.name, "state": "\(job.state)",
                 "driver": job.driver?.url ?? "", "submission_id": job.submissionId,
                 "start_time_unix_ms": job.startTimeUnixMs, "end_time_unix_ms": job.endTimeUnixMs]
            }
        default:
            throw StarlingError.cluster("cannot list \(what): expected nodes, actors, tasks or jobs")
        }
        if json {
            let data = try JSONSerialization.data(withJSONObject: rows, options: [.prettyPrinted, .sortedKeys])
            return String(decoding: data, as: UTF8.self)
        }
        guard let first = rows.first else { return "no \(what)" }
        let columns = first.keys.sorted { a, b in (a.hasSuffix("_id") ? 0 : 1, a) < (b.hasSuffix("_id") ? 0 : 1, b) }
        return ([columns.joined(separator: "  ")] + rows.map { row in
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
