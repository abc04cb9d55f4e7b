import Foundation

/// The files of one experiment, laid out as Ray Tune's are:
///
///     <storage>/<name>/experiment_state.json   what a resume needs (settings, trials)
///     <storage>/<name>/summary.json            best trial, counts, wall time (at the end)
///     <storage>/<name>/results.txt             the final results table
///     <storage>/<name>/learning_curves.svg     metric per iteration, one line per trial
///     <storage>/<name>/trial_0007/params.json  the trial's config
///     <storage>/<name>/trial_0007/result.json  one JSON object per iteration
///     <storage>/<name>/trial_0007/progress.csv the same as CSV
///     <storage>/<name>/trial_0007/checkpoint.bin  its latest checkpoint
struct ExperimentDirectory: Sendable {
    let path: String

    struct State: Codable {
        var version = 1
        var name: String
        var trainable: TrainableSpec
        var objective: Objective
        var numSamples: Int
        var seed: UInt64
        var searcher: String
        var scheduler: String
        var startedAt: Date
        var finished: Bool
        var trials: [TrialRecord]
    }

    var statePath: String { path + "/experiment_state.json" }
    func trialDirectory(_ trial: Int) -> String { path + "/" + String(format: "trial_%04d", trial) }
    func checkpointPath(_ trial: Int) -> String { trialDirectory(trial) + "/checkpoint.bin" }

    func create() throws {
        do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
            throw TuneError.experiment(path: path, reason: "cannot create the directory: \(error.localizedDescription)")
        }
    }

    /// Removes a previous experiment's trial directories and files (a fresh `fit`).
    func clear() throws {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: path) else { return }
        for entry in entries where entry.hasPrefix("trial_") || ["experiment_state.json", "summary.json", "results.txt", "learning_curves.svg"].contains(entry) {
            try? FileManager.default.removeItem(atPath: path + "/" + entry)
        }
    }

    func loadState() throws -> State? {
        guard let data = FileManager.default.contents(atPath: statePath) else { return nil }
        do {
            let decoder = JSONDecoder()
            decoder.dateDecodingStrategy = .iso8601
            return try decoder.decode(State.self, from: data)
        } catch {
            throw TuneError.experiment(path: path, reason: "experiment_state.json does not parse: \(error)")
        }
    }

    func saveState(_ state: State) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        try writeAtomically(try encoder.encode(state), to: statePath)
    }

    func startTrial(_ record: TrialRecord) throws {
        let directory = trialDirectory(record.id)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try writeAtomically(try encoder.encode(record.config), to: directory + "/params.json")
    }

    /// Appends one result to the trial's `result.json` and `progress.csv` (whose columns are
    /// fixed by the first result).
    func append(_ result: TrialResult, trial: Int) throws {
        let directory = trialDirectory(trial)
        var object: [String: Double] = result.metrics
        object["training_iteration"] = Double(result.iteration)
        object["time_total_s"] = result.elapsed
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var line = try encoder.encode(object)
        line.append(UInt8(ascii: "\n"))
        try appendBytes(line, to: directory + "/result.json")

        let csvPath = directory + "/progress.csv"
        let keys = result.metrics.keys.sorted()
        if !FileManager.default.fileExists(atPath: csvPath) {
            try appendBytes(Data((["training_iteration", "time_total_s"] + keys).joined(separator: ",").utf8 + [10]), to: csvPath)
        }
        let header = csvHeader(csvPath)
        let row = header.map { column -> String in
            switch column {
            case "training_iteration": return String(result.iteration)
            case "time_total_s": return String(format: "%.4f", result.elapsed)
            default: return result.metrics[column].map { "\($0)" } ?? ""
            }
        }
        try appendBytes(Data(row.joined(separator: ",").utf8 + [10]), to: csvPath)
    }

    private func csvHeader(_ csvPath: String) -> [String] {
        guard let handle = FileHandle(forReadingAtPath: csvPath) else { return [] }
        defer { try? handle.close() }
        let head = (try? handle.read(upToCount: 64 * 1024)) ?? Data()
        let firstLine = head.split(separator: 10, maxSplits: 1).first ?? Data()
        return String(decoding: firstLine, as: UTF8.self).split(separator: ",").map(String.init)
    }

    /// The trial's results from `result.json`, up to `iteration` when given; the files are
    /// rewritten to hold just those (a resumed trial reports the later ones again).
    func loadResults(trial: Int, upTo iteration: Int?) -> [TrialResult] {
        let directory = trialDirectory(trial)
        guard let data = FileManager.default.contents(atPath: directory + "/result.json") else { return [] }
        var results: [TrialResult] = []
        for line in data.split(separator: 10) {
            guard var object = try? JSONDecoder().decode([String: Double].self, from: Data(line)),
                  let step = object.removeValue(forKey: "training_iteration") else { continue }
            let elapsed = object.removeValue(forKey: "time_total_s") ?? 0
            results.append(TrialResult(iteration: Int(step), elapsed: elapsed, metrics: object))
        }
        guard let iteration, results.contains(where: { $0.iteration > iteration }) else { return results }
        let kept = results.filter { $0.iteration <= iteration }
        try? FileManager.default.removeItem(atPath: directory + "/result.json")
        try? FileManager.default.removeItem(atPath: directory + "/progress.csv")
        for result in kept { try? append(result, trial: trial) }
        return kept
    }

    func saveCheckpoint(_ bytes: [UInt8], trial: Int) throws {
        try writeAtomically(Data(bytes), to: checkpointPath(trial))
    }

    func loadCheckpoint(trial: Int) -> [UInt8]? {
        FileManager.default.contents(atPath: checkpointPath(trial)).map { [UInt8]($0) }
    }

    func write(_ text: String, to name: String) throws {
        try writeAtomically(Data(text.utf8), to: path + "/" + name)
    }

    private func writeAtomically(_ data: Data, to file: String) throws {
        let temporary = file + ".tmp"
        guard FileManager.default.createFile(atPath: temporary, contents: data) else {
            throw TuneError.experiment(path: path, reason: "cannot write \(temporary)")
        }
        guard rename(temporary, file) == 0 else {
            throw TuneError.experiment(path: path, reason: "cannot move \(temporary) to \(file): \(String(cString: strerror(errno)))")
        }
    }

    private func appendBytes(_ data: Data, to file: String) throws {
        if let handle = FileHandle(forWritingAtPath: file) {
            defer { try? handle.close() }
            try handle.seekToEnd()
            try handle.write(contentsOf: data)
        } else if !FileManager.default.createFile(atPath: file, contents: data) {
            throw TuneError.experiment(path: path, reason: "cannot write \(file)")
        }
    }
}
