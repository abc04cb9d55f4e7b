import Foundation
import Starling

/// The driver-side state of one sweep: trials, searcher, scheduler, files and progress.
/// Trial lanes ask it for work and report to it; it alone mutates the experiment.
actor SweepRun {
    /// What a lane does next with its trial.
    enum Directive: Sendable {
        case next
        /// The trial ended (its status is set).
        case finished
        /// Restart the trial's trainable from this start (a PBT exploit).
        case restart(TrialStart)
    }

    struct Launch: Sendable {
        let trial: Int
        let start: TrialStart
    }

    let objective: Objective
    let space: SearchSpace
    let runConfig: RunConfig
    let directory: ExperimentDirectory
    var state: ExperimentDirectory.State
    var searcher: any Searcher
    var scheduler: any TrialScheduler
    var progress: ProgressTable
    var total: Int
    var created = 0
    var waitingRestart: [Int] = []
    var checkpoints: [Int: (iteration: Int, bytes: [UInt8])] = [:]
    var startedAt: [Int: ContinuousClock.Instant] = [:]
    var files: [Int: TrialFiles] = [:]
    var journal: AppendFile?
    let journalEncoder = TuneJSON.encoder()
    var elapsedBefore: [Int: Double] = [:]
    let clock = ContinuousClock()
    let began: ContinuousClock.Instant

    /// Trial actors and placement groups the lanes hold, by lane: released by the tuner when
    /// the sweep ends early (a cancelled lane cannot release its own).
    var heldRunners: [Int: TrialRunner] = [:]
    var heldGroups: [Int: PlacementGroup] = [:]

    init(state: ExperimentDirectory.State, directory: ExperimentDirectory, space: SearchSpace, tuneConfig: TuneConfig,
         runConfig: RunConfig, searcher: any Searcher, total: Int) {
        self.state = state
        self.space = space
        self.directory = directory
        self.objective = tuneConfig.objective
        self.runConfig = runConfig
        self.searcher = searcher
        self.scheduler = tuneConfig.scheduler
        self.total = total
        progress = ProgressTable(output: runConfig.progress, objective: tuneConfig.objective, total: total)
        began = ContinuousClock().now
    }

    var trials: [TrialRecord] { state.trials }

    /// Rebuilds the in-memory state of a resumed experiment: finished trials stay as they are,
    /// unfinished ones wait to continue from their checkpoints; the searcher and scheduler see
    /// the recorded history again.
    func restore() {
        created = state.trials.count
        for index in state.trials.indices {
            let id = state.trials[index].id
            // JSON does not keep 1.0 apart from 1: give each value its domain's kind again.
            state.trials[index].config = space.normalize(state.trials[index].config)
            _ = searcher.suggest(trial: id)
            var keepUpTo: Int?
            var saved: (iteration: Int, bytes: [UInt8])?
            if !state.trials[index].status.isFinished {
                saved = directory.loadCheckpoint(trial: id).flatMap(CheckpointFile.decode)
                keepUpTo = saved?.iteration ?? 0
                state.trials[index].status = .pending
                waitingRestart.append(id)
            }
            var history = directory.loadResults(trial: id, upTo: keepUpTo)
            if let checkpoint = saved, (history.last?.iteration ?? 0) != checkpoint.iteration {
                // The results on disk end before the checkpoint (cut short): start over rather
                // than number new results from the wrong iteration.
                saved = nil
                history = directory.loadResults(trial: id, upTo: 0)
            }
            if let saved { checkpoints[id] = saved }
            state.trials[index].checkpointIteration = saved?.iteration
            state.trials[index].history = history
            state.trials[index].iterations = history.last?.iteration ?? 0
            state.trials[index].lastMetrics = history.last?.metrics ?? [:]
            state.trials[index].bestMetric = best(of: history)
            elapsedBefore[id] = history.last?.elapsed ?? 0
            scheduler.onTrialAdd(id, config: state.trials[index].config)
            for result in history { scheduler.replay(id, iteration: result.iteration, metrics: result.metrics) }
            if state.trials[index].status.isFinished {
                scheduler.onTrialComplete(id)
                searcher.onTrialComplete(trial: id, config: state.trials[index].config, score: score(state.trials[index]))
            }
        }
    }

    /// The next trial to run: one waiting to continue, else a new one from the searcher.
    func nextTrial() throws -> Launch? {
        if !waitingRestart.isEmpty {
            let id = waitingRestart.removeFirst()
            let index = try indexOf(id)
            state.trials[index].status = .running
            startedAt[id] = clock.now
            try save(id)
            progress.event(state.trials[index], "continues from iteration \(state.trials[index].iterations)", trials: state.trials)
            return Launch(trial: id, start: start(for: index))
        }
        guard created < total, let config = searcher.suggest(trial: created) else { return nil }
        var record = TrialRecord(id: created, config: config)
        record.status = .running
        created += 1
        state.trials.append(record)
        scheduler.onTrialAdd(record.id, config: config)
        try directory.startTrial(record)
        startedAt[record.id] = clock.now
        try save(record.id)
        progress.event(record, "started with \(config)", trials: state.trials)
        return Launch(trial: record.id, start: start(for: state.trials.count - 1))
    }

    private func start(for index: Int) -> TrialStart {
        let record = state.trials[index]
        let saved = checkpoints[record.id]
        return TrialStart(config: record.config, context: context(record.id, group: nil), checkpoint: saved?.bytes,
                          iteration: saved?.iteration ?? 0)
    }

    func context(_ trial: Int, group: PlacementGroup?) -> TrialContext {
        TrialContext(trialID: trial, trialName: String(format: "trial_%04d", trial), directory: directory.trialDirectory(trial),
                     placementGroup: group)
    }

    /// Records one iteration and decides what the trial does next.
    func report(_ trial: Int, _ reply: StepReply) throws -> Directive {
        if reply.done { return try finish(trial, .terminated) }
        let index = try indexOf(trial)
        let iteration = state.trials[index].iterations + 1
        let result = TrialResult(iteration: iteration, elapsed: elapsed(trial), metrics: reply.metrics)
        state.trials[index].iterations = iteration
        state.trials[index].lastMetrics = reply.metrics
        state.trials[index].history.append(result)
        state.trials[index].elapsed = result.elapsed
        if let value = reply.metrics[objective.metric], value.isFinite {
            let previous = state.trials[index].bestMetric
            if previous.map({ objective.mode.oriented(value) > objective.mode.oriented($0) }) ?? true { state.trials[index].bestMetric = value }
        }
        if files[trial] == nil { files[trial] = TrialFiles(directory: directory.trialDirectory(trial)) }
        try files[trial]!.append(result)
        if let bytes = reply.checkpoint {
            checkpoints[trial] = (iteration, bytes)
            state.trials[index].checkpointIteration = iteration
            try directory.saveCheckpoint(CheckpointFile.encode(iteration: iteration, bytes), trial: trial)
        }
        progress.tick(state.trials)

        if iteration == 1, reply.metrics[objective.metric] == nil {
            state.trials[index].error = "\(TuneError.missingMetric(objective.metric, reported: reply.metrics.keys.sorted()))"
            return try finish(trial, .error)
        }
        let decision = scheduler.onResult(trial, iteration: iteration, metrics: reply.metrics)
        if let limit = runConfig.stopAfterIterations, iteration >= limit { return try finish(trial, .terminated) }
        if let target = runConfig.stopAtMetric, let value = reply.metrics[objective.metric],
           objective.mode.oriented(value) >= objective.mode.oriented(target) {
            return try finish(trial, .terminated)
        }
        switch decision {
        case .continue:
            return .next
        case .stop:
            let normalEnd = scheduler.horizon.map { iteration >= $0 } ?? false
            return try finish(trial, normalEnd ? .terminated : .stopped)
        case let .exploit(donor, config):
            guard let copied = checkpoints[donor] else {
                // Without a checkpoint of the donor there is nothing to copy: the trial goes on
                // as it was, and the scheduler is told so.
                scheduler.onTrialAdd(trial, config: state.trials[index].config)
                return .next
            }
            state.trials[index].config = config
            state.trials[index].exploitedFrom.append(donor)
            checkpoints[trial] = (iteration, copied.bytes)
            state.trials[index].checkpointIteration = iteration
            try directory.saveCheckpoint(CheckpointFile.encode(iteration: iteration, copied.bytes), trial: trial)
            try directory.startTrial(state.trials[index])
            try save(trial)
            progress.event(state.trials[index], "copies \(String(format: "trial_%04d", donor)) at iteration \(iteration), now \(config)", trials: state.trials)
            return .restart(TrialStart(config: config, context: context(trial, group: nil), checkpoint: copied.bytes, iteration: iteration))
        }
    }

    /// The trial's worker died (or its actor could not start): the start to retry with, from
    /// its last checkpoint, or nil once `maxFailures` is used up (the trial is then an error).
    func failed(_ trial: Int, error: Error, retryable: Bool) throws -> TrialStart? {
        let index = try indexOf(trial)
        guard retryable, state.trials[index].failures < runConfig.maxFailures else {
            state.trials[index].error = "\(error)"
            _ = try finish(trial, .error)
            return nil
        }
        state.trials[index].failures += 1
        let saved = checkpoints[trial]
        let keep = saved?.iteration ?? 0
        state.trials[index].history = directory.loadResults(trial: trial, upTo: keep)
        state.trials[index].iterations = keep
        state.trials[index].lastMetrics = state.trials[index].history.last?.metrics ?? [:]
        state.trials[index].bestMetric = best(of: state.trials[index].history)
        files[trial]?.close()
        files[trial] = nil
        try save(trial)
        progress.event(state.trials[index], "lost its worker (\(error)); restarting from \(saved.map { "the checkpoint of iteration \($0.iteration)" } ?? "the beginning") (failure \(state.trials[index].failures) of \(runConfig.maxFailures) allowed)", trials: state.trials)
        return start(for: index)
    }

    /// The trial's trainable threw: it ends as an error.
    func errored(_ trial: Int, error: Error) throws {
        let index = try indexOf(trial)
        state.trials[index].error = "\(error)"
        _ = try finish(trial, .error)
    }

    private func finish(_ trial: Int, _ status: TrialStatus) throws -> Directive {
        let index = try indexOf(trial)
        state.trials[index].status = status
        state.trials[index].elapsed = elapsed(trial)
        startedAt[trial] = nil
        checkpoints[trial] = checkpoints[trial].flatMap { saved in
            // Population-based training may still copy a finished trial's state.
            (scheduler is PopulationBasedTraining) ? saved : nil
        }
        scheduler.onTrialComplete(trial)
        searcher.onTrialComplete(trial: trial, config: state.trials[index].config, score: score(state.trials[index]))
        files[trial]?.close()
        files[trial] = nil
        try save(trial)
        let record = state.trials[index]
        var message = "\(status.rawValue) after \(record.iterations) iterations"
        if let best = record.bestMetric { message += ", best \(objective.metric) \(ProgressTable.number(best))" }
        if let error = record.error { message += ": \(error)" }
        progress.event(record, message, trials: state.trials)
        return .finished
    }

    func hold(lane: Int, runner: TrialRunner?) { heldRunners[lane] = runner }
    func hold(lane: Int, group: PlacementGroup?) { heldGroups[lane] = group }

    /// What the lanes still hold, emptied.
    func takeHeld() -> (runners: [TrialRunner], groups: [PlacementGroup]) {
        defer { heldRunners = [:]; heldGroups = [:] }
        return (Array(heldRunners.values), Array(heldGroups.values))
    }

    /// Writes the summary, the results table and the plot; marks the experiment finished.
    func complete() throws -> ResultGrid {
        state.finished = true
        try directory.saveState(state)
        journal?.close()
        progress.finish(state.trials)
        let wall = (clock.now - began).seconds
        let grid = ResultGrid(path: directory.path, objective: objective, trials: state.trials, wallSeconds: wall)
        try directory.write(grid.table, to: "results.txt")
        try directory.write(LearningCurvePlot.svg(state.trials, objective: objective, title: state.name), to: "learning_curves.svg")
        try directory.write(grid.summaryJSON, to: "summary.json")
        return grid
    }

    /// The experiment's progress as user metrics (`tune_trials{experiment,status}` and
    /// `tune_best_metric{experiment,metric}`): the head's dashboard and `/metrics` show them.
    private func publishProgress() {
        let counts = state.trials.statusCounts
        for status in TrialStatus.displayOrder {
            Metrics.Gauge("tune_trials", description: "Trials of a Tune experiment by status",
                          tags: ["experiment": state.name, "status": status.rawValue]).set(Double(counts[status] ?? 0))
        }
        if let best = ProgressTable.best(state.trials, objective)?.bestMetric {
            Metrics.Gauge("tune_best_metric", description: "Best value of a Tune experiment's objective so far",
                          tags: ["experiment": state.name, "metric": objective.metric]).set(best)
        }
    }

    /// Records one trial's current state in the journal (one line; the whole state file is
    /// written only at the start and the end).
    private func save(_ trial: Int) throws {
        let record = state.trials[try indexOf(trial)]
        publishProgress()
        if journal == nil { journal = try AppendFile(directory.journalPath) }
        var line = try journalEncoder.encode(record)
        line.append(10)
        try journal!.append(line)
    }

    private func indexOf(_ trial: Int) throws -> Int {
        guard let index = state.trials.firstIndex(where: { $0.id == trial }) else {
            throw TuneError.experiment(path: directory.path, reason: "no trial \(trial)")
        }
        return index
    }

    private func elapsed(_ trial: Int) -> Double {
        (elapsedBefore[trial] ?? 0) + (startedAt[trial].map { (clock.now - $0).seconds } ?? 0)
    }

    private func best(of history: [TrialResult]) -> Double? {
        let values = history.compactMap { $0.metrics[objective.metric] }.filter(\.isFinite)
        return values.max { objective.mode.oriented($0) < objective.mode.oriented($1) }
    }

    private func score(_ record: TrialRecord) -> Double? {
        record.bestMetric.map(objective.mode.oriented)
    }
}

/// A checkpoint file: the iteration it was taken after (8 bytes, little-endian), then the
/// trainable's bytes. The iteration travels with the bytes, so a resume never pairs a
/// checkpoint with another iteration's count.
enum CheckpointFile {
    static func encode(iteration: Int, _ bytes: [UInt8]) -> [UInt8] {
        withUnsafeBytes(of: UInt64(iteration).littleEndian) { Array($0) } + bytes
    }

    static func decode(_ file: [UInt8]) -> (iteration: Int, bytes: [UInt8])? {
        guard file.count >= 8 else { return nil }
        let iteration = file.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard iteration < UInt64(Int32.max) else { return nil }  // not a checkpoint file of ours
        return (Int(iteration), Array(file.dropFirst(8)))
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}
