import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing
@testable import StarlingTune

/// Collects element names and attributes while parsing.
final class SVGCollector: NSObject, XMLParserDelegate {
    var elements: [(name: String, attributes: [String: String])] = []
    func parser(_ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?, qualifiedName: String?,
                attributes: [String: String] = [:]) {
        elements.append((elementName, attributes))
    }
}

func record(_ id: Int, _ curve: [Double], status: TrialStatus = .terminated) -> TrialRecord {
    var trial = TrialRecord(id: id, config: ["lr": .double(Double(id) / 10), "name": "a<b&c"])
    trial.status = status
    trial.history = curve.enumerated().map { TrialResult(iteration: $0.offset + 1, elapsed: Double($0.offset), metrics: ["acc": $0.element]) }
    trial.iterations = curve.count
    trial.lastMetrics = ["acc": curve.last ?? 0]
    trial.bestMetric = curve.max()
    return trial
}

@Suite("Experiment output")
struct OutputTests {
    @Test("the learning-curve plot is well-formed SVG with one line per trial and the best one highlighted")
    func plotIsValidSVG() throws {
        let trials = [record(0, [0.1, 0.5, 0.7]), record(1, [0.2, 0.9, 0.95]), record(2, [0.05], status: .stopped), record(3, [])]
        let text = LearningCurvePlot.svg(trials, objective: Objective(metric: "acc", mode: .max), title: "sweep <1>")
        let parser = XMLParser(data: Data(text.utf8))
        let collector = SVGCollector()
        parser.delegate = collector
        #expect(parser.parse(), "the SVG does not parse: \(String(describing: parser.parserError))")
        #expect(collector.elements.first?.name == "svg")
        #expect(collector.elements.first?.attributes["xmlns"] == "http://www.w3.org/2000/svg")
        let lines = collector.elements.filter { $0.name == "polyline" }
        #expect(lines.count == 3, "trials with results get a line each")
        let highlighted = lines.filter { $0.attributes["stroke"] == "#d62728" }
        #expect(highlighted.count == 1)
        #expect(highlighted.first?.attributes["points"]?.split(separator: " ").count == 3)
    }

    @Test("the results table has a row per trial and names the best")
    func table() {
        let trials = [record(0, [0.1, 0.5]), record(1, [0.2, 0.9])]
        let grid = ResultGrid(path: "/tmp/x", objective: Objective(metric: "acc", mode: .max), trials: trials, wallSeconds: 1)
        #expect(grid.bestResult?.id == 1)
        #expect(grid.best(metric: "acc", mode: .min)?.id == 0)
        let lines = grid.table.split(separator: "\n")
        #expect(lines.count == 4, "\(grid.table)")
        #expect(lines[1].contains("best acc") && lines[3].hasPrefix("trial_0001"))
    }

    @Test("checkpoint files carry their iteration with the bytes")
    func checkpointFile() {
        let file = CheckpointFile.encode(iteration: 258, [1, 2, 3])
        #expect(CheckpointFile.decode(file)?.iteration == 258)
        #expect(CheckpointFile.decode(file)?.bytes == [1, 2, 3])
        #expect(CheckpointFile.decode([1, 2]) == nil)
    }

    @Test("Checkpoint packs numbers and refuses a ragged byte count")
    func packing() throws {
        #expect(try Checkpoint.unpack(Checkpoint.pack([1.5, -2.0]), as: Double.self) == [1.5, -2.0])
        #expect(throws: TuneError.self) { try Checkpoint.unpack([1, 2, 3], as: Float.self) }
    }
}

@Suite("Experiment files")
struct ExperimentFileTests {
    @Test("NaN and infinite metrics are written and read back, and rewinding keeps the results up to a checkpoint")
    func nonFiniteMetrics() throws {
        let root = NSTemporaryDirectory() + "starling-tune-files-" + UUID().uuidString.prefix(8)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let directory = ExperimentDirectory(path: root)
        try directory.create()
        try directory.startTrial(TrialRecord(id: 3, config: ["lr": 0.5]))
        let files = TrialFiles(directory: directory.trialDirectory(3))
        for iteration in 1...4 {
            try files.append(TrialResult(iteration: iteration, elapsed: Double(iteration),
                                         metrics: ["loss": iteration == 3 ? .nan : 1 / Double(iteration), "big": .infinity]))
        }
        files.close()
        let all = directory.loadResults(trial: 3, upTo: nil)
        #expect(all.map(\.iteration) == [1, 2, 3, 4])
        #expect(all[2].metrics["loss"]?.isNaN == true && all[0].metrics["big"] == .infinity)
        let rewound = directory.loadResults(trial: 3, upTo: 2)
        #expect(rewound.map(\.iteration) == [1, 2])
        #expect(directory.loadResults(trial: 3, upTo: nil).map(\.iteration) == [1, 2], "the files now end at the checkpoint")
        let csv = try String(contentsOfFile: directory.trialDirectory(3) + "/progress.csv", encoding: .utf8)
        #expect(csv.split(separator: "\n").count == 3, "\(csv)")
    }

    @Test("a journal's last record of a trial wins; a line cut short is skipped")
    func journal() throws {
        let root = NSTemporaryDirectory() + "starling-tune-journal-" + UUID().uuidString.prefix(8)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let directory = ExperimentDirectory(path: root)
        try directory.create()
        let state = ExperimentDirectory.State(name: "x", trainable: TrainableSpec(kind: .trainable, typeName: "T"),
                                              objective: Objective(metric: "m", mode: .max), numSamples: 2, seed: 0,
                                              searcher: "RandomSearch", scheduler: "FIFOScheduler", startedAt: Date(), finished: false, trials: [])
        try directory.saveState(state)
        var first = TrialRecord(id: 0, config: ["lr": 0.1])
        first.status = .running
        var done = first
        done.status = .terminated
        done.lastMetrics = ["m": .nan]
        let journal = try AppendFile(directory.journalPath)
        for record in [first, done] { try journal.append(TuneJSON.encoder().encode(record) + Data([10])) }
        try journal.append(Data("{\"id\":1,\"sta".utf8))
        journal.close()
        let loaded = try #require(try directory.loadState())
        #expect(loaded.trials.count == 1)
        #expect(loaded.trials[0].status == .terminated)
        #expect(loaded.trials[0].lastMetrics["m"]?.isNaN == true)
    }

    @Test("configs read back from JSON get their domains' kinds again")
    func normalize() {
        let space: SearchSpace = ["lr": .uniform(0, 2), "scale": .choice([0.5, 1.0]), "n": .randInt(1, 5)]
        let fromJSON: TrialConfig = ["lr": .int(1), "scale": .int(1), "n": .int(3)]
        let normal = space.normalize(fromJSON)
        #expect(normal["lr"] == .double(1))
        #expect(normal["scale"] == .double(1.0))
        #expect(normal["n"] == .int(3))
        #expect(space.contains(normal))
    }
}
