import StarlingCore
import StarlingWire

/// The head's bounded event log: node joined/left/died, worker died, task failed, actor
/// restarted, object spilled or lost… Each event gets an increasing sequence number.
struct EventLog {
    let capacity: Int
    private(set) var events: [Event] = []
    private(set) var latest: UInt64 = 0

    init(capacity: Int = 2000) { self.capacity = capacity }

    mutating func append(_ event: Event) -> Event {
        var event = event
        latest += 1
        event.sequence = latest
        if event.timeUnixMs == 0 { event.timeUnixMs = Head.unixMs() }
        events.append(event)
        if events.count > capacity { events.removeFirst(events.count - capacity) }
        return event
    }

    /// Events after `sequence` (oldest first), at most `limit` (0: all), of `kinds` (empty: all).
    func list(after sequence: UInt64, limit: Int, kinds: Set<EventKind>) -> (events: [Event], truncated: Bool) {
        var matching = events.filter { $0.sequence > sequence && (kinds.isEmpty || kinds.contains($0.kind)) }
        var truncated = false
        if limit > 0, matching.count > limit {
            matching = Array(matching.suffix(limit))
            truncated = true
        }
        return (matching, truncated)
    }
}

/// User metrics from tasks and actors, aggregated by name and tags: counters summed, gauges
/// replaced, histograms merged. Reports are applied once per (reporter, sequence).
struct MetricsAggregator {
    struct Key: Hashable {
        let name: String
        let tags: [String: String]
    }

    private(set) var points: [Key: MetricPoint] = [:]
    private var lastSequence: [[UInt8]: UInt64] = [:]

    /// Applies a report; returns complaints about points it refused (the rest are applied).
    mutating func apply(_ request: ReportMetricsRequest) -> [String] {
        if request.sequence > 0 {
            if let last = lastSequence[request.reporterId], request.sequence <= last { return [] }
            lastSequence[request.reporterId] = request.sequence
        }
        var complaints: [String] = []
        for point in request.points {
            guard Self.isValidName(point.name) else {
                complaints.append("metric name \"\(point.name)\" must match [a-zA-Z_:][a-zA-Z0-9_:]*")
                continue
            }
            guard point.tags.keys.allSatisfy({ Self.isValidName($0) && !$0.hasPrefix("__") && $0 != "le" }) else {
                complaints.append("metric \(point.name): tag names must match [a-zA-Z_][a-zA-Z0-9_]* (not le, not __…)")
                continue
            }
            let key = Key(name: point.name, tags: point.tags)
            guard var current = points[key] else {
                points[key] = point
                continue
            }
            guard current.kind == point.kind else {
                complaints.append("metric \(point.name) is a \(current.kind), not a \(point.kind)")
                continue
            }
            switch point.kind {
            case .counter:
                current.value += point.value
            case .histogram:
                guard current.boundaries == point.boundaries, current.bucketCounts.count == point.bucketCounts.count else {
                    complaints.append("metric \(point.name): histogram buckets differ from the first report's")
                    continue
                }
                for index in current.bucketCounts.indices { current.bucketCounts[index] &+= point.bucketCounts[index] }
                current.sum += point.sum
                current.count &+= point.count
            default:
                current.value = point.value
            }
            current.timeUnixMs = point.timeUnixMs
            if current.description.isEmpty { current.description = point.description }
            points[key] = current
        }
        return complaints
    }

    static func isValidName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, first.isASCII, first == "_" || first == ":" || first.properties.isAlphabetic else {
            return false
        }
        return name.unicodeScalars.allSatisfy { $0.isASCII && ($0 == "_" || $0 == ":" || $0.properties.isAlphabetic || ("0"..."9").contains($0)) }
    }
}

/// The latest statistics of each node, with a short history for the dashboard's charts.
struct NodeStatsHistory {
    let depth: Int
    private(set) var byNode: [UniqueID: [NodeStats]] = [:]

    init(depth: Int = 150) { self.depth = depth }

    mutating func record(_ stats: NodeStats) {
        guard stats.nodeId.count == 16 else { return }
        let id = UniqueID(bytes: stats.nodeId)
        var history = byNode[id] ?? []
        history.append(stats)
        if history.count > depth { history.removeFirst(history.count - depth) }
        byNode[id] = history
    }

    func latest(_ id: UniqueID) -> NodeStats? { byNode[id]?.last }

    mutating func remove(_ id: UniqueID) { byNode[id] = nil }
}
