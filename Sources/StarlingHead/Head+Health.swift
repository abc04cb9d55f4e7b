import Foundation
import StarlingCore
import StarlingWire

/// The health-metrics service on the head: node statistics from heartbeats, the event log
/// (published on PUB/SUB as events enter it), and user metrics aggregated from tasks and actors.
extension Head {
    func addHealthRoutes(to routes: inout RouteTable) {
        routes.add(HealthMetricsRPC.listNodeStats) { [self] request, _ in await nodeStats(request) }
        routes.add(HealthMetricsRPC.reportMetrics) { [self] request, _ in try await reportMetrics(request) }
        routes.add(HealthMetricsRPC.getMetrics) { [self] request, _ in await metrics(request) }
        routes.add(HealthMetricsRPC.reportEvents) { [self] request, _ in await reportEvents(request) }
        routes.add(HealthMetricsRPC.listEvents) { [self] request, _ in await listEvents(request) }
        routes.add(HealthMetricsRPC.listTasks) { [self] request, _ in await listTasks(request) }
    }

    /// Adds an event to the log and publishes it (topic "event").
    @discardableResult
    func record(_ kind: EventKind, _ severity: EventSeverity, _ message: String, node: UniqueID? = nil, job: [UInt8] = [],
                actor: [UInt8] = [], labels: [String: String] = [:], source: String = "head") -> Event {
        var event = Event()
        event.kind = kind
        event.severity = severity
        event.message = message
        event.source = source
        event.nodeId = node?.bytes ?? []
        event.jobId = job
        event.actorId = actor
        event.labels = labels
        return enter(event)
    }

    private func enter(_ event: Event) -> Event {
        let logged = events.append(event)
        if let publisher {
            var update = ClusterUpdate()
            update.sequence = logged.sequence
            update.event = logged
            try? publisher.publish(topic: "event", payload: update.serializedBytes())
        }
        wakeAllEventWaiters()
        return logged
    }

    func recordStats(_ stats: NodeStats) {
        guard stats.nodeId.count == 16 else { return }
        nodeStats.record(stats)
    }

    private func nodeStats(_ request: ListNodeStatsRequest) -> ListNodeStatsReply {
        var reply = ListNodeStatsReply()
        let wanted = Set(request.nodeIds.filter { $0.count == 16 }.map { UniqueID(bytes: $0) })
        for (id, history) in nodeStats.byNode where wanted.isEmpty || wanted.contains(id) {
            reply.stats += history.suffix(max(1, Int(request.history)))
        }
        return reply
    }

    private func reportMetrics(_ request: ReportMetricsRequest) throws -> ReportMetricsReply {
        activity.apply(request)
        let complaints = userMetrics.apply(request)
        if !complaints.isEmpty { throw RPCFailure(.invalidArgument, complaints.joined(separator: "; ")) }
        return ReportMetricsReply()
    }

    func metrics(_ request: GetMetricsRequest) -> GetMetricsReply {
        var reply = GetMetricsReply()
        reply.points = userMetrics.points.values
            .filter { point in point.name.hasPrefix(request.namePrefix) && request.tags.allSatisfy { tag in point.tags[tag.key] == tag.value } }
            .sorted { ($0.name, $0.tags.description) < ($1.name, $1.tags.description) }
        return reply
    }

    private func reportEvents(_ request: ReportEventsRequest) -> ReportEventsReply {
        for event in request.events.prefix(1000) { _ = enter(event) }
        return ReportEventsReply()
    }

    func listEvents(_ request: ListEventsRequest) async -> ListEventsReply {
        let deadline = ContinuousClock.now + .milliseconds(Int(min(request.waitMs, 30_000)))
        let kinds = Set(request.kinds)
        var found = events.list(after: request.afterSequence, limit: Int(request.limit), kinds: kinds)
        while found.events.isEmpty, request.waitMs > 0, ContinuousClock.now < deadline, !Task.isCancelled {
            // Woken by the next event, or by the deadline.
            let timer = Task { [weak self] in
                try? await Task.sleep(until: deadline)
                await self?.wakeEventWaiters()
            }
            await withCheckedContinuation { eventWaiters.append($0) }
            timer.cancel()
            found = events.list(after: request.afterSequence, limit: Int(request.limit), kinds: kinds)
        }
        var reply = ListEventsReply()
        reply.events = found.events
        reply.truncated = found.truncated
        reply.latestSequence = events.latest
        return reply
    }

    func listTasks(_ request: ListTasksRequest) -> ListTasksReply {
        var reply = ListTasksReply()
        var totals = TaskActivity.Totals()
        for entry in activity.byFunction where request.jobId.isEmpty || entry.job == request.jobId {
            totals.add(entry.totals)
            reply.functions.append(JobTaskCounts(jobId: entry.job, counts: entry.totals.counts(named: entry.function)))
        }
        reply.countsByState = ["PENDING": Double(totals.pending), "RUNNING": Double(totals.running), "FINISHED": Double(totals.finished),
                               "FAILED": Double(totals.failed), "RETRIED": Double(totals.retried)]
        let limit = request.limit == 0 ? 20 : Int(request.limit)
        reply.recentFailures = Array(events.events.reversed().lazy
            .filter { $0.kind == .taskFailed && (request.jobId.isEmpty || $0.jobId == request.jobId) }
            .prefix(limit).reversed())
        return reply
    }

    private func wakeEventWaiters() { wakeAllEventWaiters() }

    func wakeAllEventWaiters() {
        eventWaiters.forEach { $0.resume() }
        eventWaiters.removeAll()
    }
}
