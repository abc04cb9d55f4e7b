import Foundation
import Starling
import StarlingTune

// The main job: a hyperparameter sweep of a small MLP on the digits data set. ASHA stops the
// weak trials early; the best trial's checkpoint is then scored on the held-out test split.
//
//   swift run -c release Sweep [--trials 32] [--epochs 20] [--searcher random|tpe]
//                              [--name digits-sweep] [--storage DIR] [--progress auto|table|lines|none]
//
// With STARLING_ADDRESS set it runs on that cluster instead of an embedded one. If the
// experiment directory holds an unfinished sweep (its driver was killed), it resumes it.

struct Options {
    var trials = 32, epochs = 20
    var searcher = "random"
    var name = "digits-sweep"
    var storage: String?
    var progress = ProgressOutput.auto
    var seed: UInt64 = 7

    init(_ arguments: [String]) throws {
        var rest = arguments[...]
        func value(_ flag: String) throws -> String {
            guard let next = rest.popFirst() else { throw SweepError.usage("\(flag) needs a value") }
            return next
        }
        while let flag = rest.popFirst() {
            switch flag {
            case "--trials": trials = try Self.positive(flag, value(flag))
            case "--epochs": epochs = try Self.positive(flag, value(flag))
            case "--searcher":
                searcher = try value(flag)
                guard ["random", "tpe"].contains(searcher) else { throw SweepError.usage("--searcher is random or tpe, not \(searcher)") }
            case "--name": name = try value(flag)
            case "--storage": storage = try value(flag)
            case "--seed": seed = UInt64(try Self.positive(flag, value(flag)))
            case "--progress":
                switch try value(flag) {
                case "auto": progress = .auto
                case "table": progress = .table
                case "lines": progress = .lines
                case "none": progress = .none
                case let other: throw SweepError.usage("--progress is auto, table, lines or none, not \(other)")
                }
            default: throw SweepError.usage("unknown option \(flag); options: --trials N --epochs N --searcher random|tpe --name NAME --storage DIR --seed N --progress MODE")
            }
        }
    }

    static func positive(_ flag: String, _ text: String) throws -> Int {
        guard let number = Int(text), number > 0 else { throw SweepError.usage("\(flag) needs a positive integer, not \(text)") }
        return number
    }
}

@main
struct SweepExample {
    static func main() async {
        await Starling.runOrExit { cluster in
            let options = try Options(Array(CommandLine.arguments.dropFirst()))
            let data = try Digits.shared.get()
            let space: SearchSpace = [
                "lr": .logUniform(1e-3, 0.5),
                "hidden": .choice([16, 32, 64, 128]),
                "batch_size": .choice([16, 32, 64, 128]),
                "weight_decay": .logUniform(1e-6, 1e-2),
                "momentum": .fixed(0.9),
            ]
            // Trials on machines without the CSV fetch the data from this actor.
            _ = try await cluster.spawn(DigitsServer.self, config: data, options: .init(name: DigitsServer.name))
            let searcher: any Searcher = options.searcher == "tpe" ? TPESearch() : RandomSearch()
            let tuner = Tuner(DigitsTrainable.self, space: space,
                              tuneConfig: TuneConfig(metric: "accuracy", mode: .max, numSamples: options.trials, searcher: searcher,
                                                     scheduler: ASHAScheduler(gracePeriod: 2, maxIterations: options.epochs, reductionFactor: 3),
                                                     seed: options.seed),
                              runConfig: RunConfig(name: options.name, storagePath: options.storage, checkpointFrequency: 1,
                                                   progress: options.progress))
            print("sweep: \(options.trials) trials of an MLP on digits (\(data.train.count) train / \(data.validation.count) validation / \(data.test.count) test), ASHA over \(options.epochs) epochs, \(options.searcher) search")
            let clock = ContinuousClock(), started = clock.now
            let results: ResultGrid
            if tuner.canResume {
                print("sweep: resuming the unfinished experiment in \(tuner.experimentPath)")
                results = try await tuner.resume(on: cluster)
            } else {
                results = try await tuner.fit(on: cluster)
            }
            guard let best = results.bestResult, let bytes = results.checkpoint(of: best) else {
                throw SweepError.data("no trial reported an accuracy; errors: \(results.errors.map { "\($0.name): \($0.error ?? "")" })")
            }
            let model = try MLP(checkpoint: bytes)
            let test = model.evaluate(data.test)
            let iterations = results.trials.reduce(0) { $0 + $1.iterations }
            print("sweep: \(results.trials.count) trials, \(iterations) epochs in all, in \(clock.now - started)")
            print("best trial: \(best.name) \(best.config)")
            print(String(format: "best validation accuracy %.4f; test accuracy of its last checkpoint (epoch %d): %.4f (%d examples)",
                         best.bestMetric ?? 0, best.checkpointIteration ?? 0, test.accuracy, data.test.count))
            print("results: \(results.path) (results.txt, learning_curves.svg, trial_*/)")
        }
    }
}
