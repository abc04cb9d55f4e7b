#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Starling
import StarlingTune

/// Counts its steps; the count is its checkpoint. Each step sleeps `sleep_ms` and records
/// "pid iteration" in `<dir>/progress`, and every start (fresh or from a checkpoint) appends
/// "trial iteration" to `<dir>/starts.log`, so tests can see restarts and resumes.
struct CountingTrainable: Trainable {
    var count = 0
    let sleep: Int
    let directory: String
    let trial: Int

    init(config: TrialConfig, context: TrialContext) throws {
        sleep = try config.int("sleep_ms")
        directory = try config.string("dir")
        trial = context.trialID
    }

    mutating func step() async throws -> [String: Double] {
        if count == 0 { appendStart() }  // a fresh start (a restore logs its own line)
        try await Task.sleep(for: .milliseconds(sleep))
        count += 1
        try "\(getpid()) \(count)".write(toFile: directory + "/progress-\(trial)", atomically: true, encoding: .utf8)
        return ["count": Double(count), "pid": Double(getpid()), "score": Double(count) * (1 + Double(trial % 3))]
    }

    func save() throws -> [UInt8] { Checkpoint.pack([count]) }

    mutating func restore(from checkpoint: [UInt8]) throws {
        count = try Checkpoint.unpack(checkpoint, as: Int.self)[0]
        appendStart()
    }

    func appendStart() {
        let line = "\(trial) \(count)\n"
        let fd = open(directory + "/starts.log", O_WRONLY | O_APPEND | O_CREAT, 0o644)
        if fd >= 0 { _ = line.withCString { write(fd, $0, strlen($0)) }; close(fd) }
    }
}

/// Climbs by `lr` a step (of 100 ms, so the population runs side by side); its height is its
/// score and its checkpoint.
struct Climber: Trainable {
    var height = 0.0
    let rate: Double
    /// The height a checkpoint gave it, reported once with the next step (the PBT test checks
    /// it is a height the donor reported).
    var restored: Double?
    init(config: TrialConfig, context: TrialContext) throws { rate = try config.double("lr") }
    mutating func step() async throws -> [String: Double] {
        try await Task.sleep(for: .milliseconds(100))
        height += rate
        defer { restored = nil }
        return restored.map { ["height": height, "restored_height": $0] } ?? ["height": height]
    }
    func save() throws -> [UInt8] { Checkpoint.pack([height]) }
    mutating func restore(from checkpoint: [UInt8]) throws {
        height = try Checkpoint.unpack(checkpoint, as: Double.self)[0]
        restored = height
    }
}

/// Uses its trial's placement group: runs a task in bundle 1 each step.
struct BundleUser: Trainable {
    let context: TrialContext
    init(config: TrialConfig, context: TrialContext) throws { self.context = context }
    mutating func step() async throws -> [String: Double] {
        guard let group = context.placementGroup else { return ["bundles": 0] }
        let cluster = try Cluster.current()
        let square = try await cluster.get(cluster.submit(Square.self, 7, options: .init(scheduling: .placementGroup(group, bundle: 1))))
        return ["bundles": Double(group.bundles.count), "square": Double(square)]
    }
    func save() throws -> [UInt8] { [] }
    mutating func restore(from checkpoint: [UInt8]) throws {}
}

/// The function-style API: reports `quality · step` for up to `steps` iterations.
enum LinearFunction: TrainingFunction {
    static func train(config: TrialConfig, reporter: Reporter) async throws {
        let quality = try config.double("quality")
        for step in 1...(try config.int("steps")) {
            try await reporter.report(["score": quality * Double(step)])
        }
    }
}

enum TuneScenarios {
    static func run(_ scenario: String, _ arguments: [String], _ cluster: Cluster) async throws -> String? {
        switch scenario {
        case "tune-worker-killed":
            // One trial of 8 steps; its worker is killed with SIGKILL once the driver holds the
            // checkpoint of step 3 or later (the killer returns that step).
            let directory = arguments[0]
            let killer = Task { () -> Int in
                let checkpoint = directory + "/killed/trial_0000/checkpoint.bin"
                while !Task.isCancelled {
                    if let bytes = FileManager.default.contents(atPath: checkpoint), bytes.count >= 8,
                       case let step = Int(bytes.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }), step >= 3,
                       let text = try? String(contentsOfFile: directory + "/progress-0", encoding: .utf8),
                       let pid = text.split(separator: " ").first.flatMap({ Int32($0) }) {
                        kill(pid, SIGKILL)
                        return step
                    }
                    try? await Task.sleep(for: .milliseconds(10))
                }
                return -1
            }
            defer { killer.cancel() }
            let tuner = Tuner(CountingTrainable.self, space: ["sleep_ms": .fixed(300), "dir": .fixed(.string(directory))],
                              tuneConfig: TuneConfig(metric: "count", mode: .max, numSamples: 1),
                              runConfig: RunConfig(name: "killed", storagePath: directory, stopAfterIterations: 8, checkpointFrequency: 1, progress: .none))
            let results = try await tuner.fit(on: cluster)
            let trial = results.trials[0]
            let counts = trial.history.map { String(Int($0.metrics["count"] ?? -1)) }.joined(separator: ",")
            let pids = Set(trial.history.compactMap { $0.metrics["pid"] }).count
            return "status=\(trial.status.rawValue) failures=\(trial.failures) iterations=\(trial.iterations) counts=\(counts) pids=\(pids) killedAfter=\(await killer.value)"

        case "tune-resume":
            // Six trials of six 300 ms steps, two at a time; the test kills this driver midway
            // and runs it again, which resumes.
            let directory = arguments[0]
            let tuner = Tuner(CountingTrainable.self, space: ["sleep_ms": .fixed(300), "dir": .fixed(.string(directory))],
                              tuneConfig: TuneConfig(metric: "score", mode: .max, numSamples: 6, maxConcurrentTrials: 2),
                              runConfig: RunConfig(name: "resumable", storagePath: directory, stopAfterIterations: 6, checkpointFrequency: 1, progress: .lines))
            let resumed = tuner.canResume
            let results = try await (resumed ? tuner.resume(on: cluster) : tuner.fit(on: cluster))
            let summary = results.trials.map { "\($0.status.rawValue):\($0.iterations):\($0.history.map { String(Int($0.metrics["count"] ?? -1)) }.joined(separator: "."))" }
            return "resumed=\(resumed) " + summary.joined(separator: " ")

        case "tune-function-asha":
            // Eight function trials of quality 8…1, one at a time, under ASHA (grace 1, max 4, factor 2).
            let directory = arguments[0]
            let tuner = Tuner(function: LinearFunction.self,
                              space: ["quality": .grid([8, 7, 6, 5, 4, 3, 2, 1]), "steps": .fixed(4)],
                              tuneConfig: TuneConfig(metric: "score", mode: .max, numSamples: 1, maxConcurrentTrials: 1,
                                                     scheduler: ASHAScheduler(gracePeriod: 1, maxIterations: 4, reductionFactor: 2)),
                              runConfig: RunConfig(name: "function", storagePath: directory, progress: .none))
            let results = try await tuner.fit(on: cluster)
            let rows = results.trials.map { "\(Int((try? $0.config.double("quality")) ?? 0)):\($0.status.rawValue):\($0.iterations)" }
            // The experiment's progress reached the head as metrics.
            let metrics = try await cluster.metrics(prefix: "tune_").filter { $0.tags["experiment"] == "function" }
            let byStatus = metrics.filter { $0.name == "tune_trials" }.sorted { ($0.tags["status"] ?? "") < ($1.tags["status"] ?? "") }
                .map { "\($0.tags["status"] ?? "?")=\(Int($0.value))" }.joined(separator: ",")
            let best = metrics.first { $0.name == "tune_best_metric" }?.value ?? -1
            return rows.joined(separator: " ") + " best=\(results.bestResult.map { Int((try? $0.config.double("quality")) ?? 0) } ?? 0)"
                + " metrics=\(byStatus) best_metric=\(best)"

        case "tune-bad-metric":
            // The sweep optimises "acc"; the function reports "score".
            let tuner = Tuner(function: LinearFunction.self, space: ["quality": .grid([1, 2]), "steps": .fixed(3)],
                              tuneConfig: TuneConfig(metric: "acc", mode: .max),
                              runConfig: RunConfig(name: "bad-metric", storagePath: arguments[0], progress: .none))
            let results = try await tuner.fit(on: cluster)
            return results.trials.map { "\($0.status.rawValue):\($0.iterations):\($0.error ?? "")" }.joined(separator: " | ")

        case "tune-pbt":
            // Four climbers; every 2 steps the slowest copies the fastest's height.
            let directory = arguments[0]
            let tuner = Tuner(Climber.self, space: ["lr": .grid([0.1, 0.2, 0.3, 1.0])],
                              tuneConfig: TuneConfig(metric: "height", mode: .max, numSamples: 1, maxConcurrentTrials: 4,
                                                     scheduler: PopulationBasedTraining(perturbationInterval: 2, quantile: 0.25, resampleProbability: 0,
                                                                                        mutations: ["lr": .uniform(0.01, 2)], seed: 3)),
                              runConfig: RunConfig(name: "pbt", storagePath: directory, stopAfterIterations: 8, checkpointFrequency: 1,
                                                   progress: .none, resourcesPerTrial: ["CPU": 0.5]))
            let results = try await tuner.fit(on: cluster)
            // A trial that copied another goes on from a height its donor reported (the donor's
            // checkpoint), above its own height before: it jumps to the donor's height.
            var jumps: [String] = []
            for trial in results.trials where !trial.exploitedFrom.isEmpty {
                let donorHeights = results.trials.filter { trial.exploitedFrom.contains($0.id) }
                    .flatMap { $0.history.compactMap { $0.metrics["height"] } }
                var copied = 0, jumpsUp = true
                var previous = 0.0
                for result in trial.history {
                    if let restored = result.metrics["restored_height"] {
                        copied += 1
                        jumpsUp = jumpsUp && donorHeights.contains { abs($0 - restored) < 1e-9 } && restored > previous - 1e-9
                    }
                    previous = result.metrics["height"] ?? previous
                }
                jumps.append("\(trial.id)<-\(trial.exploitedFrom.map(String.init).joined(separator: ",")):\(copied == trial.exploitedFrom.count && jumpsUp)")
            }
            return "exploits=\(results.trials.map(\.exploitedFrom.count).reduce(0, +)) \(jumps.joined(separator: " "))"

        case "tune-bundles":
            // Two trials, each with a placement group of two one-CPU bundles (one at a time on
            // two CPUs); each runs a task in its bundle 1.
            let directory = arguments[0]
            let tuner = Tuner(BundleUser.self, space: ["n": .grid([1, 2])],
                              tuneConfig: TuneConfig(metric: "square", mode: .max),
                              runConfig: RunConfig(name: "bundles", storagePath: directory, stopAfterIterations: 2, progress: .none,
                                                   bundlesPerTrial: [["CPU": 1], ["CPU": 1]]))
            let results = try await tuner.fit(on: cluster)
            // The trials' groups and actors are gone: both CPUs can be had again.
            let whole = try await cluster.ready(cluster.createPlacementGroup([["CPU": 2]]), timeout: .seconds(30))
            let groupsLeft = whole.isReady ? "free" : "held"
            return results.trials.map { "\($0.status.rawValue):\(Int($0.lastMetrics["bundles"] ?? -1)):\(Int($0.lastMetrics["square"] ?? -1))" }.joined(separator: " ")
                + " errors=\(results.errors.map { $0.error ?? "" }) cpus=\(groupsLeft)"

        default:
            return nil
        }
    }
}
