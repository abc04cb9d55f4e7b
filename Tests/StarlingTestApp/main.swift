#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Starling
import StarlingNode

// A driver the runtime tests run as a real process. The first argument names a scenario; it
// prints one line `RESULT <text>` on success, or `ERROR <description>` and exits 1.
// Workers are started from this same executable (Starling.run serves them).

struct Square: RemoteFunction {
    static func run(_ x: Int) async throws -> Int { x * x }
}

struct Fail: RemoteFunction {
    struct Boom: Error, CustomStringConvertible { let code: Int; var description: String { "boom \(code)" } }
    static func run(_ code: Int) async throws -> Int { throw Boom(code: code) }
}

/// Kills its own worker process the first time (a marker file records it), then succeeds.
struct DieOnce: RemoteFunction {
    static func run(_ marker: String) async throws -> String {
        if !FileManager.default.fileExists(atPath: marker) {
            _ = FileManager.default.createFile(atPath: marker, contents: Data())
            kill(getpid(), SIGKILL)
        }
        return "survived"
    }
}

/// Returns `n` bytes.
struct Blob: RemoteFunction {
    static func run(_ n: Int) async throws -> [UInt8] { [UInt8](repeating: 7, count: n) }
}

struct Pid: RemoteFunction {
    static func run(_ sleepMillis: Int) async throws -> Int32 {
        if sleepMillis > 0 { try await Task.sleep(for: .milliseconds(sleepMillis)) }
        return getpid()
    }
}

/// First run: leases a 30 s child task through its own submitter, then dies (SIGKILL), leaving
/// the child's lease with a dead owner. The retry finds the marker and returns at once.
struct OrphanMaker: RemoteFunction {
    static func run(_ marker: String) async throws -> String {
        if FileManager.default.fileExists(atPath: marker) { return "recovered" }
        _ = FileManager.default.createFile(atPath: marker, contents: Data())
        _ = try await Cluster.current().submit(Pid.self, 30_000)
        try await Task.sleep(for: .milliseconds(500))
        kill(getpid(), SIGKILL)
        return "unreachable"
    }
}

/// Submits tasks from inside a task (the worker is the children's owner).
struct SumOfSquares: RemoteFunction {
    static func run(_ n: Int) async throws -> Int {
        let cluster = try Cluster.current()
        var refs: [ObjectRef<Int>] = []
        for i in 0..<n { refs.append(try await cluster.submit(Square.self, i)) }
        return try await cluster.get(refs).reduce(0, +)
    }
}

/// Reports the node it ran on; sleeps first, and leaves a marker file `<dir>/<node>-<pid>-<n>`
/// when started so a test can see where it runs before it ends. With `barrier`, it waits until
/// that many tasks have started (so they provably run at once, however slow workers start).
struct Where: RemoteFunction {
    struct Input: Codable, Sendable { var sleepMillis = 0; var markerDir: String?; var barrier = 0 }
    static func run(_ input: Input) async throws -> String {
        let node = try Cluster.current().nodeID
        if let dir = input.markerDir {
            _ = FileManager.default.createFile(atPath: "\(dir)/\(node)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))", contents: Data())
            for _ in 0..<3000 where input.barrier > 0 {
                if ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).count >= input.barrier { break }
                try await Task.sleep(for: .milliseconds(10))
            }
        }
        if input.sleepMillis > 0 { try await Task.sleep(for: .milliseconds(input.sleepMillis)) }
        return node
    }
}

/// Worker processes of this driver's embedded cluster (their environment names its session).
func myWorkers() -> [pid_t] {
    ProcessTable.withEnvironment(prefix: "STARLING_SESSION_DIR=/tmp/starling-\(getpid())-")
}

/// Runs `count` `Where` tasks with `options` at once; returns the distinct nodes, sorted.
func nodesUsed(_ cluster: Cluster, count: Int, sleepMillis: Int, markerDir: String? = nil, barrier: Bool = false,
               options: TaskOptions) async throws -> String {
    var dir = markerDir
    if barrier, dir == nil {
        dir = NSTemporaryDirectory() + "starling-barrier-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir!, withIntermediateDirectories: true)
    }
    defer { if barrier, markerDir == nil, let dir { try? FileManager.default.removeItem(atPath: dir) } }
    let refs = try await (0..<count).asyncMap { [dir] _ in
        try await cluster.submit(Where.self, .init(sleepMillis: sleepMillis, markerDir: dir, barrier: barrier ? count : 0), options: options)
    }
    let nodes = try await cluster.get(refs)
    return "\(nodes.count) " + Set(nodes).sorted().joined(separator: ",")
}

@main
struct TestApp {
    static func main() async {
        let scenario = CommandLine.arguments.dropFirst().first ?? ""
        do {
            let idleTimeout: Duration? = scenario == "idle-stop" ? .milliseconds(500) : nil
            try await Starling.run(embedded: .init(resources: ["CPU": 2], idleWorkerTimeout: idleTimeout)) { cluster in
                let result: String
                switch scenario {
                case "squares":
                    let refs = try await (0..<100).asyncMap { try await cluster.submit(Square.self, $0) }
                    result = String(try await cluster.get(refs).reduce(0, +))
                case "many":
                    let count = CommandLine.arguments.count > 2 ? Int(CommandLine.arguments[2]) ?? 10_000 : 10_000
                    let refs = try await (0..<count).asyncMap { try await cluster.submit(Square.self, $0 % 100) }
                    let values = try await cluster.get(refs)
                    result = "\(values.count) \(values.reduce(0, +))"
                case "user-error":
                    do {
                        _ = try await cluster.get(cluster.submit(Fail.self, 7))
                        result = "no error"
                    } catch {
                        result = "\(error)"
                    }
                case "infeasible":
                    do {
                        _ = try await cluster.get(cluster.submit(Square.self, 1, options: .init(resources: ["CPU": 64])))
                        result = "no error"
                    } catch {
                        result = "\(error)"
                    }
                case "infeasible-wait":
                    // With waitIfInfeasible the task waits (for a node that may join) instead
                    // of failing: here no node joins, so get's timeout ends the wait.
                    let options = TaskOptions(resources: ["CPU": 64], waitIfInfeasible: true)
                    do {
                        _ = try await cluster.get(cluster.submit(Square.self, 1, options: options), timeout: .seconds(1))
                        result = "no error"
                    } catch {
                        result = "\(error)"
                    }
                case "worker-killed":
                    let marker = NSTemporaryDirectory() + "starling-die-once-\(getpid())"
                    defer { try? FileManager.default.removeItem(atPath: marker) }
                    result = try await cluster.get(cluster.submit(DieOnce.self, marker))
                case "queue":
                    // Four 500 ms tasks needing 2 CPU each on a 2-CPU node: they must take turns.
                    let refs = try await (0..<4).asyncMap { _ in try await cluster.submit(Pid.self, 500, options: .init(resources: ["CPU": 2])) }
                    let pids = try await cluster.get(refs)
                    result = "\(pids.count) " + Set(pids).sorted().map(String.init).joined(separator: ",")
                case "get-timeout":
                    do {
                        _ = try await cluster.get(cluster.submit(Pid.self, 5000), timeout: .milliseconds(200))
                        result = "no error"
                    } catch {
                        result = "\(error)"
                    }
                case "ref-args":
                    let a = try await cluster.submit(Square.self, 3)
                    let b = try await cluster.submit(Square.self, a)
                    let failed = try await cluster.submit(Fail.self, 1)
                    let downstream = try await cluster.submit(Square.self, failed)
                    var downstreamError = "no error"
                    do { _ = try await cluster.get(downstream) } catch { downstreamError = "\(error)" }
                    result = "\(try await cluster.get(b)) | \(downstreamError)"
                case "cancel":
                    // A running 20 s task and a queued one behind it (both need the whole node).
                    let whole = TaskOptions(resources: ["CPU": 2])
                    let running = try await cluster.submit(Pid.self, 20_000, options: whole)
                    let queued = try await cluster.submit(Pid.self, 20_000, options: whole)
                    try await Task.sleep(for: .milliseconds(500))
                    await cluster.cancel(queued)
                    await cluster.cancel(running)
                    var outcomes: [String] = []
                    for ref in [running, queued] {
                        do { _ = try await cluster.get(ref, timeout: .seconds(10)); outcomes.append("value") } catch { outcomes.append("\(error)") }
                    }
                    result = outcomes.joined(separator: " | ")
                case "owner-dies":
                    let marker = NSTemporaryDirectory() + "starling-orphan-\(getpid())"
                    defer { try? FileManager.default.removeItem(atPath: marker) }
                    let parent = try await cluster.get(cluster.submit(OrphanMaker.self, marker))
                    // Needs the whole node: possible only once the orphaned child's lease is back.
                    let whole = try await cluster.get(cluster.submit(Pid.self, 0, options: .init(resources: ["CPU": 2])), timeout: .seconds(10))
                    result = "\(parent) \(whole > 0)"
                case "nested":
                    result = String(try await cluster.get(cluster.submit(SumOfSquares.self, 10)))
                case "wait":
                    // One fast task and two slow ones: wait for one, then for all with a short timeout.
                    let fast = try await cluster.submit(Pid.self, 0)
                    let slow = try await (0..<2).asyncMap { _ in try await cluster.submit(Pid.self, 3000, options: .init(resources: ["CPU": 0.5])) }
                    let first = await cluster.wait([fast] + slow, numReady: 1, timeout: .seconds(30))
                    let all = await cluster.wait([fast] + slow, numReady: 3, timeout: .milliseconds(300))
                    result = "\(first.ready.count) \(first.ready.first == fast) \(all.ready.count) \(all.pending.count)"
                case "idle-stop":
                    // Two tasks at once need two workers; idle past the timeout, all but the
                    // one prestarted worker are stopped.
                    _ = try await cluster.get(try await (0..<2).asyncMap { _ in try await cluster.submit(Pid.self, 300) })
                    let busy = myWorkers().count
                    try await Task.sleep(for: .seconds(2))
                    result = "\(busy) \(myWorkers().count)"
                case "get-cancelled":
                    // Cancelling the Swift Task waiting in get cancels the remote task: the
                    // whole-node task after it can run at once instead of in 20 s.
                    let whole = TaskOptions(resources: ["CPU": 2])
                    let ref = try await cluster.submit(Pid.self, 20_000, options: whole)
                    let getter = Task { try await cluster.get(ref) }
                    try await Task.sleep(for: .milliseconds(500))
                    getter.cancel()
                    var outcome = "no error"
                    do { _ = try await getter.value } catch { outcome = "\(error)" }
                    let next = try await cluster.get(cluster.submit(Pid.self, 0, options: whole), timeout: .seconds(10))
                    result = "\(outcome) | \(next > 0)"
                case "too-large":
                    // Past the inline limit: a result fails its get, an argument its submit;
                    // values under it (also many in one batch) are fine.
                    var outcomes: [String] = []
                    do { _ = try await cluster.get(cluster.submit(Blob.self, 9 << 20)); outcomes.append("no error") } catch { outcomes.append("\(error)") }
                    do { _ = try await cluster.submit(Square.self, 1, options: .init()); _ = try await cluster.submit(Pid.self, 0); _ = try cluster.put([UInt8](repeating: 1, count: 9 << 20)); outcomes.append("no error") } catch { outcomes.append("\(error)") }
                    let many = try await (0..<12).asyncMap { _ in try await cluster.submit(Blob.self, 7 << 20) }
                    outcomes.append(String(try await cluster.get(many).map(\.count).reduce(0, +)))
                    result = outcomes.joined(separator: " | ")
                case "nodes":
                    let nodes = try await cluster.nodes()
                    result = "\(nodes.count) head=\(nodes.first { $0.isHead }?.id ?? "none") local=\(cluster.nodeID)"
                case "spread":
                    result = try await nodesUsed(cluster, count: 2, sleepMillis: 0, barrier: true, options: .init(scheduling: .spread))
                case "pack":
                    result = try await nodesUsed(cluster, count: 2, sleepMillis: 0, barrier: true, options: .init())
                case "affinity":
                    let node = CommandLine.arguments[2]
                    result = try await nodesUsed(cluster, count: 4, sleepMillis: 100, options: .init(scheduling: .node(node)))
                case "affinity-dead":
                    // Hard affinity to a node that does not exist fails fast; soft runs elsewhere.
                    let hard = try await cluster.submit(Where.self, .init(), options: .init(scheduling: .node("00112233445566778899aabbccddeeff")))
                    var hardOutcome = "no error"
                    do { _ = try await cluster.get(hard, timeout: .seconds(20)) } catch { hardOutcome = "\(error)" }
                    let soft = try await cluster.get(cluster.submit(Where.self, .init(), options: .init(scheduling: .node("00112233445566778899aabbccddeeff", soft: true))))
                    result = "\(soft.count == 32) | \(hardOutcome)"
                case "node-killed":
                    // Six 4 s tasks spread over the nodes; the test kills a node while they run.
                    let dir = CommandLine.arguments[2]
                    result = try await nodesUsed(cluster, count: 6, sleepMillis: 4000, markerDir: dir, options: .init(maxRetries: 3, scheduling: .spread))
                default:
                    throw StarlingError.cluster("unknown scenario \(scenario)")
                }
                print("RESULT \(result)")
                fflush(nil)
            }
        } catch {
            print("ERROR \(error)")
            exit(1)
        }
    }
}

extension Sequence where Element: Sendable {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var out: [T] = []
        for element in self { out.append(try await transform(element)) }
        return out
    }
}
