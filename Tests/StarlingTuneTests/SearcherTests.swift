import Foundation
import Testing
@testable import StarlingTune

let space: SearchSpace = [
    "lr": .logUniform(1e-4, 1e-1),
    "dropout": .uniform(0, 0.5),
    "layers": .randInt(1, 4),
    "width": .choice([32, 64, 128]),
    "optimizer": .nested(["momentum": .uniform(0.8, 0.99), "name": .fixed("sgd")]),
]
let objective = Objective(metric: "m", mode: .max)

func suggestions<S: Searcher>(_ searcher: S, seed: UInt64, count: Int, space: SearchSpace = space) throws -> [TrialConfig] {
    var searcher = searcher
    try searcher.setUp(space: space, objective: objective, numSamples: count, seed: seed)
    return (0..<searcher.totalTrials).compactMap { searcher.suggest(trial: $0) }
}

@Suite("Search spaces and searchers")
struct SearcherTests {
    @Test("random search samples every parameter within its domain, nested ones included")
    func withinBounds() throws {
        let configs = try suggestions(RandomSearch(), seed: 1, count: 200)
        #expect(configs.count == 200)
        for config in configs {
            #expect(space.contains(config), "\(config)")
            #expect(try (1e-4...1e-1).contains(config.double("lr")))
            #expect(try (1..<4).contains(config.int("layers")))
            #expect(try config.string("optimizer.name") == "sgd")
        }
        // Log-uniform: about half the draws fall below the geometric midpoint (1e-2.5).
        let below = try configs.filter { try $0.double("lr") < pow(10, -2.5) }.count
        #expect((70...130).contains(below), "\(below) of 200 below the log-midpoint")
        #expect(Set(configs.map { $0["width"] }).count == 3)
    }

    @Test("the same seed gives the same configs; another seed other ones")
    func reproducible() throws {
        #expect(try suggestions(RandomSearch(), seed: 42, count: 20) == suggestions(RandomSearch(), seed: 42, count: 20))
        #expect(try suggestions(RandomSearch(), seed: 42, count: 20) != suggestions(RandomSearch(), seed: 43, count: 20))
        #expect(try suggestions(TPESearch(initialRandom: 3), seed: 9, count: 12) == suggestions(TPESearch(initialRandom: 3), seed: 9, count: 12))
    }

    @Test("grid domains are expanded: each point runs numSamples times")
    func grid() throws {
        let gridSpace: SearchSpace = ["a": .grid([1, 2, 3]), "b": .grid(["x", "y"]), "c": .uniform(0, 1)]
        let configs = try suggestions(RandomSearch(), seed: 0, count: 2, space: gridSpace)
        #expect(configs.count == 12)
        var counts: [String: Int] = [:]
        for config in configs { counts["\(config["a"]!)\(config["b"]!)", default: 0] += 1 }
        #expect(counts.count == 6 && counts.values.allSatisfy { $0 == 2 }, "\(counts)")
    }

    @Test("grid search makes choices grid axes too")
    func gridSearch() throws {
        let configs = try suggestions(GridSearch(), seed: 0, count: 1, space: ["w": .choice([1, 2]), "g": .grid([10, 20, 30]), "u": .uniform(0, 1)])
        #expect(configs.count == 6)
        #expect(Set(configs.map { "\($0["w"]!)-\($0["g"]!)" }).count == 6)
    }

    @Test("malformed domains fail naming the parameter")
    func invalid() throws {
        var searcher = RandomSearch()
        #expect(throws: TuneError.invalidSpace(parameter: "lr", reason: "logUniform(0.0, 1.0) needs 0 < lower < upper")) {
            try searcher.setUp(space: ["lr": .logUniform(0, 1)], objective: objective, numSamples: 1, seed: 0)
        }
        #expect(throws: TuneError.self) { try searcher.setUp(space: ["g": .nested(["w": .choice([])])], objective: objective, numSamples: 1, seed: 0) }
        #expect(throws: TuneError.self) { try searcher.setUp(space: ["n": .randInt(3, 3)], objective: objective, numSamples: 1, seed: 0) }
    }

    @Test("TPE stays within bounds and, fed results, proposes near the optimum more than random search does")
    func tpe() throws {
        let oneD: SearchSpace = ["x": .uniform(0, 1), "kind": .choice(["good", "bad"])]
        func value(_ config: TrialConfig) throws -> Double {
            -pow(try config.double("x") - 0.3, 2) - (try config.string("kind") == "good" ? 0 : 0.2)
        }
        func run<S: Searcher>(_ searcher: S) throws -> [TrialConfig] {
            var searcher = searcher
            try searcher.setUp(space: oneD, objective: objective, numSamples: 60, seed: 11)
            var configs: [TrialConfig] = []
            for trial in 0..<60 {
                let suggested = searcher.suggest(trial: trial)
                let config = try #require(suggested)
                #expect(oneD.contains(config), "\(config)")
                searcher.onTrialComplete(trial: trial, config: config, score: try value(config))
                configs.append(config)
            }
            return configs
        }
        let late = { (configs: [TrialConfig]) throws -> Double in
            try configs.suffix(30).map { abs(try $0.double("x") - 0.3) }.reduce(0, +) / 30
        }
        let tpeDistance = try late(run(TPESearch())), randomDistance = try late(run(RandomSearch()))
        #expect(tpeDistance < randomDistance * 0.6, "TPE's late proposals are \(tpeDistance) from the optimum, random search's \(randomDistance)")
        let goodShare = try run(TPESearch()).suffix(30).filter { try $0.string("kind") == "good" }.count
        #expect(goodShare >= 20, "\(goodShare) of the last 30 TPE proposals pick the better choice")
    }

    @Test("configs read typed values, dotted paths, and round-trip through JSON as plain values")
    func configValues() throws {
        var config: TrialConfig = ["lr": 0.1, "layers": 3, "name": "mlp", "flag": true]
        config["optimizer.momentum"] = 0.9
        #expect(try config.double("optimizer.momentum") == 0.9)
        #expect(try config.double("layers") == 3)
        #expect(throws: TuneError.wrongParameterType("name", expected: "a number", found: "mlp")) { try config.double("name") }
        #expect(throws: TuneError.self) { try config.int("missing") }
        let json = try JSONEncoder().encode(config)
        let text = String(decoding: json, as: UTF8.self)
        #expect(text.contains("\"lr\":0.1") && text.contains("\"momentum\":0.9") && text.contains("\"flag\":true"), "\(text)")
        let back = try JSONDecoder().decode(TrialConfig.self, from: json)
        #expect(try back.double("lr") == 0.1 && back.int("layers") == 3 && back.bool("flag") && back.string("name") == "mlp")
    }
}
