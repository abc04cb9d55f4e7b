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
    let key: MetricsRegistry.Key
    let description: String

    public init(_ name: String, description: String = "", tags: [String: String] = [:]) {
        key = .init(name: name, tags: tags)
        self.description = description
    }

    public func increment(by amount: Double = 1) {
        MetricsRegistry.shared.record(key, kind: .counter, description: description) { $0.value += amount }
    }
}

/// A user metric whose latest value counts (a loss, a queue length); the head keeps the last
/// value reported.
public struct Gauge: Sendable {
    let key: MetricsRegistry.Key
    let description: String

    public init(_ name: String, description: String = "", tags: [String: String] = [:]) {
        key = .init(name: name, tags: tags)
        self.description = description
    }

    public func set(_ value: Double) {
        MetricsRegistry.shared.record(key, kind: .gauge, description: description) { $0.value = value }
    }
}

/// A user metric counting observations into buckets (latencies, sizes); the head merges every
/// process's buckets. `boundaries` are the buckets' upper bounds, increasing.
public struct Histogram: Sendable {
    let key: MetricsRegistry.Key
    let description: String
    let boundaries: [Double]

    public init(_ name: String, boundaries: [Double], description: String = "", tags: [String: String] = [:]) {
        key = .init(name: name, tags: tags)
        self.description = description
        self.boundaries = boundaries.sorted()
    }

    public func observe(_ value: Double) {
        let boundaries = self.boundaries
        MetricsRegistry.shared.record(key, kind: .histogram, description: description) { point in
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

/// This process's metrics since their last report to the head: counters and histograms as
/// increments, gauges as their last value. Reported at the end of every task that recorded
/// any, and once a second while anything is unreported.
final class MetricsRegistry: Sendable {
    static let shared = MetricsRegistry()

    struct Key: Hashable, Sendable {
        let name: String
        let tags: [String: String]
    }

    private struct State {
        var pending: [Key: MetricPoint] = [:]
        var sequence: UInt64 = 0
        var flusher: Task<Void, Never>?
        var system: StarlingActorSystem?
    }

    private let state = Mutex(State())
    private let reporterID = UniqueID.random().bytes

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
            if state.flusher == nil, state.system != nil {
                state.flusher = Task.detached { [weak self] in
                    try? await Task.sleep(for: .seconds(1))
                    await self?.flush()
                }
            }
        }
    }

    /// Sends what is unreported to the head (nothing when nothing is).
    func flush() async {
        let (points, sequence, system) = state.withLock { state -> ([MetricPoint], UInt64, StarlingActorSystem?) in
            state.flusher = nil
            guard !state.pending.isEmpty else { return ([], 0, nil) }
            let points = Array(state.pending.values)
            state.pending.removeAll()
            state.sequence += 1
            return (points, state.sequence, state.system)
        }
        guard !points.isEmpty, let system else { return }
        var request = ReportMetricsRequest()
        request.reporterId = reporterID
        request.sequence = sequence
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        request.points = points.map { var point = $0; point.timeUnixMs = now; return point }
        _ = try? await system.head().call(HealthMetricsRPC.reportMetrics, request, timeout: .seconds(5))
    }
}

extension Cluster {
    /// The user metrics aggregated at the head (name prefix and tags filter them).
    public func metrics(prefix: String = "") async throws -> [MetricSample] {
        await MetricsRegistry.shared.flush()
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
