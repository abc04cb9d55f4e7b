import Foundation
import Starling
import StarlingWire

// starling-bench: runs named workloads and prints Starling's figure beside its peer's.
//
//   starling-bench [--json] [--peer ray|none] [--only a,b,c] [--list]
//
// Hidden modes used by the benchmark itself: `serve-echo URL TOKEN_FILE`, `idle-rss-probe`,
// `sync-probe N` (N sync no-op tasks, for profiles), `actor-probe N [sync|async]`, `ps-probe N` (N ps_iteration rounds), `put-probe N` (N
// 100 MB puts, each timed).

ProcessTuning.apply()
// Workers of the task workloads' embedded cluster are this executable: serve as one.
if ProcessInfo.processInfo.environment["STARLING_WORKER_ID"] != nil {
    try await Starling.run { _ in }
}
let arguments = Array(CommandLine.arguments.dropFirst())

if arguments.first == "sync-probe" {
    // For profiles: N sync no-op tasks on an embedded cluster (e.g. under `perf stat -a`).
    let count = arguments.count > 1 ? Int(arguments[1]) ?? 10_000 : 10_000
    try await Starling.run(embedded: .init(resources: ["CPU": 2])) { cluster in
        for _ in 0..<200 { _ = try await cluster.get(cluster.submit(NoOp.self, 0)) }
        let clock = ContinuousClock()
        let start = clock.now
        for _ in 0..<count { _ = try await cluster.get(cluster.submit(NoOp.self, 0)) }
        print("sync-probe: \(count) tasks in \(clock.now - start)")
    }
    exit(0)
}
if arguments.first == "actor-probe" {
    // For profiles: N calls to one actor, one at a time (`sync`) or all at once (`async`).
    let count = arguments.count > 1 ? Int(arguments[1]) ?? 20_000 : 20_000
    let together = arguments.count > 2 && arguments[2] == "async"
    try await Starling.run(embedded: .init(resources: ["CPU": 2])) { cluster in
        let actor = try await cluster.spawn(BenchActor.self, config: 0)
        for _ in 0..<200 { _ = try await actor.smallValue() }
        let clock = ContinuousClock()
        let start = clock.now
        if together {
            _ = try await ActorWorkloads.callsAtOnce(actor, count)
        } else {
            for _ in 0..<count { _ = try await actor.smallValue() }
        }
        print("actor-probe: \(count) \(together ? "async" : "sync") calls in \(clock.now - start)")
    }
    exit(0)
}
if arguments.first == "ps-probe" {
    let count = arguments.count > 1 ? Int(arguments[1]) ?? 200 : 200
    try await Starling.run(embedded: .init(resources: ["CPU": 2])) { cluster in
        let milliseconds = try await ActorWorkloads.psIterations(cluster, count)
        print("ps-probe: \(count) iterations, \(milliseconds) ms each")
    }
    exit(0)
}
if arguments.first == "put-probe" {
    // Each 100 MB put's time, ref dropped at once (for profiles of single_client_put_gigabytes).
    let count = arguments.count > 1 ? Int(arguments[1]) ?? 20 : 20
    try await Starling.run(embedded: .init(resources: ["CPU": 2])) { cluster in
        let array = [Float](repeating: 1.5, count: StoreWorkloads.floats)
        var times: [String] = []
        for _ in 0..<count {
            let start = ContinuousClock.now
            _ = try await cluster.put(array)
            times.append(String(format: "%.1f", TaskWorkloads.micros(ContinuousClock.now - start) / 1000))
        }
        print("put-probe (ms each): " + times.joined(separator: " "))
    }
    exit(0)
}
if arguments.first == "idle-rss-probe" {
    try await TaskWorkloads.idleRSSProbe()
    exit(0)
}
if arguments.first == "serve-echo", arguments.count >= 3 {
    try await EchoServerProcess.run(address: arguments[1], tokenFile: arguments[2])
    exit(0)
}

var options = BenchOptions()
var index = 0
while index < arguments.count {
    let argument = arguments[index]
    switch argument {
    case "--json": options.json = true
    case "--list": options.list = true
    case "--peer":
        index += 1
        guard index < arguments.count else { fail("--peer needs a value: ray or none") }
        options.peer = arguments[index]
    case "--only":
        index += 1
        guard index < arguments.count else { fail("--only needs a comma-separated list of workloads") }
        options.only = Set(arguments[index].split(separator: ",").map(String.init))
    case "-h", "--help":
        print("""
        usage: starling-bench [--json] [--peer ray|none] [--only w1,w2] [--list]
          --json      one JSON object per line instead of a table
          --peer ray  compare with Ray 2.60 where a workload has a Ray peer (sets up a venv)
          --only      run only these workloads
          --list      list the workloads
        """)
        exit(0)
    default:
        fail("unknown argument \(argument); see --help")
    }
    index += 1
}

let workloads = WireWorkloads.all + TaskWorkloads.all + ActorWorkloads.all + StoreWorkloads.all + CrossNodeWorkload.all + HealthWorkloads.all + CLIWorkloads.all + TuneWorkloads.all
if options.list {
    for workload in workloads { print(workload.name) }
    exit(0)
}
if let only = options.only {
    let unknown = only.subtracting(workloads.map(\.name))
    if !unknown.isEmpty { fail("unknown workloads: \(unknown.sorted().joined(separator: ", ")); see --list") }
}

let report = Report(json: options.json)
for workload in workloads where options.only?.contains(workload.name) ?? true {
    do {
        let result = try await workload.run(options)
        report.add(workload, result)
    } catch {
        report.failed(workload, error)
    }
}
try? FileManager.default.removeItem(at: BenchPaths.scratch)
report.finish()

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("starling-bench: \(message)\n".utf8))
    exit(2)
}
