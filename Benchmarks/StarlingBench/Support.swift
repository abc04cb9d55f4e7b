import Foundation
import StarlingWire

struct BenchOptions {
    var json = false
    var list = false
    var peer = "none"
    var only: Set<String>?
}

/// One measured figure and, when there is one, the peer's figure for the same workload.
struct Measurement {
    var value: Double
    var peer: String? = nil
    var peerValue: Double? = nil
}

struct Workload {
    enum Direction { case higherIsBetter, lowerIsBetter }
    let name: String
    let unit: String
    let direction: Direction
    let run: (BenchOptions) async throws -> Measurement
}

/// Prints results as a table or JSON lines.
final class Report {
    let json: Bool
    private var failures = 0

    init(json: Bool) {
        self.json = json
        if !json {
            print(pad("workload", 30) + pad("starling", 14) + pad("unit", 8) + pad("peer", 10) + pad("peer value", 14) + "ratio")
        }
    }

    func add(_ workload: Workload, _ m: Measurement) {
        var ratio: Double?
        if let peerValue = m.peerValue, peerValue > 0, m.value > 0 {
            ratio = workload.direction == .higherIsBetter ? m.value / peerValue : peerValue / m.value
        }
        if json {
            var object: [String: Any] = ["workload": workload.name, "value": round3(m.value), "unit": workload.unit]
            if let peer = m.peer { object["peer"] = peer }
            if let peerValue = m.peerValue { object["peer_value"] = round3(peerValue) }
            if let ratio { object["ratio"] = round3(ratio) }
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
            print(String(decoding: data, as: UTF8.self))
        } else {
            print(pad(workload.name, 30) + pad(format(m.value), 14) + pad(workload.unit, 8)
                  + pad(m.peer ?? "-", 10) + pad(m.peerValue.map(format) ?? "-", 14) + (ratio.map { String(format: "%.2fx", $0) } ?? "-"))
        }
        fflush(nil)
    }

    func failed(_ workload: Workload, _ error: Error) {
        failures += 1
        FileHandle.standardError.write(Data("starling-bench: \(workload.name) failed: \(error)\n".utf8))
    }

    func finish() {
        if failures > 0 { exit(1) }
    }

    private func pad(_ s: String, _ width: Int) -> String {
        s.count >= width ? s + " " : s + String(repeating: " ", count: width - s.count)
    }

    private func format(_ v: Double) -> String {
        v >= 100 ? String(format: "%.0f", v) : String(format: "%.3g", v)
    }

    private func round3(_ v: Double) -> Double { (v * 1000).rounded() / 1000 }
}

/// Percentile of sorted samples.
func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return 0 }
    return sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
}

/// A child process that is always killed when the benchmark is done with it.
final class ChildProcess {
    let process = Process()
    let output = Pipe()

    init(_ executable: String, _ arguments: [String]) throws {
        // This process is a placed Starling driver (one CPU): a peer (Ray, the C echo server)
        // runs on every CPU the benchmark had, as it would on its own, not on ours.
        let unplaced = CPUAffinity.original
        if CPUAffinity.allowed() != unplaced, !unplaced.isEmpty {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/taskset")
            process.arguments = ["-c", CPUAffinity.format(unplaced), executable] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
        }
        process.standardOutput = output
        try process.run()
    }

    /// Reads stdout until the child prints `ready` (servers) or exits.
    func waitUntilReady() {
        var buffer = Data()
        while let chunk = try? output.fileHandleForReading.read(upToCount: 1), !chunk.isEmpty {
            buffer.append(chunk)
            if buffer.count >= 5, String(decoding: buffer, as: UTF8.self).contains("ready") { return }
        }
    }

    /// Runs to completion and returns stdout.
    static func capture(_ executable: String, _ arguments: [String]) throws -> String {
        let child = try ChildProcess(executable, arguments)
        let data = child.output.fileHandleForReading.readDataToEndOfFile()
        child.process.waitUntilExit()
        guard child.process.terminationStatus == 0 else {
            throw BenchError.peerFailed("\(executable) \(arguments.joined(separator: " ")) exited with \(child.process.terminationStatus)")
        }
        return String(decoding: data, as: UTF8.self)
    }

    func kill() {
        // SIGKILL: children of an async Swift process inherit blocked signals (see PITFALLS.md).
        if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    deinit { kill() }
}

enum BenchError: Error, CustomStringConvertible {
    case peerFailed(String)
    case missing(String)

    var description: String {
        switch self {
        case let .peerFailed(detail): return "peer failed: \(detail)"
        case let .missing(detail): return detail
        }
    }
}

/// Where the benchmark's own files live: next to this source file in the checkout.
enum BenchPaths {
    /// The `starling` executable built next to this one.
    static func cli() throws -> String {
        let path = URL(fileURLWithPath: executable).deletingLastPathComponent().appendingPathComponent("starling").path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw BenchError.missing("\(path) not found: build it with `swift build -c release --product starling`")
        }
        return path
    }

    static let benchmarks = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    /// This executable (for the hidden modes it re-runs itself in).
    static var executable: String { (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0] }
    static let scratch: URL = {
        let url = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("starling-bench-\(getpid())")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }()
}

/// Ray 2.60 as a peer: a Python script of `Benchmarks/ray/` run with the venv's interpreter.
enum RayPeer {
    /// Runs the Ray peer in the project's venv (created with pip on first use).
    static func figures(script: String) throws -> [String: Double] {
        let venv = BenchPaths.benchmarks.appendingPathComponent(".ray-venv").path
        let python = venv + "/bin/python"
        if !FileManager.default.isExecutableFile(atPath: python) {
            FileHandle.standardError.write(Data("starling-bench: creating \(venv) with ray[default,tune,serve]==2.60.0 (one time)\n".utf8))
            _ = try ChildProcess.capture("/usr/bin/env", ["python3", "-m", "venv", venv])
            _ = try ChildProcess.capture(venv + "/bin/pip", ["install", "-q", "ray[default,tune,serve]==2.60.0"])
        }
        let output = try ChildProcess.capture(python, [BenchPaths.benchmarks.appendingPathComponent("ray/\(script)").path])
        waitForExit(markers: [venv, "ray::"])
        guard let line = output.split(separator: "\n").last(where: { $0.hasPrefix("{") }),
              let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Double] else {
            throw BenchError.peerFailed("ray/\(script) printed no figures: \(output.suffix(500))")
        }
        return object
    }

    /// Waits (20 s at most) until no process whose command line holds one of `markers` is
    /// left: Ray's raylet, GCS and workers wind down for seconds after its driver exits, and
    /// the next workload measured must not share the CPUs with them.
    static func waitForExit(markers: [String]) {
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
            let lingering = entries.contains { entry in
                guard Int32(entry) != nil, Int32(entry) != getpid(),
                      let raw = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline") else { return false }
                let command = String(decoding: raw.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
                return markers.contains { command.contains($0) }
            }
            if !lingering { return }
            usleep(100_000)
        }
    }
}
