import Foundation

/// The live view of a sweep: on a terminal, a table redrawn in place; otherwise one line per
/// trial event and a summary line every few seconds (logs stay readable).
public enum ProgressOutput: Sendable {
    /// A table on a terminal, lines otherwise.
    case auto
    case table
    case lines
    case none
}

struct ProgressTable {
    let output: ProgressOutput
    let objective: Objective
    let total: Int
    let started = Date()
    var drawnLines = 0
    var lastDraw = Date.distantPast
    var lastSummary = Date()

    init(output: ProgressOutput, objective: Objective, total: Int) {
        switch output {
        case .auto: self.output = isatty(STDOUT_FILENO) == 1 ? .table : .lines
        default: self.output = output
        }
        self.objective = objective
        self.total = total
    }

    /// A trial changed status (started, finished, stopped, failed).
    mutating func event(_ trial: TrialRecord, _ message: String, trials: [TrialRecord]) {
        switch output {
        case .lines:
            emit("[tune \(Self.clock(Date().timeIntervalSince(started)))] \(trial.name) \(message)")
        case .table:
            redraw(trials, force: true)
        default: break
        }
    }

    /// A result arrived; the table is redrawn at most four times a second.
    mutating func tick(_ trials: [TrialRecord]) {
        switch output {
        case .table: redraw(trials, force: false)
        case .lines:
            if Date().timeIntervalSince(lastSummary) >= 5 {
                lastSummary = Date()
                emit("[tune \(Self.clock(Date().timeIntervalSince(started)))] \(summary(trials))")
            }
        default: break
        }
    }

    mutating func finish(_ trials: [TrialRecord]) {
        switch output {
        case .table: redraw(trials, force: true)
        case .lines: emit("[tune \(Self.clock(Date().timeIntervalSince(started)))] \(summary(trials))")
        default: break
        }
    }

    private func emit(_ line: String) {
        // print, then flush every stream: the tuner's lines and the program's own prints
        // stay in order even when stdout is a pipe.
        print(line)
        fflush(nil)
    }

    func summary(_ trials: [TrialRecord]) -> String {
        var line = "\(trials.filter { $0.status.isFinished }.count)/\(total) trials done (\(trials.statusSummary))"
        if let best = Self.best(trials, objective), let metric = best.bestMetric {
            line += "; best \(objective.metric) \(Self.number(metric)) by \(best.name) \(best.config)"
        }
        return line
    }

    private mutating func redraw(_ trials: [TrialRecord], force: Bool) {
        guard force || Date().timeIntervalSince(lastDraw) >= 0.25 else { return }
        lastDraw = Date()
        var text = ""
        if drawnLines > 0 { text += "\u{1B}[\(drawnLines)F\u{1B}[J" }  // up to the table's first line, clear below
        // Lines wider than the terminal would wrap and the redraw would creep down the screen:
        // cut them to its width, and the rows to its height ($COLUMNS/$LINES when the shell
        // exports them; 160 × 24 otherwise).
        let environment = ProcessInfo.processInfo.environment
        let columns = environment["COLUMNS"].flatMap(Int.init) ?? 160, rows = environment["LINES"].flatMap(Int.init) ?? 24
        let lines = Self.render(trials, objective: objective, elapsed: Date().timeIntervalSince(started), total: total,
                                limit: max(3, min(20, rows - 4))).map { String($0.prefix(max(20, columns - 1))) }
        text += lines.joined(separator: "\n") + "\n"
        drawnLines = lines.count
        print(text, terminator: "")
        fflush(nil)
    }

    /// The results table: a header, one row per trial (the running ones and the best first when
    /// there are more than `limit`), and a summary.
    static func render(_ trials: [TrialRecord], objective: Objective, elapsed: Double, total: Int, limit: Int) -> [String] {
        let parameters = Array(Set(trials.flatMap { $0.config.flattened.map(\.path) })).sorted()
        var header = ["trial", "status"] + parameters + ["iter", "last \(objective.metric)", "best \(objective.metric)", "time"]
        var shown = trials
        if shown.count > limit {
            let ranked = trials.sorted { rank($0, objective) > rank($1, objective) }
            shown = Array(ranked.prefix(limit)).sorted { $0.id < $1.id }
        }
        var rows = shown.map { trial -> [String] in
            [trial.name, trial.status.rawValue]
                + parameters.map { trial.config[$0]?.description ?? "" }
                + [String(trial.iterations), trial.lastMetrics[objective.metric].map(number) ?? "",
                   trial.bestMetric.map(number) ?? "", clock(trial.elapsed)]
        }
        let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  ")
        }
        header = [line(header)]
        rows = rows.map { [line($0)] }
        var out = ["== tune: \(trials.filter { $0.status.isFinished }.count)/\(total) trials done (\(trials.statusSummary)), \(clock(elapsed)) =="]
        out += header + rows.map { $0[0] }
        if trials.count > shown.count { out.append("… \(trials.count - shown.count) more (all in results.txt)") }
        return out
    }

    /// Running trials first, then by best metric.
    private static func rank(_ trial: TrialRecord, _ objective: Objective) -> Double {
        let score = trial.bestMetric.map(objective.mode.oriented) ?? -Double.infinity
        return trial.status == .running ? Double.infinity : score
    }

    static func best(_ trials: [TrialRecord], _ objective: Objective) -> TrialRecord? {
        trials.filter { $0.bestMetric != nil }.max { a, b in
            objective.mode.oriented(a.bestMetric!) < objective.mode.oriented(b.bestMetric!)
        }
    }

    static func number(_ value: Double) -> String {
        abs(value) >= 1e-3 && abs(value) < 1e5 ? String(format: "%.4f", value) : String(format: "%.3e", value)
    }

    static func clock(_ seconds: Double) -> String {
        seconds < 60 ? String(format: "%.1fs", seconds) : String(format: "%dm%02ds", Int(seconds) / 60, Int(seconds) % 60)
    }
}
