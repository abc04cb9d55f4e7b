import Foundation

/// Where a trial stands.
public enum TrialStatus: String, Sendable, Codable, Hashable {
    /// Created, waiting for a free slot (or, after a resume, to continue from its checkpoint).
    case pending
    case running
    /// Ran to its stop condition (or its training function returned).
    case terminated
    /// Ended early by the scheduler.
    case stopped
    /// Its trainable threw, or its worker died more often than `maxFailures` allows.
    case error

    var isFinished: Bool { self == .terminated || self == .stopped || self == .error }

    /// Every status, in the order tables and summaries list them.
    static let displayOrder: [TrialStatus] = [.running, .pending, .terminated, .stopped, .error]
}

extension Array where Element == TrialRecord {
    /// How many trials have each status.
    var statusCounts: [TrialStatus: Int] {
        var counts: [TrialStatus: Int] = [:]
        for trial in self { counts[trial.status, default: 0] += 1 }
        return counts
    }

    /// "2 running, 5 terminated": the statuses present, in display order.
    var statusSummary: String {
        let counts = statusCounts
        return TrialStatus.displayOrder.compactMap { status in counts[status].map { "\($0) \(status.rawValue)" } }.joined(separator: ", ")
    }
}

/// One iteration's metrics as the tuner records them.
public struct TrialResult: Sendable, Codable, Hashable {
    /// 1 for the first iteration.
    public var iteration: Int
    /// Seconds since the trial started (across restarts).
    public var elapsed: Double
    public var metrics: [String: Double]
}

/// Everything known about one trial.
public struct TrialRecord: Sendable, Codable, Hashable {
    public let id: Int
    public var config: TrialConfig
    public var status: TrialStatus = .pending
    /// Iterations reported so far.
    public var iterations: Int = 0
    public var lastMetrics: [String: Double] = [:]
    /// The best value of the objective's metric (by the objective's mode), if reported.
    public var bestMetric: Double?
    /// Iteration of the latest checkpoint kept in the trial's directory.
    public var checkpointIteration: Int?
    /// Times its worker died (or its trainable failed to start) and it was restarted.
    public var failures: Int = 0
    public var error: String?
    /// Seconds the trial has run.
    public var elapsed: Double = 0
    /// Set when a population-based-training exploit copied another trial.
    public var exploitedFrom: [Int] = []
    /// Every result, first iteration first (kept out of the state file; read from `result.json`).
    public var history: [TrialResult] = []

    public var name: String { String(format: "trial_%04d", id) }

    init(id: Int, config: TrialConfig) {
        self.id = id
        self.config = config
    }

    enum CodingKeys: String, CodingKey {
        case id, config, status, iterations, lastMetrics, bestMetric, checkpointIteration, failures, error, elapsed, exploitedFrom
    }
}
