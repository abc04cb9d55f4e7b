import Foundation

/// What a scheduler tells the tuner after a trial's result.
public enum SchedulerDecision: Sendable, Hashable {
    /// Run the trial's next iteration.
    case `continue`
    /// End the trial now (it keeps its results; its status becomes `stopped`).
    case stop
    /// Population-based training: replace this trial's state with `donor`'s latest checkpoint
    /// and go on with `config` (the donor's config, perturbed).
    case exploit(donor: Int, config: TrialConfig)
}

/// Decides, from each result, whether a trial goes on. Schedulers are pure values with no
/// I/O, driven by the tuner, so their decisions can be tested on synthetic learning curves.
public protocol TrialScheduler: Sendable {
    /// Called once, before any trial, with the sweep's objective.
    mutating func setUp(objective: Objective) throws
    /// A trial was created with `config`.
    mutating func onTrialAdd(_ trial: Int, config: TrialConfig)
    /// Trial `trial` reported `metrics` for its iteration `iteration` (1, 2, …).
    mutating func onResult(_ trial: Int, iteration: Int, metrics: [String: Double]) -> SchedulerDecision
    /// The trial ended (finished, stopped or failed).
    mutating func onTrialComplete(_ trial: Int)
    /// The iteration at which the scheduler ends every trial (a stop there is a normal end), if any.
    var horizon: Int? { get }
    /// A result recorded before a resume, shown again so the scheduler's state matches the
    /// experiment's; no decision is taken on it.
    mutating func replay(_ trial: Int, iteration: Int, metrics: [String: Double])
}

extension TrialScheduler {
    public var horizon: Int? { nil }
    public mutating func replay(_ trial: Int, iteration: Int, metrics: [String: Double]) {
        _ = onResult(trial, iteration: iteration, metrics: metrics)
    }
    public mutating func onTrialAdd(_ trial: Int, config: TrialConfig) {}
    public mutating func onTrialComplete(_ trial: Int) {}
}

/// First in, first out: every trial runs until its stop condition.
public struct FIFOScheduler: TrialScheduler {
    public init() {}
    public mutating func setUp(objective: Objective) throws {}
    public mutating func onResult(_ trial: Int, iteration: Int, metrics: [String: Double]) -> SchedulerDecision { .continue }
}

/// Asynchronous successive halving (ASHA, Li et al. 2018, as in Ray's `ASHAScheduler`).
///
/// Rungs sit at `gracePeriod · reductionFactor^k` iterations below `maxIterations`. A trial
/// reaching a rung is stopped unless its metric is in the top `1 / reductionFactor` of those
/// recorded at that rung so far; trials never wait for each other. Every trial stops at
/// `maxIterations`.
public struct ASHAScheduler: TrialScheduler {
    public let gracePeriod: Int
    public let maxIterations: Int
    public let reductionFactor: Double
    var objective = Objective(metric: "", mode: .max)
    /// Rung milestones, highest first, and the scores recorded at each.
    var rungs: [(milestone: Int, recorded: [Int: Double])] = []

    public init(gracePeriod: Int = 1, maxIterations: Int = 100, reductionFactor: Double = 4) {
        self.gracePeriod = gracePeriod
        self.maxIterations = maxIterations
        self.reductionFactor = reductionFactor
    }

    public mutating func setUp(objective: Objective) throws {
        guard gracePeriod >= 1, maxIterations >= gracePeriod, reductionFactor > 1 else {
            throw TuneError.invalidSetting("ASHAScheduler needs 1 <= gracePeriod (\(gracePeriod)) <= maxIterations (\(maxIterations)) and reductionFactor > 1 (\(reductionFactor))")
        }
        self.objective = objective
        var milestones: [Int] = []
        var milestone = Double(gracePeriod)
        while Int(milestone) < maxIterations {
            milestones.append(Int(milestone))
            milestone *= reductionFactor
        }
        rungs = milestones.reversed().map { ($0, [:]) }
    }

    public var horizon: Int? { maxIterations }

    /// The rung milestones, lowest first.
    public var milestones: [Int] { rungs.map(\.milestone).reversed() }

    public mutating func onResult(_ trial: Int, iteration: Int, metrics: [String: Double]) -> SchedulerDecision {
        if iteration >= maxIterations { return .stop }
        guard let score = objective.score(metrics) else { return .continue }
        for index in rungs.indices where iteration >= rungs[index].milestone {
            // Only the highest rung reached is judged, once per trial.
            guard rungs[index].recorded[trial] == nil else { break }
            let cutoff = Percentile.of(Array(rungs[index].recorded.values), (1 - 1 / reductionFactor) * 100)
            rungs[index].recorded[trial] = score
            if let cutoff, score < cutoff { return .stop }
            break
        }
        return .continue
    }
}

/// Median stopping (Golovin et al. 2017, Google Vizier): after `gracePeriod` iterations, a
/// trial whose best result so far is worse than the median of the other trials' running means
/// at the same iteration is stopped, once at least `minSamples` other trials reached it.
public struct MedianStoppingScheduler: TrialScheduler {
    public let gracePeriod: Int
    public let minSamples: Int
    var objective = Objective(metric: "", mode: .max)
    /// Each trial's scores by iteration (a trial continued from a checkpoint reports some
    /// iterations again; the later report replaces the earlier).
    var history: [Int: [Int: Double]] = [:]

    public init(gracePeriod: Int = 1, minSamples: Int = 3) {
        self.gracePeriod = gracePeriod
        self.minSamples = minSamples
    }

    public mutating func setUp(objective: Objective) throws {
        guard gracePeriod >= 1, minSamples >= 1 else {
            throw TuneError.invalidSetting("MedianStoppingScheduler needs gracePeriod >= 1 (\(gracePeriod)) and minSamples >= 1 (\(minSamples))")
        }
        self.objective = objective
    }

    public mutating func onResult(_ trial: Int, iteration: Int, metrics: [String: Double]) -> SchedulerDecision {
        guard let score = objective.score(metrics) else { return .continue }
        history[trial, default: [:]][iteration] = score
        // A continued trial forgets what it reported after its checkpoint.
        history[trial] = history[trial]?.filter { $0.key <= iteration }
        guard iteration >= gracePeriod else { return .continue }
        let others = history.filter { $0.key != trial && ($0.value.keys.max() ?? 0) >= iteration }
        guard others.count >= minSamples else { return .continue }
        let means = others.values.map { scores -> Double in
            let upTo = scores.filter { $0.key <= iteration }.map(\.value)
            return upTo.reduce(0, +) / Double(max(1, upTo.count))
        }
        guard let median = Percentile.of(means, 50), let best = history[trial]?.values.max() else { return .continue }
        return best < median ? .stop : .continue
    }

    public mutating func onTrialComplete(_ trial: Int) {}
}

/// Population-based training (Jaderberg et al. 2017). Every `perturbationInterval`
/// iterations a trial in the bottom `quantile` of the population (by its latest score)
/// exploits a trial from the top `quantile`, chosen at random: it takes that trial's
/// checkpoint, and explores: each parameter in `mutations` is resampled from its domain with
/// probability `resampleProbability`, else a number is multiplied by 0.8 or 1.2 and a choice
/// moves to a neighbouring value.
public struct PopulationBasedTraining: TrialScheduler {
    public let perturbationInterval: Int
    public let quantile: Double
    public let resampleProbability: Double
    public let mutations: SearchSpace
    var objective = Objective(metric: "", mode: .max)
    var random: SeededRandom
    var latest: [Int: Double] = [:]
    var configs: [Int: TrialConfig] = [:]

    public init(perturbationInterval: Int = 5, quantile: Double = 0.25, resampleProbability: Double = 0.25,
                mutations: SearchSpace, seed: UInt64 = 0) {
        self.perturbationInterval = perturbationInterval
        self.quantile = quantile
        self.resampleProbability = resampleProbability
        self.mutations = mutations
        random = SeededRandom(seed: seed)
    }

    public mutating func setUp(objective: Objective) throws {
        guard perturbationInterval >= 1, quantile > 0, quantile <= 0.5, (0...1).contains(resampleProbability) else {
            throw TuneError.invalidSetting("PopulationBasedTraining needs perturbationInterval >= 1, 0 < quantile <= 0.5 and 0 <= resampleProbability <= 1")
        }
        guard !mutations.domains.isEmpty else { throw TuneError.invalidSetting("PopulationBasedTraining needs at least one parameter in mutations") }
        try mutations.validate()
        self.objective = objective
    }

    public mutating func onTrialAdd(_ trial: Int, config: TrialConfig) { configs[trial] = config }

    public mutating func onResult(_ trial: Int, iteration: Int, metrics: [String: Double]) -> SchedulerDecision {
        guard let score = objective.score(metrics) else { return .continue }
        latest[trial] = score
        guard iteration % perturbationInterval == 0 else { return .continue }
        let ranked = latest.sorted { $0.value == $1.value ? $0.key < $1.key : $0.value > $1.value }.map(\.key)
        // As in Ray: ceil(n · quantile) trials at each end, at most half the population.
        let size = min(Int((Double(ranked.count) * quantile).rounded(.up)), ranked.count / 2)
        guard size >= 1 else { return .continue }
        let top = Array(ranked.prefix(size)), bottom = Set(ranked.suffix(size))
        guard bottom.contains(trial) else { return .continue }
        let donor = top[Int(random.next() % UInt64(top.count))]
        let config = explore(configs[donor] ?? TrialConfig())
        configs[trial] = config
        // Its score stays until its next result, so one weak trial is not copied over and over
        // by the others reporting at the same step.
        return .exploit(donor: donor, config: config)
    }

    public mutating func onTrialComplete(_ trial: Int) { latest[trial] = nil }

    /// Only the score is recorded: replaying exploits would draw new configs.
    public mutating func replay(_ trial: Int, iteration: Int, metrics: [String: Double]) {
        if let score = objective.score(metrics) { latest[trial] = score }
    }

    /// The donor's config with each mutated parameter resampled or perturbed.
    mutating func explore(_ donor: TrialConfig) -> TrialConfig {
        var config = donor
        for leaf in mutations.leaves {
            if random.unit() < resampleProbability || config[leaf.path] == nil {
                config[leaf.path] = leaf.domain.sample(&random)
                continue
            }
            let current = config[leaf.path]!
            let up = random.next() & 1 == 1
            switch leaf.domain {
            case let .choice(values), let .grid(values):
                let index = values.firstIndex(of: current) ?? 0
                config[leaf.path] = values[min(values.count - 1, max(0, index + (up ? 1 : -1)))]
            default:
                switch current {
                case let .int(value): config[leaf.path] = .int(Int((Double(value) * (up ? 1.2 : 0.8)).rounded()))
                case let .double(value): config[leaf.path] = .double(value * (up ? 1.2 : 0.8))
                default: config[leaf.path] = leaf.domain.sample(&random)
                }
            }
        }
        return config
    }
}

enum Percentile {
    /// The `percent` percentile with linear interpolation (numpy's default); nil when empty.
    static func of(_ values: [Double], _ percent: Double) -> Double? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        let position = percent / 100 * Double(sorted.count - 1)
        let lower = Int(position.rounded(.down)), upper = min(sorted.count - 1, lower + 1)
        return sorted[lower] + (sorted[upper] - sorted[lower]) * (position - Double(lower))
    }
}
