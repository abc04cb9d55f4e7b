import Foundation

/// What a sweep optimises: one reported metric, maximised or minimised.
public struct Objective: Sendable, Hashable, Codable {
    public enum Mode: String, Sendable, Hashable, Codable {
        case max, min

        /// The value turned so that larger is always better.
        func oriented(_ value: Double) -> Double { self == .max ? value : -value }
    }
    public var metric: String
    public var mode: Mode

    public init(metric: String, mode: Mode) {
        self.metric = metric
        self.mode = mode
    }

    /// The metric turned so that larger is always better (nil when absent or not finite).
    func score(_ metrics: [String: Double]) -> Double? {
        guard let value = metrics[metric], value.isFinite else { return nil }
        return mode.oriented(value)
    }
}

/// Proposes trial configs. Searchers are plain values, driven by the tuner on the driver.
public protocol Searcher: Sendable {
    /// Called once before the first suggestion.
    mutating func setUp(space: SearchSpace, objective: Objective, numSamples: Int, seed: UInt64) throws
    /// How many trials the sweep runs in all.
    var totalTrials: Int { get }
    /// The config of trial number `trial` (0, 1, 2, …), or nil when the searcher has none.
    mutating func suggest(trial: Int) -> TrialConfig?
    /// A trial ended; `score` is its best objective value, larger is better (nil: none reported).
    mutating func onTrialComplete(trial: Int, config: TrialConfig, score: Double?)
}

/// Random search, with `grid` domains expanded: every grid point runs `numSamples` times and
/// the other domains are sampled for each trial (Ray's basic variant generator).
public struct RandomSearch: Searcher {
    var space = SearchSpace()
    var points: [[(path: String, value: ConfigValue)]] = [[]]
    var samples = 1
    var seed: UInt64 = 0

    public init() {}

    public mutating func setUp(space: SearchSpace, objective: Objective, numSamples: Int, seed: UInt64) throws {
        try space.validate()
        self.space = space
        points = space.gridPoints
        samples = numSamples
        self.seed = seed
    }

    public var totalTrials: Int { points.count * samples }

    public mutating func suggest(trial: Int) -> TrialConfig? {
        guard trial < totalTrials else { return nil }
        // Each trial's draws come from its own stream, so a resumed sweep proposes the same
        // configs whatever order the earlier trials were suggested in.
        var random = SeededRandom.derived(from: seed, UInt64(trial))
        var config = space.sample(&random)
        for fixed in points[trial % points.count] { config[fixed.path] = fixed.value }
        return config
    }

    public mutating func onTrialComplete(trial: Int, config: TrialConfig, score: Double?) {}
}

/// Grid search: every `grid` and every `choice` domain is an axis of the grid; each grid point
/// runs `numSamples` times, with the continuous domains sampled per trial.
public struct GridSearch: Searcher {
    var inner = RandomSearch()

    public init() {}

    public mutating func setUp(space: SearchSpace, objective: Objective, numSamples: Int, seed: UInt64) throws {
        try inner.setUp(space: GridSearch.choicesAsGrid(space), objective: objective, numSamples: numSamples, seed: seed)
    }

    static func choicesAsGrid(_ space: SearchSpace) -> SearchSpace {
        SearchSpace(space.domains.mapValues { domain in
            switch domain {
            case let .choice(values): return .grid(values)
            case let .nested(inner): return .nested(choicesAsGrid(inner))
            default: return domain
            }
        })
    }

    public var totalTrials: Int { inner.totalTrials }
    public mutating func suggest(trial: Int) -> TrialConfig? { inner.suggest(trial: trial) }
    public mutating func onTrialComplete(trial: Int, config: TrialConfig, score: Double?) {}
}

/// A tree-structured Parzen estimator (TPE): after `initialRandom` random trials, each
/// parameter is drawn from a density fitted to the best `gamma` share of finished trials,
/// picking among `candidates` draws the one most likely under the good density relative to
/// the rest. Grid domains are treated as choices.
public struct TPESearch: Searcher {
    public var initialRandom: Int
    public var gamma: Double
    public var candidates: Int
    var space = SearchSpace()
    var samples = 1
    var seed: UInt64 = 0
    var finished: [(config: TrialConfig, score: Double)] = []

    public init(initialRandom: Int = 8, gamma: Double = 0.25, candidates: Int = 24) {
        self.initialRandom = initialRandom
        self.gamma = gamma
        self.candidates = candidates
    }

    public mutating func setUp(space: SearchSpace, objective: Objective, numSamples: Int, seed: UInt64) throws {
        try space.validate()
        guard gamma > 0, gamma < 1, candidates > 0, initialRandom >= 0 else {
            throw TuneError.invalidSetting("TPESearch needs 0 < gamma < 1 (it is \(gamma)), candidates > 0 and initialRandom >= 0")
        }
        self.space = space
        samples = numSamples
        self.seed = seed
    }

    public var totalTrials: Int { samples }

    public mutating func suggest(trial: Int) -> TrialConfig? {
        guard trial < samples else { return nil }
        var random = SeededRandom.derived(from: seed, UInt64(trial))
        guard finished.count >= max(initialRandom, 2) else { return space.sample(&random) }
        let ranked = finished.sorted { $0.score > $1.score }
        let goodCount = max(1, Int((gamma * Double(ranked.count)).rounded(.up)))
        let good = ranked.prefix(goodCount).map(\.config), bad = ranked.dropFirst(goodCount).map(\.config)
        var config = TrialConfig()
        for leaf in space.leaves {
            config[leaf.path] = propose(leaf.path, leaf.domain, good: good, bad: bad, &random)
        }
        return config
    }

    public mutating func onTrialComplete(trial: Int, config: TrialConfig, score: Double?) {
        if let score { finished.append((config, score)) }
    }

    private func propose(_ path: String, _ domain: Domain, good: [TrialConfig], bad: [TrialConfig],
                         _ random: inout SeededRandom) -> ConfigValue {
        switch domain {
        case .fixed, .nested:
            return domain.sample(&random)
        case let .choice(values), let .grid(values):
            let goodWeights = Self.categorical(values, good.compactMap { $0[path] })
            let badWeights = Self.categorical(values, bad.compactMap { $0[path] })
            var best = values[0], bestRatio = -Double.infinity
            for _ in 0..<candidates {
                let index = Self.pick(goodWeights, &random)
                let ratio = log(goodWeights[index]) - log(badWeights[index])
                if ratio > bestRatio { bestRatio = ratio; best = values[index] }
            }
            return best
        case let .uniform(low, high):
            // The upper bound is excluded, as in sampling.
            let value = continuous(path, low, high, transform: { $0 }, inverse: { $0 }, good: good, bad: bad, &random)
            return .double(min(high.nextDown, max(low, value)))
        case let .logUniform(low, high):
            let value = continuous(path, log(low), log(high), transform: { log($0) }, inverse: { exp($0) }, good: good, bad: bad, &random)
            return .double(min(high, max(low, value)))
        case let .randInt(low, high):
            let value = continuous(path, Double(low), Double(high) - 1e-9, transform: { $0 }, inverse: { $0 }, good: good, bad: bad, &random)
            return .int(min(high - 1, max(low, Int(value.rounded(.down)))))
        }
    }

    /// Draws `candidates` values near the good observations (in the transformed space) and
    /// returns the one with the largest good-to-bad density ratio.
    private func continuous(_ path: String, _ low: Double, _ high: Double, transform: (Double) -> Double,
                            inverse: (Double) -> Double, good: [TrialConfig], bad: [TrialConfig],
                            _ random: inout SeededRandom) -> Double {
        let goodPoints = good.compactMap { $0[path]?.doubleValue }.map(transform)
        let badPoints = bad.compactMap { $0[path]?.doubleValue }.map(transform)
        let width = high - low
        guard !goodPoints.isEmpty else { return inverse(low + width * random.unit()) }
        let goodSigma = width * 0.5 * pow(Double(goodPoints.count + 1), -0.2)
        let badSigma = width * 0.5 * pow(Double(badPoints.count + 1), -0.2)
        var best = goodPoints[0], bestRatio = -Double.infinity
        for _ in 0..<candidates {
            // One part in (n + 1) of the mixture is the uniform prior, so the search keeps exploring.
            let candidate: Double
            if Int(random.next() % UInt64(goodPoints.count + 1)) == goodPoints.count {
                candidate = low + width * random.unit()
            } else {
                let centre = goodPoints[Int(random.next() % UInt64(goodPoints.count))]
                candidate = min(high, max(low, centre + goodSigma * random.normal()))
            }
            let ratio = log(Self.density(candidate, goodPoints, goodSigma, width)) - log(Self.density(candidate, badPoints, badSigma, width))
            if ratio > bestRatio { bestRatio = ratio; best = candidate }
        }
        return inverse(best)
    }

    /// A Gaussian mixture over `points` plus one uniform component over the range.
    static func density(_ x: Double, _ points: [Double], _ sigma: Double, _ width: Double) -> Double {
        var total = 1 / width
        for point in points {
            let z = (x - point) / sigma
            total += exp(-0.5 * z * z) / (sigma * (2 * Double.pi).squareRoot())
        }
        return total / Double(points.count + 1)
    }

    /// Smoothed frequencies of each value among `observed` (each value starts with a count of one).
    static func categorical(_ values: [ConfigValue], _ observed: [ConfigValue]) -> [Double] {
        var counts = [Double](repeating: 1, count: values.count)
        for value in observed { if let index = values.firstIndex(of: value) { counts[index] += 1 } }
        let total = counts.reduce(0, +)
        return counts.map { $0 / total }
    }

    static func pick(_ weights: [Double], _ random: inout SeededRandom) -> Int {
        var target = random.unit()
        for (index, weight) in weights.enumerated() {
            target -= weight
            if target < 0 { return index }
        }
        return weights.count - 1
    }
}
