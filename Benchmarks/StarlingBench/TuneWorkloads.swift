import Foundation
import Starling
import StarlingTune

/// Tune workloads (issue 8): 100 trials of a no-op training function that reports 10
/// iterations, each with a random metric; seconds of wall time for `fit` (the cluster is
/// started before the clock starts, as `ray.init` is for Ray's peer), with FIFO and with ASHA
/// (grace period 1, max 10, reduction factor 4). One CPU per trial on a 2-CPU cluster.
/// Ray's peer: `Benchmarks/ray/tune.py`.
enum TuneWorkloads {
    struct Figures: Sendable { var fifo = 0.0, asha = 0.0 }
    // Workloads run one after another from the main task, so these caches are never shared.
    nonisolated(unsafe) static var starling: Figures?
    nonisolated(unsafe) static var ray: [String: Double]?

    static var all: [Workload] {
        [
            Workload(name: "tune_100_trivial_trials_fifo", unit: "s", direction: .lowerIsBetter) { try await figure($0, \.fifo, "tune_100_trivial_trials_fifo") },
            Workload(name: "tune_100_trivial_trials_asha", unit: "s", direction: .lowerIsBetter) { try await figure($0, \.asha, "tune_100_trivial_trials_asha") },
            // The same Starling figures beside Ray Tune with `reuse_actors=True` (Ray's default
            // starts a worker per trial; Starling's Tune reuses trial actors by default).
            Workload(name: "tune_100_trivial_trials_fifo_vs_ray_reuse", unit: "s", direction: .lowerIsBetter) { try await figure($0, \.fifo, "tune_100_trivial_trials_fifo_reuse_actors") },
            Workload(name: "tune_100_trivial_trials_asha_vs_ray_reuse", unit: "s", direction: .lowerIsBetter) { try await figure($0, \.asha, "tune_100_trivial_trials_asha_reuse_actors") },
        ]
    }

    static func figure(_ options: BenchOptions, _ key: KeyPath<Figures, Double>, _ rayKey: String) async throws -> Measurement {
        if starling == nil { starling = try await measure() }
        var measurement = Measurement(value: starling![keyPath: key])
        if options.peer == "ray" {
            if ray == nil { ray = try RayPeer.figures(script: "tune.py") }
            measurement.peer = "ray-2.60"
            measurement.peerValue = ray?[rayKey]
        }
        return measurement
    }

    static func measure() async throws -> Figures {
        let storage = BenchPaths.scratch.appendingPathComponent("tune-\(UInt32.random(in: 0...UInt32.max))").path
        defer { try? FileManager.default.removeItem(atPath: storage) }
        return try await Starling.run(embedded: .init(resources: ["CPU": 2])) { cluster in
            func sweep(_ name: String, _ scheduler: any TrialScheduler) async throws -> Double {
                let tuner = Tuner(function: TrivialTraining.self, space: ["x": .uniform(0, 1)],
                                  tuneConfig: TuneConfig(metric: "score", mode: .max, numSamples: 100, scheduler: scheduler),
                                  runConfig: RunConfig(name: name, storagePath: storage, progress: .none))
                let clock = ContinuousClock()
                let start = clock.now
                let results = try await tuner.fit(on: cluster)
                let seconds = TaskWorkloads.micros(clock.now - start) / 1e6
                guard results.trials.count == 100, results.errors.isEmpty else {
                    throw BenchError.missing("\(name): \(results.trials.count) trials, \(results.errors.count) errors: \(results.errors.first?.error ?? "")")
                }
                return seconds
            }
            return Figures(fifo: try await sweep("fifo", FIFOScheduler()),
                           asha: try await sweep("asha", ASHAScheduler(gracePeriod: 1, maxIterations: 10, reductionFactor: 4)))
        }
    }
}

/// Reports 10 iterations of a random metric and does nothing else.
enum TrivialTraining: TrainingFunction {
    static func train(config: TrialConfig, reporter: Reporter) async throws {
        for _ in 0..<10 { try await reporter.report(["score": Double.random(in: 0..<1)]) }
    }
}
