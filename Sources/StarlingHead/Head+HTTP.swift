import Foundation
import StarlingCore
import StarlingWire

/// The head's HTTP endpoint: `/metrics` (Prometheus text format), `/healthz`, JSON under
/// `/api/` and the dashboard at `/`. Everything here only reads; a request that would change
/// state must carry the cluster token (`Authorization: Bearer <token hex>`), and none exists yet,
/// so such requests are refused (401 without the token, 405 with it).
extension Head {
    func serveHTTP(_ request: HTTPRequest) async -> HTTPResponse {
        guard request.method == "GET" || request.method == "HEAD" else {
            guard request.authorization == "Bearer \(token.hex)" else {
                return HTTPResponse(status: 401, text: "\(request.method) \(request.path) needs the cluster token (Authorization: Bearer <token>)\n")
            }
            return HTTPResponse(status: 405, text: "\(request.method) \(request.path): nothing here changes state\n")
        }
        switch request.path {
        case "/", "/index.html":
            return HTTPResponse(contentType: "text/html; charset=utf-8", text: Dashboard.html)
        case "/healthz":
            return HTTPResponse(text: "ok\n")
        case "/metrics":
            return HTTPResponse(contentType: "text/plain; version=0.0.4; charset=utf-8", text: prometheusText())
        case "/api/cluster": return json(clusterJSON())
        case "/api/nodes": return json(nodesJSON(history: Int(request.query["history"] ?? "") ?? 1))
        case "/api/actors": return json(actorsJSON())
        case "/api/jobs": return json(jobsJSON())
        case "/api/tasks": return json(tasksJSON())
        case "/api/events":
            let after = UInt64(request.query["after"] ?? "") ?? 0
            return json(events.list(after: after, limit: Int(request.query["limit"] ?? "") ?? 200, kinds: []).events.map(Self.eventJSON))
        case "/api/metrics": return json(userMetrics.points.values.map(Self.metricJSON))
        default:
            return HTTPResponse(status: 404, text: "no \(request.path) here; try /, /metrics, /healthz, /api/cluster, /api/nodes, /api/actors, /api/jobs, /api/tasks, /api/events, /api/metrics\n")
        }
    }

    private func json(_ value: Any) -> HTTPResponse {
        let data = (try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys])) ?? Data("null".utf8)
        return HTTPResponse(contentType: "application/json", body: [UInt8](data))
    }

    // MARK: - JSON

    private func clusterJSON() -> [String: Any] {
        let alive = nodes.alive
        var total = ResourceSet(), available = ResourceSet()
        for node in alive {
            total = total + ResourceSet(node.info.totalResources)
            available = available + ResourceSet(node.resources.available)
        }
        return [
            "cluster_id": clusterID.hex,
            "head_address": server?.address.description ?? "",
            "dashboard_url": http?.url ?? "",
            "nodes_alive": alive.count,
            "nodes_dead": nodes.entries.values.filter { $0.info.state == .dead }.count,
            "resources_total": total.quantities,
            "resources_available": available.quantities,
            "actors_alive": actors.entries.values.filter { $0.info.state == .alive }.count,
            "jobs_running": jobs.all.filter { $0.state == .running }.count,
            "pending_leases": alive.reduce(0) { $0 + Int($1.resources.queuedLeases) },
            "tasks": Self.totalsJSON(activity.cluster),
            "recent_failures": events.list(after: 0, limit: 10, kinds: [.nodeDied, .workerDied, .taskFailed, .actorDied, .objectLost])
                .events.map(Self.eventJSON),
            "uptime_s": Double(Head.unixMs() - startTime) / 1000,
        ]
    }

    private func nodesJSON(history: Int) -> [[String: Any]] {
        nodes.entries.values.sorted { $0.info.startTimeUnixMs < $1.info.startTimeUnixMs }.map { entry in
            let id = UniqueID(bytes: entry.info.nodeId)
            var node: [String: Any] = [
                "node_id": id.hex,
                "address": entry.info.address?.url ?? "",
                "hostname": entry.info.hostname,
                "state": entry.info.state == .alive ? "alive" : "dead",
                "is_head": entry.info.isHead,
                "resources_total": entry.info.totalResources,
                "resources_available": entry.resources.available,
                "labels": entry.info.labels,
                "death_reason": entry.info.deathReason,
                "pid": entry.info.pid,
            ]
            let recorded = nodeStats.byNode[id] ?? []
            if let latest = recorded.last { node["stats"] = Self.statsJSON(latest) }
            if history > 1 { node["history"] = recorded.suffix(history).map(Self.statsJSON) }
            return node
        }
    }

    private func actorsJSON() -> [[String: Any]] {
        let calls = activity.byActor
        return actors.entries.values.map { entry in
            let info = entry.info
            return [
                "actor_id": UniqueID(bytes: info.spec?.actorId ?? []).hex,
                "class": info.spec?.displayName ?? "",
                "name": info.spec?.name ?? "",
                "namespace": info.spec?.namespace ?? "",
                "state": "\(info.state)",
                "node_id": info.lastNodeId.isEmpty ? "" : UniqueID(bytes: info.lastNodeId).hex,
                "pid": info.pid,
                "restarts": info.numRestarts,
                "job_id": UniqueID(bytes: info.spec?.jobId ?? []).hex,
                "reason": info.reason,
                "calls": Self.callsJSON(calls[info.spec?.actorId ?? []] ?? TaskActivity.ActorCalls()),
            ] as [String: Any]
        }.sorted { ($0["actor_id"] as? String ?? "") < ($1["actor_id"] as? String ?? "") }
    }

    private func jobsJSON() -> [[String: Any]] {
        let tasks = activity.byJob
        return jobs.all.map { job in
            [
                "tasks": Self.totalsJSON(tasks[job.jobId] ?? TaskActivity.Totals()),
                "job_id": UniqueID(bytes: job.jobId).hex,
                "name": job.name,
                "state": "\(job.state)",
                "driver": job.driver?.url ?? "",
                "start_time_unix_ms": job.startTimeUnixMs,
                "end_time_unix_ms": job.endTimeUnixMs,
                "actors": actors.entries.values.filter { $0.info.spec?.jobId == job.jobId && $0.info.state == .alive }.count,
            ] as [String: Any]
        }
    }

    /// Tasks by state as their owners report them (cluster-wide, per job, per function), and as
    /// the nodes see them: leased workers running an owner's tasks, lease requests queued.
    private func tasksJSON() -> [String: Any] {
        var running = 0, queued = 0
        var byNode: [[String: Any]] = []
        for node in nodes.alive {
            let stats = nodeStats.latest(UniqueID(bytes: node.info.nodeId))
            let nodeRunning = Int(stats?.tasksRunning ?? 0), nodeQueued = Int(node.resources.queuedLeases)
            running += nodeRunning
            queued += nodeQueued
            byNode.append(["node_id": UniqueID(bytes: node.info.nodeId).hex, "running": nodeRunning, "queued": nodeQueued])
        }
        return [
            "by_state": Self.totalsJSON(activity.cluster),
            "by_job": activity.byJob.map { job, totals in ["job_id": UniqueID(bytes: job).hex].merging(Self.totalsJSON(totals)) { $1 } }
                .sorted { ($0["job_id"] as? String ?? "") < ($1["job_id"] as? String ?? "") },
            "by_function": activity.byFunction.map { entry in
                ["job_id": UniqueID(bytes: entry.job).hex, "function": entry.function].merging(Self.totalsJSON(entry.totals)) { $1 }
            },
            "leases": ["running": running, "queued": queued, "by_node": byNode] as [String: Any],
        ]
    }

    static func totalsJSON(_ totals: TaskActivity.Totals) -> [String: Any] {
        ["pending": totals.pending, "running": totals.running, "finished": totals.finished, "failed": totals.failed, "retried": totals.retried]
    }

    static func callsJSON(_ calls: TaskActivity.ActorCalls) -> [String: Any] {
        ["running": calls.running, "succeeded": calls.succeeded, "failed": calls.failed, "busy_seconds": calls.busySeconds]
    }

    static func statsJSON(_ stats: NodeStats) -> [String: Any] {
        [
            "time_unix_ms": stats.timeUnixMs,
            "cpu_percent": stats.cpuPercent,
            "cpu_count": stats.cpuCount,
            "memory_total_bytes": stats.memoryTotalBytes,
            "memory_used_bytes": stats.memoryUsedBytes,
            "node_rss_bytes": stats.nodeRssBytes,
            "workers_rss_bytes": stats.workersRssBytes,
            "object_store_capacity": stats.objectStoreCapacity,
            "object_store_used": stats.objectStoreUsed,
            "object_store_spilled": stats.objectStoreSpilled,
            "objects": stats.numObjects,
            "workers_total": stats.workersTotal,
            "workers_idle": stats.workersIdle,
            "actors": stats.numActors,
            "tasks_running": stats.tasksRunning,
            "tasks_queued": stats.tasksQueued,
        ]
    }

    static func eventJSON(_ event: Event) -> [String: Any] {
        [
            "sequence": event.sequence,
            "time_unix_ms": event.timeUnixMs,
            "kind": "\(event.kind)",
            "severity": "\(event.severity)",
            "message": event.message,
            "source": event.source,
            "node_id": event.nodeId.isEmpty ? "" : UniqueID(bytes: event.nodeId).hex,
            "labels": event.labels,
        ]
    }

    static func metricJSON(_ point: MetricPoint) -> [String: Any] {
        var json: [String: Any] = ["name": point.name, "kind": "\(point.kind)", "tags": point.tags, "description": point.description]
        if point.kind == .histogram {
            json["boundaries"] = point.boundaries
            json["bucket_counts"] = point.bucketCounts
            json["sum"] = point.sum
            json["count"] = point.count
        } else {
            json["value"] = point.value
        }
        return json
    }

    // MARK: - Prometheus

    func prometheusText() -> String {
        var text = PrometheusText()
        let alive = nodes.alive
        text.family("starling_cluster_nodes", "gauge", "Nodes of the cluster by state.")
        text.sample("starling_cluster_nodes", ["state": "alive"], Double(alive.count))
        text.sample("starling_cluster_nodes", ["state": "dead"], Double(nodes.entries.values.filter { $0.info.state == .dead }.count))
        let perNode: [(String, String, (NodeStats) -> Double)] = [
            ("starling_node_cpu_percent", "CPU use of the node's host, percent of all its cores.", { $0.cpuPercent }),
            ("starling_node_memory_total_bytes", "Physical memory of the node's host.", { Double($0.memoryTotalBytes) }),
            ("starling_node_memory_used_bytes", "Memory in use on the node's host.", { Double($0.memoryUsedBytes) }),
            ("starling_node_rss_bytes", "Resident memory of the node manager process.", { Double($0.nodeRssBytes) }),
            ("starling_node_workers_rss_bytes", "Resident memory of the node's worker processes.", { Double($0.workersRssBytes) }),
            ("starling_node_object_store_capacity_bytes", "Capacity of the node's object store.", { Double($0.objectStoreCapacity) }),
            ("starling_node_object_store_used_bytes", "Bytes of the node's object store in shared memory.", { Double($0.objectStoreUsed) }),
            ("starling_node_object_store_spilled_bytes", "Bytes the node's object store spilled to disk.", { Double($0.objectStoreSpilled) }),
            ("starling_node_objects", "Objects in the node's store.", { Double($0.numObjects) }),
            ("starling_node_actors", "Actors hosted by the node.", { Double($0.numActors) }),
        ]
        let latest = alive.compactMap { node in nodeStats.latest(UniqueID(bytes: node.info.nodeId)).map { (node, $0) } }
        for (name, help, value) in perNode {
            text.family(name, "gauge", help)
            for (node, stats) in latest { text.sample(name, ["node": UniqueID(bytes: node.info.nodeId).hex, "host": node.info.hostname], value(stats)) }
        }
        text.family("starling_node_workers", "gauge", "Worker processes of the node by state.")
        text.family("starling_node_tasks", "gauge", "Tasks on the node by state (leased workers running, lease requests queued).")
        for (node, stats) in latest {
            let id = UniqueID(bytes: node.info.nodeId).hex
            text.sample("starling_node_workers", ["node": id, "state": "idle"], Double(stats.workersIdle))
            text.sample("starling_node_workers", ["node": id, "state": "busy"], Double(stats.workersTotal) - Double(stats.workersIdle))
            text.sample("starling_node_tasks", ["node": id, "state": "running"], Double(stats.tasksRunning))
            text.sample("starling_node_tasks", ["node": id, "state": "queued"], Double(node.resources.queuedLeases))
        }
        text.family("starling_node_resource_total", "gauge", "Resources the node offers.")
        text.family("starling_node_resource_available", "gauge", "Resources of the node not leased.")
        for node in alive {
            let id = UniqueID(bytes: node.info.nodeId).hex
            for (resource, amount) in node.info.totalResources.sorted(by: { $0.key < $1.key }) {
                text.sample("starling_node_resource_total", ["node": id, "resource": resource], amount)
                text.sample("starling_node_resource_available", ["node": id, "resource": resource], node.resources.available[resource] ?? 0)
            }
        }
        text.family("starling_actors", "gauge", "Actors by state.")
        var actorStates: [String: Int] = [:]
        for entry in actors.entries.values { actorStates["\(entry.info.state)", default: 0] += 1 }
        for (state, count) in actorStates.sorted(by: { $0.key < $1.key }) { text.sample("starling_actors", ["state": state], Double(count)) }
        text.family("starling_jobs", "gauge", "Jobs by state.")
        var jobStates: [String: Int] = [:]
        for job in jobs.all { jobStates["\(job.state)", default: 0] += 1 }
        for (state, count) in jobStates.sorted(by: { $0.key < $1.key }) { text.sample("starling_jobs", ["state": state], Double(count)) }
        // A family's samples stay together (the format requires it), so each family loops.
        let jobs = activity.byJob.sorted { $0.key.lexicographicallyPrecedes($1.key) }
        text.family("starling_job_tasks", "gauge", "Tasks of each job not yet done, by state, as their owners report them.")
        for (job, totals) in jobs {
            text.sample("starling_job_tasks", ["job": UniqueID(bytes: job).hex, "state": "pending"], Double(totals.pending))
            text.sample("starling_job_tasks", ["job": UniqueID(bytes: job).hex, "state": "running"], Double(totals.running))
        }
        let jobCounters: [(String, String, (TaskActivity.Totals) -> UInt64)] = [
            ("starling_job_tasks_finished_total", "Tasks of each job that finished.", { $0.finished }),
            ("starling_job_tasks_failed_total", "Tasks of each job that failed for good.", { $0.failed }),
            ("starling_job_tasks_retried_total", "Task attempts of each job run again.", { $0.retried }),
        ]
        for (name, help, value) in jobCounters {
            text.family(name, "counter", help)
            for (job, totals) in jobs { text.sample(name, ["job": UniqueID(bytes: job).hex], Double(value(totals))) }
        }
        let actorCalls = activity.byActor.sorted { $0.key.lexicographicallyPrecedes($1.key) }
            .map { (labels: ["actor": UniqueID(bytes: $0.key).hex, "class": $0.value.className], calls: $0.value) }
        text.family("starling_actor_calls_total", "counter", "Calls each actor served, by outcome.")
        for (labels, calls) in actorCalls {
            text.sample("starling_actor_calls_total", labels.merging(["outcome": "succeeded"]) { $1 }, Double(calls.succeeded))
            text.sample("starling_actor_calls_total", labels.merging(["outcome": "failed"]) { $1 }, Double(calls.failed))
        }
        text.family("starling_actor_calls_running", "gauge", "Calls inside each actor now.")
        for (labels, calls) in actorCalls { text.sample("starling_actor_calls_running", labels, Double(calls.running)) }
        text.family("starling_actor_busy_seconds_total", "counter", "Time each actor spent inside its methods.")
        for (labels, calls) in actorCalls { text.sample("starling_actor_busy_seconds_total", labels, calls.busySeconds) }
        text.family("starling_events_total", "counter", "Events entered in the head's log since it started.")
        text.sample("starling_events_total", [:], Double(events.latest))
        text.userMetrics(userMetrics.points.values.sorted { ($0.name, $0.tags.description) < ($1.name, $1.tags.description) })
        return text.output
    }
}

/// Prometheus text exposition format (version 0.0.4): `# HELP` and `# TYPE` once per family,
/// then its samples; label values escaped (backslash, double quote, newline).
struct PrometheusText {
    private(set) var output = ""
    private var declared: Set<String> = []

    mutating func family(_ name: String, _ type: String, _ help: String) {
        guard declared.insert(name).inserted else { return }
        output += "# HELP \(name) \(Self.escapeHelp(help))\n# TYPE \(name) \(type)\n"
    }

    mutating func sample(_ name: String, _ labels: [String: String], _ value: Double) {
        output += name
        if !labels.isEmpty {
            output += "{" + labels.sorted { $0.key < $1.key }.map { "\($0.key)=\"\(Self.escapeLabel($0.value))\"" }.joined(separator: ",") + "}"
        }
        output += " \(Self.number(value))\n"
    }

    /// User metrics: families in order, a family's samples together.
    mutating func userMetrics(_ points: [MetricPoint]) {
        for point in points {
            switch point.kind {
            case .counter:
                family(point.name, "counter", point.description.isEmpty ? "User counter \(point.name)." : point.description)
                sample(point.name, point.tags, point.value)
            case .histogram:
                family(point.name, "histogram", point.description.isEmpty ? "User histogram \(point.name)." : point.description)
                var cumulative: UInt64 = 0
                for (index, bound) in point.boundaries.enumerated() {
                    cumulative &+= index < point.bucketCounts.count ? point.bucketCounts[index] : 0
                    sample(point.name + "_bucket", point.tags.merging(["le": Self.number(bound)]) { _, new in new }, Double(cumulative))
                }
                sample(point.name + "_bucket", point.tags.merging(["le": "+Inf"]) { _, new in new }, Double(point.count))
                sample(point.name + "_sum", point.tags, point.sum)
                sample(point.name + "_count", point.tags, Double(point.count))
            default:
                family(point.name, "gauge", point.description.isEmpty ? "User gauge \(point.name)." : point.description)
                sample(point.name, point.tags, point.value)
            }
        }
    }

    static func number(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }

    static func escapeLabel(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
    }

    static func escapeHelp(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\n", with: "\\n")
    }
}
