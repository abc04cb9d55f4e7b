import Foundation
import Starling

/// Runs a hyperparameter sweep on a cluster: each trial is an actor running the trainable,
/// trials run in parallel as far as the cluster's resources allow, and everything is saved
/// under `RunConfig.storagePath/RunConfig.name` so a crashed driver can `resume`.
///
/// ```swift
/// let tuner = Tuner(MLP.self,
///                   space: ["lr": .logUniform(1e-3, 0.3), "hidden": .choice([32, 64, 128])],
///                   tuneConfig: TuneConfig(metric: "accuracy", mode: .max, numSamples: 32,
///                                          scheduler: ASHAScheduler(gracePeriod: 2, maxIterations: 20)),
///                   runConfig: RunConfig(name: "digits", checkpointFrequency: 1))
/// let results = try await tuner.fit(on: cluster)
/// print(results.bestResult!.config)
/// ```
public struct Tuner: Sendable {
    let spec: TrainableSpec
    let space: SearchSpace
    public let tuneConfig: TuneConfig
    public let runConfig: RunConfig

    /// A sweep of a `Trainable` type.
    public init<T: Trainable>(_ trainable: T.Type, space: SearchSpace, tuneConfig: TuneConfig, runConfig: RunConfig = RunConfig()) {
        spec = TrainableSpec(kind: .trainable, typeName: _mangledTypeName(trainable) ?? String(reflecting: trainable))
        self.space = space
        self.tuneConfig = tuneConfig
        self.runConfig = runConfig
    }

    /// A sweep of a training function (see `TrainingFunction`).
    public init<F: TrainingFunction>(function: F.Type, space: SearchSpace, tuneConfig: TuneConfig, runConfig: RunConfig = RunConfig()) {
        spec = TrainableSpec(kind: .function, typeName: _mangledTypeName(function) ?? String(reflecting: function))
        self.space = space
        self.tuneConfig = tuneConfig
        self.runConfig = runConfig
    }

    /// The experiment's directory.
    public var experimentPath: String { (runConfig.storagePath as NSString).expandingTildeInPath + "/" + runConfig.name }

    /// Whether the experiment directory holds a sweep of this trainable that did not finish.
    public var canResume: Bool {
        guard let state = try? ExperimentDirectory(path: experimentPath).loadState() else { return false }
        return !state.finished && state.trainable == spec
    }

    /// Runs a new sweep (a previous experiment of the same name is replaced) and returns its results.
    public func fit(on cluster: Cluster) async throws -> ResultGrid {
        let directory = ExperimentDirectory(path: experimentPath)
        try validate()
        var searcher = tuneConfig.searcher
        try searcher.setUp(space: space, objective: tuneConfig.objective, numSamples: tuneConfig.numSamples, seed: tuneConfig.seed)
        let state = ExperimentDirectory.State(name: runConfig.name, trainable: spec, objective: tuneConfig.objective,
                                              numSamples: tuneConfig.numSamples, seed: tuneConfig.seed,
                                              searcher: "\(type(of: tuneConfig.searcher))", scheduler: "\(type(of: tuneConfig.scheduler))",
                                              startedAt: Date(), finished: false, trials: [])
        // Every setting is checked before a previous experiment of this name is replaced.
        let run = try makeRun(state: state, directory: directory, searcher: searcher)
        try directory.create()
        try directory.clear()
        try directory.saveState(state)
        return try await execute(run, on: cluster)
    }

    /// Continues the experiment in `experimentPath` after its driver stopped: finished trials
    /// are kept as they are, unfinished ones continue from their last checkpoints, and new
    /// trials are added until the sweep has all of its trials.
    public func resume(on cluster: Cluster) async throws -> ResultGrid {
        let directory = ExperimentDirectory(path: experimentPath)
        try validate()
        guard let state = try directory.loadState() else {
            throw TuneError.experiment(path: experimentPath, reason: "there is no experiment_state.json to resume from")
        }
        guard state.trainable == spec else {
            throw TuneError.experiment(path: experimentPath, reason: "it was a sweep of \(state.trainable.typeName), not of \(spec.typeName)")
        }
        guard state.objective == tuneConfig.objective else {
            throw TuneError.experiment(path: experimentPath, reason: "its objective was \(state.objective.mode.rawValue) \(state.objective.metric), not \(tuneConfig.mode.rawValue) \(tuneConfig.metric)")
        }
        var searcher = tuneConfig.searcher
        try searcher.setUp(space: space, objective: tuneConfig.objective, numSamples: state.numSamples, seed: state.seed)
        var resumed = state
        resumed.finished = false
        let run = try makeRun(state: resumed, directory: directory, searcher: searcher)
        await run.restore()
        return try await execute(run, on: cluster)
    }

    private func validate() throws {
        guard tuneConfig.numSamples >= 1 else { throw TuneError.invalidSetting("numSamples must be at least 1 (it is \(tuneConfig.numSamples))") }
        if let limit = tuneConfig.maxConcurrentTrials, limit < 1 {
            throw TuneError.invalidSetting("maxConcurrentTrials must be at least 1 (it is \(limit))")
        }
        guard runConfig.checkpointFrequency >= 0, runConfig.maxFailures >= 0 else {
            throw TuneError.invalidSetting("checkpointFrequency and maxFailures cannot be negative")
        }
        guard !runConfig.name.isEmpty, !runConfig.name.contains("/") else {
            throw TuneError.invalidSetting("the experiment name \"\(runConfig.name)\" must be non-empty, without '/'")
        }
        if spec.kind == .trainable, runConfig.stopAfterIterations == nil, runConfig.stopAtMetric == nil, tuneConfig.scheduler.horizon == nil {
            throw TuneError.invalidSetting("a Trainable sweep needs an end: set RunConfig.stopAfterIterations (or stopAtMetric), or use a scheduler with a horizon such as ASHAScheduler")
        }
        if tuneConfig.scheduler is PopulationBasedTraining, runConfig.checkpointFrequency == 0 {
            throw TuneError.invalidSetting("PopulationBasedTraining copies checkpoints: set RunConfig.checkpointFrequency (1 is simplest)")
        }
    }

    private func makeRun(state: ExperimentDirectory.State, directory: ExperimentDirectory, searcher: any Searcher) throws -> SweepRun {
        var scheduler = tuneConfig.scheduler
        try scheduler.setUp(objective: tuneConfig.objective)
        var config = tuneConfig
        config.scheduler = scheduler
        return SweepRun(state: state, directory: directory, space: space, tuneConfig: config, runConfig: runConfig,
                        searcher: searcher, total: searcher.totalTrials)
    }

    private func execute(_ run: SweepRun, on cluster: Cluster) async throws -> ResultGrid {
        let lanes = try await laneCount(cluster, total: await run.total)
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for lane in 0..<lanes {
                    group.addTask { try await TrialLane(lane: lane, run: run, cluster: cluster, spec: spec, runConfig: runConfig).work() }
                }
                try await group.waitForAll()
            }
        } catch {
            // The lanes were cancelled and could not release what they held; this task can
            // (unless it is cancelled too: then the job's end releases them).
            let held = await run.takeHeld()
            for runner in held.runners { try? await cluster.kill(runner) }
            for group in held.groups { try? await cluster.remove(group) }
            throw error
        }
        return try await run.complete()
    }

    /// Trials at once: the configured limit, else how many trials the cluster's resources fit.
    private func laneCount(_ cluster: Cluster, total: Int) async throws -> Int {
        if let limit = tuneConfig.maxConcurrentTrials { return max(1, min(limit, total)) }
        var capacity: [String: Double] = [:]
        for node in try await cluster.nodes() {
            for (name, amount) in node.resources { capacity[name, default: 0] += amount }
        }
        var need: [String: Double] = [:]
        for bundle in runConfig.bundlesPerTrial ?? [runConfig.resourcesPerTrial] {
            for (name, amount) in bundle { need[name, default: 0] += amount }
        }
        let fits = need.filter { $0.value > 0 }.map { Int(((capacity[$0.key] ?? 0) / $0.value).rounded(.down)) }.min() ?? total
        return max(1, min(fits, total))
    }
}

/// One slot of the sweep: runs trials one after another in its trial actor.
struct TrialLane: Sendable {
    let lane: Int
    let run: SweepRun
    let cluster: Cluster
    let spec: TrainableSpec
    let runConfig: RunConfig

    func work() async throws {
        var runner: TrialRunner?
        while true {
            try Task.checkCancellation()
            guard let launch = try await run.nextTrial() else { break }
            try await runTrial(launch, &runner)
            if !runConfig.reuseActors, let used = runner {
                try? await cluster.kill(used)
                runner = nil
                await run.hold(lane: lane, runner: nil)
            }
        }
        // Killed here, not left to the job's end: the next sweep of this job needs the resources.
        if let runner {
            try? await cluster.kill(runner)
            await run.hold(lane: lane, runner: nil)
        }
    }

    /// Runs one trial to its end. With bundles per trial, the trial gets a placement group of
    /// its own; its actor and group are released when it ends.
    private func runTrial(_ launch: SweepRun.Launch, _ runner: inout TrialRunner?) async throws {
        var group: PlacementGroup?
        try await runTrial(launch, &runner, &group)
        guard let used = group else { return }
        if let actor = runner { try? await cluster.kill(actor) }
        runner = nil
        await run.hold(lane: lane, runner: nil)
        try? await cluster.remove(used)
        await run.hold(lane: lane, group: nil)
    }

    private func runTrial(_ launch: SweepRun.Launch, _ runner: inout TrialRunner?, _ group: inout PlacementGroup?) async throws {
        var start = launch.start
        while true {
            do {
                if let bundles = runConfig.bundlesPerTrial, group == nil {
                    // Held before waiting for it, so it is removed even if the wait fails.
                    let created = try await cluster.createPlacementGroup(bundles, strategy: runConfig.placementStrategy)
                    group = created
                    await run.hold(lane: lane, group: created)
                    _ = try await cluster.ready(created)
                }
                if runner == nil {
                    var options = ActorOptions(resources: runConfig.resourcesPerTrial)
                    if let group, let bundles = runConfig.bundlesPerTrial {
                        options = ActorOptions(resources: bundles.first ?? [:], scheduling: .placementGroup(try await cluster.ready(group), bundle: 0))
                    }
                    let spawned = try await cluster.spawn(TrialRunner.self, config: spec, options: options)
                    runner = spawned
                    await run.hold(lane: lane, runner: spawned)
                }
                if let group { start.context = await run.context(launch.trial, group: try await cluster.ready(group)) }
                try await runner!.start(start)
                var iteration = start.iteration
                stepping: while true {
                    iteration += 1
                    let wantCheckpoint = runConfig.checkpointFrequency > 0 && iteration % runConfig.checkpointFrequency == 0
                    let reply = try await runner!.step(checkpoint: wantCheckpoint)
                    switch try await run.report(launch.trial, reply) {
                    case .next:
                        continue
                    case .finished:
                        try? await runner!.finish()
                        return
                    case let .restart(next):
                        start = next
                        if let group { start.context = await run.context(launch.trial, group: try await cluster.ready(group)) }
                        try await runner!.start(start)
                        iteration = start.iteration
                        continue stepping
                    }
                }
            } catch {
                // A cancelled sweep leaves the trial as it was (running): a resume continues it.
                if Task.isCancelled || error is CancellationError { throw error }
                switch error {
                case TuneError.experiment:
                    // The experiment's own files failed: the sweep cannot go on.
                    throw error
                case StarlingError.actorDied, StarlingError.cluster:
                    // The worker (or its node) died: a new actor continues from the checkpoint.
                    if let dead = runner { try? await cluster.kill(dead) }
                    runner = nil
                    await run.hold(lane: lane, runner: nil)
                    guard let retry = try await run.failed(launch.trial, error: error, retryable: true) else { return }
                    start = retry
                default:
                    try await run.errored(launch.trial, error: error)
                    return
                }
            }
        }
    }
}
