import Foundation

/// The outcome of a sweep: every trial, the best one, and where the files are.
public struct ResultGrid: Sendable {
    /// The experiment directory.
    public let path: String
    public let objective: Objective
    public let trials: [TrialRecord]
    /// Seconds this run of the sweep took (a resumed sweep counts from its resume).
    public let wallSeconds: Double

    /// The trial with the best value of the objective's metric over its iterations.
    public var bestResult: TrialRecord? { ProgressTable.best(trials, objective) }

    /// The best trial by another metric or mode (over each trial's last result).
    public func best(metric: String, mode: Objective.Mode) -> TrialRecord? {
        trials.filter { $0.lastMetrics[metric]?.isFinite ?? false }.max { a, b in
            mode.oriented(a.lastMetrics[metric]!) < mode.oriented(b.lastMetrics[metric]!)
        }
    }

    /// Trials that ended in an error.
    public var errors: [TrialRecord] { trials.filter { $0.status == .error } }

    /// The trial's latest checkpoint (the trainable's bytes), if one was kept.
    public func checkpoint(of trial: TrialRecord) -> [UInt8]? {
        ExperimentDirectory(path: path).loadCheckpoint(trial: trial.id).flatMap(CheckpointFile.decode)?.bytes
    }

    /// Every trial in a table, as `results.txt` holds it.
    public var table: String {
        ProgressTable.render(trials, objective: objective, elapsed: wallSeconds, total: trials.count, limit: .max).joined(separator: "\n") + "\n"
    }

    var summaryJSON: String {
        struct Summary: Encodable {
            var objective: Objective
            var trials: Int
            var byStatus: [String: Int]
            var wallSeconds: Double
            var best: Best?
            struct Best: Encodable {
                var trial: String
                var config: TrialConfig
                var bestMetric: Double?
                var lastMetrics: [String: Double]
                var iterations: Int
            }
        }
        let counts = Dictionary(uniqueKeysWithValues: trials.statusCounts.map { ($0.key.rawValue, $0.value) })
        let summary = Summary(objective: objective, trials: trials.count, byStatus: counts, wallSeconds: wallSeconds,
                              best: bestResult.map { .init(trial: $0.name, config: $0.config, bestMetric: $0.bestMetric, lastMetrics: $0.lastMetrics, iterations: $0.iterations) })
        return (try? TuneJSON.encoder(pretty: true).encode(summary)).map { String(decoding: $0, as: UTF8.self) + "\n" } ?? "{}\n"
    }
}
