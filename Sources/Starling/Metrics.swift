import Foundation
import StarlingCore
import StarlingWire
import Synchronization

/// User metrics: `Metrics.Counter`, `Metrics.Gauge`, `Metrics.Histogram`, with tags; callable
/// from tasks, actors and drivers, aggregated at the head (`/metrics`, `/api/metrics`,
/// `Cluster.metrics`).
public enum Metrics {}

extension Metrics {
/// A user metric that only goes up (requests served, samples seen); the head sums every
/// process's increments.
/// ```swift
/// let samples = Metrics.Counter("training_samples", description: "Samples seen", tags: ["model": "mlp"])
/// samples.increment(by: 128)
/// ```
public struct Counter: Sendable {
    let key: HealthReporter.Key
    let description: String

    public init(_ name: String, description: String = "", tags: [String: String] = [:]) {
        key = .init(name: name, tags: tags)
        self.description = description
    }

    public func increment(by amount: Double = 1) {
        HealthReporter.shared.record(key, kind: .counter, description: description) { $0.value += amount }
    }
}

/// A user metric whose latest value counts (a loss, a queue length); the head keeps the last
/// value reported.
public struct Gauge: Sendable {
    let key: HealthReporter.Key
    let description: String

    public init(_ name: String, description: String = "", tags: [String: String] = [:]) {
        key = .init(name: name, tags: tags)
        self.description = description
    }

    public func set(_ value: Double) {
        HealthReporter.shared.record(key, kind: .gauge, description: description) { $0.value = value }
    }
}

/// A user metric counting observations into buckets (latencies, sizes); the head merges every
/// process's buckets. `boundaries` are the buckets' upper bounds, increasing.
public struct Histogram: Sendable {
    let key: HealthReporter.Key
    let description: String
    let boundaries: [Double]

    public init(_ name: String, boundaries: [Double], description: String = "", tags: [String: String] = [:]) {
        key = .init(name: name, tags: tags)
        self.description = description
        self.boundaries = boundaries.sorted()
    }

    public func observe(_ value: Double) {
        let boundaries = self.boundaries
        HealthReporter.shared.record(key, kind: .histogram, description: description) { point in
            if point.bucketCounts.count != boundaries.count + 1 {
                point.boundaries = boundaries
                point.bucketCounts = Array(repeating: 0, count: boundaries.count + 1)
            }
            point.bucketCounts[boundaries.firstIndex { value <= $0 } ?? boundaries.count] += 1
            point.sum += value
            point.count += 1
        }
    }
}

}

/// This process's reports to the head's health service:
/// - user metrics since their last report: counters and histograms as increments, gauges as
///   their last value;
/// - the counts of the tasks this process owns, by function and state, and of the calls its
///   hosted actors served (totals; the head keeps each reporter's latest);
/// - task-failed events, at most `maxFailureEvents` a report (the rest are counted in one).
/// Sent at the end of every task that recorded metrics, and within a second of anything else.
/// One report at a time, so the head sees each reporter's totals in the order they were taken.
final class HealthReporter: Sendable {
    static let shared = HealthReporter()
    static let maxFailureEvents = 20

    struct Key: Hashable, Sendable {
        let name: String
        let tags: [String: String]
    }

    private struct State {
        var pending: [Key: MetricPoint] = [:]
        var sequence: UInt64 = 0
        var flusher: Task<Void, Never>?
        /// The report being sent; the next one waits for it.
        var sending: Task<Void, Never>?
        var system: StarlingActorSystem?
        weak var owner: TaskSubmitter?
        var jobID: [UInt8] = []
        var nodeID: [UInt8] = []
        var activityChanged = false
        var failures: [Event] = []
        var failuresNotShown = 0
        var failedReports = 0
        /// A worker reports as itself (the head forgets its running work when it dies); a
        /// driver as a new reporter per cluster it runs on (the head keeps each job's counts).
        var reporterID = HealthReporter.workerID ?? UniqueID.random().bytes
    }

    private static let workerID = ProcessInfo.processInfo.environment[WorkerEnvironment.workerID].flatMap { UniqueID(hex: $0) }?.bytes
    private let state = Mutex(State())

    /// Reports go to `cluster`'s head from now on, with the counts of its task owner.
    func attach(_ cluster: Cluster) {
        state.withLock { state in
            state.system = cluster.actorSystem
            state.owner = cluster.submitter
            if state.jobID != cluster.jobID, Self.workerID == nil {
                state.reporterID = UniqueID.random().bytes
                state.sequence = 0
            }
            state.jobID = cluster.jobID
            state.nodeID = UniqueID(hex: cluster.nodeID)?.bytes ?? []
        }
    }

    func record(_ key: Key, kind: MetricKind, description: String, _ update: (inout MetricPoint) -> Void) {
        let system = Cluster.ambient?.actorSystem
        state.withLock { state in
            var point = state.pending[key] ?? MetricPoint()
            point.name = key.name
            point.tags = key.tags
            point.kind = kind
            point.description = description
            update(&point)
            state.pending[key] = point
            if state.system == nil { state.system = system }
            schedule(&state)
        }
    }

    /// The owner's tasks or a hosted actor's calls changed: report their counts within a second.
    func activityChanged() {
        state.withLock { state in
            state.activityChanged = true
            schedule(&state)
        }
    }

    /// A task failed for good (or an actor method threw): tell the head's event log.
    func failed(_ event: Event) {
        state.withLock { state in
            if state.failures.count < Self.maxFailureEvents { state.failures.append(event) } else { state.failuresNotShown += 1 }
            schedule(&state)
        }
    }

    private func schedule(_ state: inout State) {
        guard state.flusher == nil, state.system != nil else { return }
        state.flusher = Task.detached { [weak self] in
            try? await Task.sleep(for: .seconds(1))
            await self?.flush()
        }
    }

    /// Sends what is unreported to the head (nothing when nothing is), after any report
    /// already on its way.
    func flush() async {
        let next = state.withLock { state -> Task<Void, Never>? in
            guard !state.pending.isEmpty || state.activityChanged || !state.failures.isEmpty || state.failuresNotShown > 0,
                  state.system != nil else {
                // Nothing new, but a report may be on its way: it has arrived when this returns.
                return state.sending
            }
            let previous = state.sending
            let task = Task { [self] in
                await previous?.value
                await send()
            }
            state.sending = task
            return task
        }
        await next?.value
    }

    private func send() async {
        let (activity, owner, system) = state.withLock { state in
            let activity = state.activityChanged
            state.activityChanged = false
            state.flusher?.cancel()
            state.flusher = nil
            return (activity, state.owner, state.system)
        }
        guard let system else { return }
        var request = ReportMetricsRequest()
        if activity {
            request.tasks = await owner?.stateReport() ?? []
            request.actorCalls = system.callCounts()
        }
        var events: [Event] = []
        state.withLock { state in
            request.points = Array(state.pending.values)
            state.pending.removeAll()
            events = state.failures
            state.failures.removeAll()
            if state.failuresNotShown > 0 {
                events.append(Event(kind: .taskFailed, severity: .error,
                                    message: "\(state.failuresNotShown) more task failure(s) in this second not logged one by one; counts by function: /api/tasks",
                                    source: events.first?.source ?? "", jobId: state.jobID))
                state.failuresNotShown = 0
            }
            state.sequence += 1
            request.sequence = state.sequence
            request.jobId = state.jobID
            request.nodeId = state.nodeID
            request.reporterId = state.reporterID
        }
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        request.points = request.points.map { var point = $0; point.timeUnixMs = now; return point }
        guard let head = try? await system.head() else { return }
        if !request.points.isEmpty || !request.tasks.isEmpty || !request.actorCalls.isEmpty {
            do {
                _ = try await head.call(HealthMetricsRPC.reportMetrics, request, timeout: .seconds(5))
            } catch WireError.remote(_, _, .invalidArgument, _) {
                // Some points were refused (bad names); the rest, and the counts, arrived.
            } catch {
                // Counts are totals: a later report carries them again (a few tries: the
                // cluster may be gone).
                let retry = state.withLock { state in
                    state.failedReports += 1
                    return state.failedReports <= 3
                }
                if activity, retry { activityChanged() }
                return
            }
            state.withLock { $0.failedReports = 0 }
        }
        if !events.isEmpty {
            var report = ReportEventsRequest()
            report.events = events
            _ = try? await head.call(HealthMetricsRPC.reportEvents, report, timeout: .seconds(5))
        }
    }
}

extension Cluster {
    /// The user metrics aggregated at the head (name prefix and tags filter them).
    public func metrics(prefix: String = "") async throws -> [MetricSample] {
        await HealthReporter.shared.flush()
        var request = GetMetricsRequest()
        request.namePrefix = prefix
        do {
            return try await actorSystem.head().call(HealthMetricsRPC.getMetrics, request).points.map(MetricSample.init)
        } catch {
            throw StarlingError.cluster("cannot read metrics from the head: \(error)")
        }
    }
}

extension Cluster {
    /// The head's HTTP endpoint (dashboard, `/metrics`, `/api/`), when it runs one.
    public func dashboardURL() async throws -> String? {
        let url = try await actorSystem.head().call(HeadRPC.getClusterInfo, GetClusterInfoRequest()).dashboardUrl
        return url.isEmpty ? nil : url
    }
}

/// One aggregated user metric as the head holds it.
public struct MetricSample: Sendable {
    public let name: String
    public let tags: [String: String]
    /// The counter's sum or the gauge's value (histograms: the sum of observations).
    public let value: Double
    /// Histograms: observations, and counts per bucket (the last bucket is +Inf).
    public let count: UInt64
    public let buckets: [UInt64]

    init(_ point: MetricPoint) {
        name = point.name
        tags = point.tags
        value = point.kind == .histogram ? point.sum : point.value
        count = point.count
        buckets = point.bucketCounts
    }
}
