import Foundation

/// The files of one experiment, laid out as Ray Tune's are:
///
///     <storage>/<name>/experiment_state.json   the sweep's settings (and, at the end, every trial)
///     <storage>/<name>/trials.jsonl            a journal: a trial's record each time it changes
///     <storage>/<name>/summary.json            best trial, counts, wall time (at the end)
///     <storage>/<name>/results.txt             the final results table
///     <storage>/<name>/learning_curves.svg     metric per iteration, one line per trial
///     <storage>/<name>/trial_0007/params.json  the trial's config
///     <storage>/<name>/trial_0007/result.json  one JSON object per iteration
///     <storage>/<name>/trial_0007/progress.csv the same as CSV
///     <storage>/<name>/trial_0007/checkpoint.bin  its latest checkpoint
/// JSON coders for experiment files: NaN and infinities (a diverged loss) are written as the
/// strings "nan", "inf" and "-inf" instead of failing the write.
enum TuneJSON {
    static func encoder(pretty: Bool = false) -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys] : [.sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        encoder.dateEncodingStrategy = .iso8601
        return encoder
    }

    static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }
}

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
    var journalPath: String { path + "/trials.jsonl" }
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
        for entry in entries where entry.hasPrefix("trial_") || ["experiment_state.json", "trials.jsonl", "summary.json", "results.txt", "learning_curves.svg"].contains(entry) {
            try? FileManager.default.removeItem(atPath: path + "/" + entry)
        }
    }

    /// The settings, with each trial as the journal last recorded it.
    func loadState() throws -> State? {
        guard let data = FileManager.default.contents(atPath: statePath) else { return nil }
        var state: State
        do {
            state = try TuneJSON.decoder().decode(State.self, from: data)
        } catch {
            throw TuneError.experiment(path: path, reason: "experiment_state.json does not parse: \(error)")
        }
        var byID = Dictionary(state.trials.map { ($0.id, $0) }, uniquingKeysWith: { _, last in last })
        for line in (FileManager.default.contents(atPath: journalPath) ?? Data()).split(separator: 10) {
            // A line cut short (the machine stopped mid-write) is skipped; the lines before it stand.
            guard let record = try? TuneJSON.decoder().decode(TrialRecord.self, from: Data(line)) else { continue }
            byID[record.id] = record
        }
        state.trials = byID.values.sorted { $0.id < $1.id }
        return state
    }

    func saveState(_ state: State) throws {
        try writeAtomically(try TuneJSON.encoder(pretty: true).encode(state), to: statePath)
    }

    func startTrial(_ record: TrialRecord) throws {
        let directory = trialDirectory(record.id)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try writeFile(try TuneJSON.encoder(pretty: true).encode(record.config), to: directory + "/params.json")
    }

    /// The trial's results from `result.json`, up to `iteration` when given; the files are
    /// rewritten (to a temporary name, then moved) to hold just those, since a continued trial
    /// reports the later ones again.
    func loadResults(trial: Int, upTo iteration: Int?) -> [TrialResult] {
        let directory = trialDirectory(trial)
        guard let data = FileManager.default.contents(atPath: directory + "/result.json") else { return [] }
        let decoder = TuneJSON.decoder()
        var results: [TrialResult] = []
        for line in data.split(separator: 10) {
            guard var object = try? decoder.decode([String: Double].self, from: Data(line)),
                  let step = object.removeValue(forKey: "training_iteration"), step.isFinite, step >= 1, step < 1e12 else { continue }
            let elapsed = object.removeValue(forKey: "time_total_s") ?? 0
            results.append(TrialResult(iteration: Int(step), elapsed: elapsed, metrics: object))
        }
        guard let iteration, results.contains(where: { $0.iteration > iteration }) else { return results }
        let kept = results.filter { $0.iteration <= iteration }
        let staging = directory + "/.rewrite"
        try? FileManager.default.removeItem(atPath: staging)
        guard (try? FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)) != nil else { return kept }
        let files = TrialFiles(directory: staging)
        for result in kept { try? files.append(result) }
        files.close()
        for name in ["result.json", "progress.csv"] {
            if FileManager.default.fileExists(atPath: staging + "/" + name) {
                _ = rename(staging + "/" + name, directory + "/" + name)
            } else {
                try? FileManager.default.removeItem(atPath: directory + "/" + name)
            }
        }
        try? FileManager.default.removeItem(atPath: staging)
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

    /// Writes in place: for files a crash may leave stale but that nothing resumes from.
    private func writeFile(_ data: Data, to file: String) throws {
        let descriptor = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw TuneError.experiment(path: path, reason: "cannot write \(file): \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        try AppendFile.writeAll(descriptor, data, file: file)
    }
}

/// A file open for appending; each `append` is one `write`, so a process killed mid-sweep
/// leaves whole lines behind.
final class AppendFile {
    let path: String
    private var descriptor: Int32

    init(_ path: String) throws {
        self.path = path
        descriptor = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw TuneError.experiment(path: path, reason: "cannot open for appending: \(String(cString: strerror(errno)))")
        }
    }

    func append(_ data: Data) throws { try Self.writeAll(descriptor, data, file: path) }

    func close() {
        if descriptor >= 0 { Foundation.close(descriptor) }
        descriptor = -1
    }

    deinit { close() }

    static func writeAll(_ descriptor: Int32, _ data: Data, file: String) throws {
        try data.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = write(descriptor, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    throw TuneError.experiment(path: file, reason: "write failed: \(String(cString: strerror(errno)))")
                }
                offset += written
            }
        }
    }
}

/// A trial's result files, kept open while it runs: `result.json` (one JSON object per
/// iteration) and `progress.csv` (columns fixed by the first result).
final class TrialFiles {
    let directory: String
    private var json: AppendFile?
    private var csv: AppendFile?
    private var columns: [String] = []
    /// One encoder for every result of the trial (results arrive once per iteration).
    private let encoder = TuneJSON.encoder()

    init(directory: String) { self.directory = directory }

    func append(_ result: TrialResult) throws {
        var object: [String: Double] = result.metrics
        object["training_iteration"] = Double(result.iteration)
        object["time_total_s"] = result.elapsed
        var line = try encoder.encode(object)
        line.append(10)
        if json == nil { json = try AppendFile(directory + "/result.json") }
        try json!.append(line)

        if csv == nil {
            let path = directory + "/progress.csv"
            let existing = FileManager.default.contents(atPath: path).flatMap { $0.split(separator: 10).first }
            csv = try AppendFile(path)
            if let existing {
                columns = String(decoding: existing, as: UTF8.self).split(separator: ",").map(String.init)
            } else {
                columns = ["training_iteration", "time_total_s"] + result.metrics.keys.sorted()
                try csv!.append(Data((columns.joined(separator: ",") + "\n").utf8))
            }
        }
        let row = columns.map { column -> String in
            switch column {
            case "training_iteration": return String(result.iteration)
            case "time_total_s": return String(format: "%.4f", result.elapsed)
            default: return result.metrics[column].map { "\($0)" } ?? ""
            }
        }
        try csv!.append(Data((row.joined(separator: ",") + "\n").utf8))
    }

    func close() {
        json?.close()
        csv?.close()
        json = nil
        csv = nil
    }
}
