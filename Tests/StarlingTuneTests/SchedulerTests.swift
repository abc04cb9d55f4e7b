import Testing
@testable import StarlingTune

/// Feeds `curves[trial][iteration - 1]` to a scheduler round by round (every trial's first
/// iteration, then every trial's second, …) and returns, per trial, the iteration at which it
/// was stopped (nil: it ran through).
func stops<S: TrialScheduler>(_ scheduler: inout S, _ curves: [[Double]], metric: String = "m") -> [Int?] {
    var stoppedAt = [Int?](repeating: nil, count: curves.count)
    for trial in curves.indices { scheduler.onTrialAdd(trial, config: [:]) }
    let longest = curves.map(\.count).max() ?? 0
    for iteration in 1...longest {
        for trial in curves.indices where stoppedAt[trial] == nil && iteration <= curves[trial].count {
            if scheduler.onResult(trial, iteration: iteration, metrics: [metric: curves[trial][iteration - 1]]) == .stop {
                stoppedAt[trial] = iteration
                scheduler.onTrialComplete(trial)
            }
        }
    }
    return stoppedAt
}

@Suite("Schedulers on synthetic learning curves")
struct SchedulerTests {
    @Test("FIFO never stops a trial")
    func fifo() throws {
        var scheduler = FIFOScheduler()
        try scheduler.setUp(objective: Objective(metric: "m", mode: .max))
        #expect(stops(&scheduler, [[0, 0, 0], [9, 9, 9]]) == [nil, nil])
    }

    @Test("ASHA rungs sit at grace · factor^k below the horizon")
    func ashaMilestones() throws {
        var scheduler = ASHAScheduler(gracePeriod: 1, maxIterations: 10, reductionFactor: 3)
        try scheduler.setUp(objective: Objective(metric: "m", mode: .max))
        #expect(scheduler.milestones == [1, 3, 9])
        var other = ASHAScheduler(gracePeriod: 2, maxIterations: 20, reductionFactor: 2)
        try other.setUp(objective: Objective(metric: "m", mode: .max))
        #expect(other.milestones == [2, 4, 8, 16])
    }

    @Test("ASHA stops a trial below the top third at a rung, keeps the others, and stops all at the horizon")
    func ashaDecisions() throws {
        var scheduler = ASHAScheduler(gracePeriod: 1, maxIterations: 9, reductionFactor: 3)
        try scheduler.setUp(objective: Objective(metric: "m", mode: .max))
        // Flat curves, judged in trial order at rung 1: 0.9 (first, kept); 0.1 (< 0.9); 0.5
        // (< 0.633, the 66.7th percentile of {0.9, 0.1}); 0.8 (>= 0.633 of {0.9, 0.1, 0.5}).
        // At rung 3: 0.9 is first (kept); 0.8 < 0.9 stops. 0.9 ends at the horizon, 9.
        let curves: [[Double]] = [Array(repeating: 0.9, count: 12), Array(repeating: 0.1, count: 12),
                                  Array(repeating: 0.5, count: 12), Array(repeating: 0.8, count: 12)]
        #expect(stops(&scheduler, curves) == [9, 1, 1, 3])
    }

    @Test("ASHA in min mode keeps the smallest losses")
    func ashaMinMode() throws {
        var scheduler = ASHAScheduler(gracePeriod: 2, maxIterations: 4, reductionFactor: 2)
        try scheduler.setUp(objective: Objective(metric: "loss", mode: .min))
        // Rung 2: trial 0 (loss 1.0) first; trial 1 (3.0) worse than the median 1.0: stopped;
        // trial 2 (0.5) better than the median of {1.0, 3.0}: kept. Both survivors end at 4.
        let curves: [[Double]] = [[2, 1, 1, 1, 1], [4, 3, 3, 3, 3], [1, 0.5, 0.5, 0.5, 0.5]]
        #expect(stops(&scheduler, curves, metric: "loss") == [4, 2, 4])
    }

    @Test("ASHA ignores results without its metric and rejects bad settings")
    func ashaEdges() throws {
        var scheduler = ASHAScheduler(gracePeriod: 1, maxIterations: 5)
        try scheduler.setUp(objective: Objective(metric: "m", mode: .max))
        #expect(scheduler.onResult(0, iteration: 1, metrics: ["other": 1]) == .continue)
        var bad = ASHAScheduler(gracePeriod: 5, maxIterations: 2)
        #expect(throws: TuneError.self) { try bad.setUp(objective: Objective(metric: "m", mode: .max)) }
    }

    @Test("median stopping stops a trial whose best is below the median of the others' running means")
    func medianStopping() throws {
        var scheduler = MedianStoppingScheduler(gracePeriod: 2, minSamples: 2)
        try scheduler.setUp(objective: Objective(metric: "m", mode: .max))
        // At iteration 2, trials 0 and 1 have running means 1.5 and 2.5 (median 2.0); trial 2's
        // best (1.0) is below: stopped. Trial 3's best (3.0) is above: it runs on. Trials 0
        // and 1 report first in each round, when fewer than two others have reached that
        // iteration, so they are never judged.
        let curves: [[Double]] = [[1, 2, 3, 4], [2, 3, 4, 5], [1, 1, 1, 1], [2, 3, 4, 5]]
        #expect(stops(&scheduler, curves) == [nil, nil, 2, nil])
    }

    @Test("median stopping keys scores by iteration: a trial continued from a checkpoint reports again without counting twice")
    func medianStoppingRepeats() throws {
        var scheduler = MedianStoppingScheduler(gracePeriod: 1, minSamples: 1)
        try scheduler.setUp(objective: Objective(metric: "m", mode: .max))
        _ = scheduler.onResult(0, iteration: 1, metrics: ["m": 1])
        _ = scheduler.onResult(0, iteration: 2, metrics: ["m": 100])   // then rolled back to iteration 1
        _ = scheduler.onResult(0, iteration: 2, metrics: ["m": 2])
        #expect(scheduler.history[0] == [1: 1, 2: 2])
        // Trial 1 (best 1.6) is judged against trial 0's running mean at 2: (1 + 2) / 2 = 1.5.
        _ = scheduler.onResult(1, iteration: 1, metrics: ["m": 1.6])
        #expect(scheduler.onResult(1, iteration: 2, metrics: ["m": 1.0]) == .continue)
    }

    @Test("PBT needs a population: with two trials and quantile 0.25 one end of one trial each (Ray's rule)")
    func pbtSmallPopulation() throws {
        var scheduler = PopulationBasedTraining(perturbationInterval: 1, quantile: 0.25, resampleProbability: 0, mutations: ["lr": .uniform(0, 1)])
        try scheduler.setUp(objective: Objective(metric: "m", mode: .max))
        scheduler.onTrialAdd(0, config: ["lr": 0.2])
        scheduler.onTrialAdd(1, config: ["lr": 0.9])
        #expect(scheduler.onResult(1, iteration: 1, metrics: ["m": 9]) == .continue, "one trial alone is no population")
        guard case let .exploit(donor, _) = scheduler.onResult(0, iteration: 1, metrics: ["m": 1]) else {
            Issue.record("the weaker of two trials should exploit the stronger")
            return
        }
        #expect(donor == 1)
    }

    @Test("PBT: at a perturbation step the bottom-quantile trial copies a top-quantile trial and perturbs its config")
    func pbtExploit() throws {
        var scheduler = PopulationBasedTraining(perturbationInterval: 2, quantile: 0.25, resampleProbability: 0,
                                                mutations: ["lr": .uniform(0.001, 1)], seed: 1)
        try scheduler.setUp(objective: Objective(metric: "m", mode: .max))
        let rates = [0.1, 0.2, 0.3, 0.4]
        for trial in 0..<4 { scheduler.onTrialAdd(trial, config: ["lr": .double(rates[trial])]) }
        // Every trial's score is its rate. Iteration 1 is no perturbation step; at iteration 2
        // trial 0 is the bottom quarter of the four and trial 3 the top.
        for trial in 0..<4 { #expect(scheduler.onResult(trial, iteration: 1, metrics: ["m": rates[trial]]) == .continue) }
        let decision = scheduler.onResult(0, iteration: 2, metrics: ["m": rates[0]])
        guard case let .exploit(donor, config) = decision else {
            Issue.record("trial 0 should exploit, got \(decision)")
            return
        }
        #expect(donor == 3)
        let lr = try config.double("lr")
        #expect(abs(lr - 0.4 * 0.8) < 1e-12 || abs(lr - 0.4 * 1.2) < 1e-12, "lr \(lr) should be 0.4 × 0.8 or × 1.2")
        // The others are not in the bottom quantile: they go on.
        for trial in 1..<4 { #expect(scheduler.onResult(trial, iteration: 2, metrics: ["m": rates[trial]]) == .continue) }
        // Off the perturbation interval nothing happens, even for the worst trial.
        #expect(scheduler.onResult(1, iteration: 3, metrics: ["m": 0]) == .continue)
    }

    @Test("PBT resamples a parameter from its domain with resampleProbability 1, and moves choices to a neighbour")
    func pbtExplore() throws {
        var resampling = PopulationBasedTraining(perturbationInterval: 1, resampleProbability: 1,
                                                 mutations: ["lr": .uniform(5, 6)], seed: 2)
        try resampling.setUp(objective: Objective(metric: "m", mode: .max))
        let explored = resampling.explore(["lr": 0.1, "other": "kept"])
        #expect(try (5..<6).contains(explored.double("lr")))
        #expect(explored["other"] == "kept")

        var neighbouring = PopulationBasedTraining(perturbationInterval: 1, resampleProbability: 0,
                                                   mutations: ["width": .choice([16, 32, 64])], seed: 3)
        try neighbouring.setUp(objective: Objective(metric: "m", mode: .max))
        for _ in 0..<20 {
            let width = try neighbouring.explore(["width": 32]).int("width")
            #expect(width == 16 || width == 64)
        }
    }

    @Test("PBT is reproducible with a seed")
    func pbtSeeded() throws {
        func run(seed: UInt64) throws -> [SchedulerDecision] {
            var scheduler = PopulationBasedTraining(perturbationInterval: 1, quantile: 0.5, mutations: ["lr": .logUniform(1e-3, 1)], seed: seed)
            try scheduler.setUp(objective: Objective(metric: "m", mode: .max))
            for trial in 0..<6 { scheduler.onTrialAdd(trial, config: ["lr": .double(Double(trial + 1) / 10)]) }
            var decisions: [SchedulerDecision] = []
            for iteration in 1...4 {
                for trial in 0..<6 { decisions.append(scheduler.onResult(trial, iteration: iteration, metrics: ["m": Double(trial * iteration)])) }
            }
            return decisions
        }
        #expect(try run(seed: 5) == run(seed: 5))
        #expect(try run(seed: 5).contains { if case .exploit = $0 { return true } else { return false } })
    }
}
