#if canImport(Glibc)
import Glibc
#endif
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
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

/// Sleeps; records in `marker` whether the sleep ran out ("completed") or was cancelled.
struct SleepOrMark: RemoteFunction {
    struct Input: Codable, Sendable { var millis: Int; var marker: String }
    static func run(_ input: Input) async throws -> Int32 {
        _ = FileManager.default.createFile(atPath: input.marker + "-started", contents: Data())
        do {
            try await Task.sleep(for: .milliseconds(input.millis))
        } catch {
            _ = FileManager.default.createFile(atPath: input.marker, contents: Data("cancelled".utf8))
            throw error
        }
        _ = FileManager.default.createFile(atPath: input.marker, contents: Data("completed".utf8))
        return getpid()
    }
}

/// Returns `n` bytes.
struct Blob: RemoteFunction {
    static func run(_ n: Int) async throws -> [UInt8] { [UInt8](repeating: 7, count: n) }
}

struct CountBytes: RemoteFunction {
    static func run(_ bytes: [UInt8]) async throws -> Int { bytes.count }
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

/// True while `pid` runs (give a killed worker a moment to be reaped).
func isAlive(_ pid: Int32) -> Bool {
    for _ in 0..<50 {
        if !ProcessTable.isRunning(pid) { return false }
        usleep(20_000)
    }
    return true
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

/// A stateful actor for the actor tests.
distributed actor Counter: RemoteActor {
    typealias ActorSystem = StarlingActorSystem
    struct Overdrawn: Error, Codable, Equatable { let balance: Int; let asked: Int }
    struct Summary: Codable, Sendable, Equatable { var count: Int; var mean: Double; var tags: [String: Int] }

    var total: Int
    var log: [Int] = []

    init(actorSystem: ActorSystem, config start: Int) {
        self.actorSystem = actorSystem
        total = start
    }

    distributed func add(_ n: Int) -> Int {
        total += n
        return total
    }

    distributed func take(_ n: Int) throws -> Int {
        guard n <= total else { throw Overdrawn(balance: total, asked: n) }
        total -= n
        return total
    }

    distributed func record(_ i: Int) async throws {
        // A suspension inside: a later call must still not start before this one ends.
        try await Task.sleep(for: .milliseconds(Int.random(in: 0...2)))
        log.append(i)
    }

    distributed func recorded() -> [Int] { log }

    distributed func summarize(_ values: [Double], tags: [String], weight: Double?) -> Summary {
        var counts: [String: Int] = [:]
        for tag in tags { counts[tag, default: 0] += 1 }
        let mean = values.isEmpty ? 0 : values.reduce(0, +) / Double(values.count) * (weight ?? 1)
        return Summary(count: values.count, mean: mean, tags: counts)
    }

    distributed func squareOnCluster(_ x: Int) async throws -> Int {
        try await Cluster.current().get(Cluster.current().submit(Square.self, x))
    }

    distributed func pid() -> Int32 { getpid() }

    /// Generic: the call carries its generic substitution.
    distributed func pair<T: Codable & Sendable>(_ value: T, _ times: Int) -> [T] { Array(repeating: value, count: times) }

    distributed func whereAmI() throws -> String { try Cluster.current().nodeID }

    /// A result larger than the inline limit (it travels through the node's store).
    distributed func bigResult(_ count: Int) -> [UInt8] { [UInt8](repeating: 9, count: count) }

    /// The sum of a large argument's bytes (large arguments travel through the store).
    distributed func total(_ bytes: [UInt8]) -> Int { bytes.reduce(0) { $0 + Int($1) } }

    /// A value this actor owns, by ref.
    distributed func stash(_ n: Int) async throws -> ObjectRef<Int> { try await Cluster.current().put(n * 2) }

    /// Adds a value it borrows from another process.
    distributed func addFrom(_ ref: ObjectRef<Int>) async throws -> Int {
        total += try await Cluster.current().get(ref)
        return total
    }

    /// Ends this actor after the call returns (a graceful exit from inside).
    distributed func quit() -> Int {
        actorSystem.exit(self)
        return total
    }

    var running = 0
    var mostAtOnce = 0

    /// Counts how many calls run at once (reentrant: it suspends while "working").
    distributed func overlap() async throws -> Int {
        running += 1
        mostAtOnce = max(mostAtOnce, running)
        try await Task.sleep(for: .milliseconds(100))
        running -= 1
        return mostAtOnce
    }
}

/// A task that is handed an actor and calls it.
struct AddThrough: RemoteFunction {
    struct Input: Codable, Sendable { var counter: Counter; var amount: Int }
    static func run(_ input: Input) async throws -> Int { try await input.counter.add(input.amount) }
}

/// A checksum of a large byte array it borrows (read from the node's shared-memory store).
struct Checksum: RemoteFunction {
    static func run(_ ref: ObjectRef<[UInt8]>) async throws -> UInt64 { checksum(try await Cluster.current().get(ref)) }
}

/// A checksum over every 4096th byte and the last (fast in a debug build).
func checksum(_ bytes: [UInt8]) -> UInt64 {
    var sum: UInt64 = 1469598103934665603
    for index in stride(from: 0, to: bytes.count, by: 4096) { sum = (sum ^ UInt64(bytes[index])) &* 1099511628211 }
    if let last = bytes.last { sum = (sum ^ UInt64(last)) &* 1099511628211 }
    return sum &+ UInt64(bytes.count)
}

/// Byte-for-byte equality by memcmp (an element loop is slow in a debug build).
func identical(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    a.count == b.count && (a.isEmpty || a.withUnsafeBytes { x in b.withUnsafeBytes { y in memcmp(x.baseAddress!, y.baseAddress!, a.count) == 0 } })
}

/// `size` bytes that differ by `seed`: every 4096th byte and the last one are set.
func pattern(_ seed: Int, _ size: Int) -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: size)
    for index in stride(from: 0, to: size, by: 4096) { bytes[index] = UInt8(truncatingIfNeeded: (index >> 12) &+ seed) }
    if size > 0 { bytes[size - 1] = UInt8(truncatingIfNeeded: seed) }
    return bytes
}

/// Makes `pattern(seed, size)` (large: stored in its node's object store).
struct MakePattern: RemoteFunction {
    struct Input: Codable, Sendable { var seed: Int; var size: Int }
    static func run(_ input: Input) async throws -> [UInt8] { pattern(input.seed, input.size) }
}

/// Reads a borrowed ref and compares it with `pattern(seed, size)` byte for byte.
struct VerifyPattern: RemoteFunction {
    struct Input: Codable, Sendable { var ref: ObjectRef<[UInt8]>; var seed: Int; var size: Int }
    static func run(_ input: Input) async throws -> Bool {
        identical(try await Cluster.current().get(input.ref), pattern(input.seed, input.size))
    }
}

/// Puts `count` values of `size` bytes, reads them back and compares: how many came back exact.
struct PutAndGet: RemoteFunction {
    struct Input: Codable, Sendable { var seed: Int; var count: Int; var size: Int }
    static func run(_ input: Input) async throws -> Int {
        let cluster = try Cluster.current()
        var refs: [ObjectRef<[UInt8]>] = []
        for index in 0..<input.count { refs.append(try await cluster.put(pattern(input.seed * 100 + index, input.size))) }
        var exact = 0
        for (index, ref) in refs.enumerated() where identical(try await cluster.get(ref), pattern(input.seed * 100 + index, input.size)) {
            exact += 1
        }
        return exact
    }
}

/// Sums a borrowed array through a view of it (read in place from the node's store).
struct SumView: RemoteFunction {
    static func run(_ ref: ObjectRef<[Float]>) async throws -> Double {
        let view = try await Cluster.current().view(ref)
        return view.isInPlace ? view.reduce(0) { $0 + Double($1) } : -1
    }
}

/// `n` floats 0, 1, 2, … (stored in the node's store when large).
struct Floats: RemoteFunction {
    static func run(_ n: Int) async throws -> [Float] { (0..<n).map(Float.init) }
}

/// Returns the ref it was given (the owner must keep the value: the ref lives on in the result).
struct EchoRef: RemoteFunction {
    static func run(_ ref: ObjectRef<[UInt8]>) async throws -> [ObjectRef<[UInt8]>] { [ref] }
}

/// Records user metrics: a counter by `n`, a gauge, two histogram observations.
struct RecordMetrics: RemoteFunction {
    static func run(_ n: Int) async throws -> Int {
        Metrics.Counter("test_items", description: "Items processed by the test's tasks", tags: ["stage": "train \"a\""]).increment(by: Double(n))
        Metrics.Gauge("test_last_task", tags: ["stage": "train"]).set(Double(n))
        let latency = Metrics.Histogram("test_latency_seconds", boundaries: [0.1, 0.5, 1])
        latency.observe(0.05 * Double(n))
        latency.observe(2)
        return n
    }
}

/// Store use and spill files of the embedded cluster's node, once its frees have landed.
func settledStore(_ cluster: Cluster, until done: (MemoryReport.Node) -> Bool) async throws -> MemoryReport.Node {
    var node = try await cluster.memory().nodes[0]
    for _ in 0..<100 where !done(node) {
        try await Task.sleep(for: .milliseconds(50))
        node = try await cluster.memory().nodes[0]
    }
    return node
}

/// Bytes of memory the node arenas of this process hold in /dev/shm (their files' blocks).
func arenaBytes() -> Int {
    let prefix = "starling-\(getpid())-"
    return ((try? FileManager.default.contentsOfDirectory(atPath: "/dev/shm")) ?? []).filter { $0.hasPrefix(prefix) }.reduce(0) { total, name in
        var info = stat()
        return total + (stat("/dev/shm/" + name, &info) == 0 ? Int(info.st_blocks) * 512 : 0)
    }
}

func spillFiles(_ node: MemoryReport.Node) -> Int {
    ((try? FileManager.default.contentsOfDirectory(atPath: node.spillDirectory)) ?? []).count
}

/// The CPUs the kernel lets this process's main thread run on, as `/proc/self/status` says.
func cpusAllowed() -> String {
    let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
    let line = status.split(separator: "\n").first { $0.hasPrefix("Cpus_allowed_list:") } ?? ""
    return line.split(separator: "\t").last.map(String.init) ?? "?"
}

/// Where the worker running it may run (see `cpusAllowed`).
struct AllowedCPUs: RemoteFunction {
    static func run(_ input: Int) async throws -> String { cpusAllowed() }
}

/// Sums refs it was passed inside its input (it borrows them from their owners).
struct SumRefs: RemoteFunction {
    struct Input: Codable, Sendable { var refs: [ObjectRef<Int>] }
    static func run(_ input: Input) async throws -> Int { try await Cluster.current().get(input.refs).reduce(0, +) }
}

@main
struct TestApp {
    static func main() async {
        let scenario = CommandLine.arguments.dropFirst().first ?? ""
        do {
            let idleTimeout: Duration? = scenario == "idle-stop" ? .milliseconds(500) : nil
            let storeCapacity: UInt64? = ["store", "spill"].contains(scenario) ? 256 << 20 : nil
            try await Starling.run(embedded: .init(resources: ["CPU": 2], idleWorkerTimeout: idleTimeout, objectStoreCapacity: storeCapacity,
                                                   dashboardPort: scenario == "metrics" ? 0 : nil)) { cluster in
                let result: String
                switch scenario {
                case "task-sleep":
                    // A task that runs until the job is stopped (the `list tasks` test).
                    let ref = try await cluster.submit(Pid.self, 600_000)
                    print("SUBMITTED")
                    fflush(nil)
                    result = "\(try await cluster.get(ref))"
                case "sleep":
                    // Runs until stopped (the `starling job stop` test).
                    print("SLEEPING")
                    fflush(nil)
                    try await Task.sleep(for: .seconds(600))
                    result = "woke"
                case "cpu-placement":
                    // The driver's CPUs, those of a worker leased for 1 CPU and for 2, and the
                    // CPUs the driver tells the processes it starts it had before.
                    let one = try await cluster.get(cluster.submit(AllowedCPUs.self, 0))
                    let two = CommandLine.arguments.dropFirst(2).first == "one" ? "-"
                        : try await cluster.get(cluster.submit(AllowedCPUs.self, 0, options: .init(resources: ["CPU": 2])))
                    let unplaced = ProcessInfo.processInfo.environment["STARLING_UNPLACED_CPUS"] ?? "-"
                    result = "\(cpusAllowed()) \(one) \(two) \(unplaced)"
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
                    // The running one records whether its sleep was cancelled or ran out.
                    let whole = TaskOptions(resources: ["CPU": 2])
                    let marker = NSTemporaryDirectory() + "starling-cancel-\(getpid())"
                    defer { try? FileManager.default.removeItem(atPath: marker) }
                    let running = try await cluster.submit(SleepOrMark.self, .init(millis: 60_000, marker: marker), options: whole)
                    let queued = try await cluster.submit(SleepOrMark.self, .init(millis: 60_000, marker: marker + "-queued"), options: whole)
                    defer { for suffix in ["-started", "-queued", "-queued-started"] { try? FileManager.default.removeItem(atPath: marker + suffix) } }
                    // Cancelled once it really runs (a worker may take a while to start under load).
                    for _ in 0..<600 where !FileManager.default.fileExists(atPath: marker + "-started") { try await Task.sleep(for: .milliseconds(50)) }
                    await cluster.cancel(queued)
                    await cluster.cancel(running)
                    var outcomes: [String] = []
                    for ref in [running, queued] {
                        do { _ = try await cluster.get(ref, timeout: .seconds(30)); outcomes.append("value") } catch { outcomes.append("\(error)") }
                    }
                    for _ in 0..<300 where !FileManager.default.fileExists(atPath: marker) { try await Task.sleep(for: .milliseconds(100)) }
                    let stopped = (try? String(contentsOfFile: marker, encoding: .utf8)) ?? "no marker"
                    let queuedRan = FileManager.default.fileExists(atPath: marker + "-queued-started")
                    result = outcomes.joined(separator: " | ") + " | running: \(stopped), queued ran: \(queuedRan)"
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
                    // (A start barrier makes the two run at once however loaded the machine is.)
                    // The workers that ran them are counted from the barrier's marker files (one per
                    // task, named by its worker's pid): counting live workers afterwards would race
                    // the idle timeout on a loaded machine.
                    let markers = NSTemporaryDirectory() + "starling-idle-\(getpid())"
                    try FileManager.default.createDirectory(atPath: markers, withIntermediateDirectories: true)
                    defer { try? FileManager.default.removeItem(atPath: markers) }
                    _ = try await nodesUsed(cluster, count: 2, sleepMillis: 0, markerDir: markers, barrier: true, options: .init())
                    let busy = Set(try FileManager.default.contentsOfDirectory(atPath: markers).map { $0.split(separator: "-")[1] }).count
                    var after = myWorkers().count
                    for _ in 0..<100 where after > 1 {
                        try await Task.sleep(for: .milliseconds(100))
                        after = myWorkers().count
                    }
                    result = "\(busy) \(after)"
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
                    // A result past the inline limit goes through the node's store instead.
                    do { outcomes.append(String(try await cluster.get(cluster.submit(Blob.self, 9 << 20)).count)) } catch { outcomes.append("\(error)") }
                    do { _ = try await cluster.submit(CountBytes.self, [UInt8](repeating: 1, count: 9 << 20), options: .init(name: "argument")); outcomes.append("no error") } catch { outcomes.append("\(error)") }
                    let many = try await (0..<12).asyncMap { _ in try await cluster.submit(Blob.self, 7 << 20) }
                    outcomes.append(String(try await cluster.get(many).map(\.count).reduce(0, +)))
                    result = outcomes.joined(separator: " | ")
                case "actors":
                    let counter = try await cluster.spawn(Counter.self, config: 10, options: .init(name: "counter"))
                    var parts: [String] = []
                    parts.append(String(try await counter.add(5)))
                    do { _ = try await counter.take(100); parts.append("no error") } catch let error as Counter.Overdrawn {
                        parts.append("Overdrawn(\(error.balance),\(error.asked))")
                    }
                    let summary = try await counter.summarize([1, 2, 3], tags: ["a", "b", "a"], weight: nil)
                    parts.append("\(summary.count) \(summary.mean) \(summary.tags["a"] ?? 0)")
                    parts[parts.count - 1] += " " + (try await counter.pair("ab", 2)).joined() + " \(try await counter.pair([1, 2], 2))"
                    // Calls made one after another without waiting: they run in that order.
                    let calls = (0..<200).map { i in Task.immediate { try await counter.record(i) } }
                    for call in calls { try await call.value }
                    parts.append(try await counter.recorded() == Array(0..<200) ? "ordered" : "out of order")
                    // A handle passed to a task; the actor submits a task of its own.
                    parts.append(String(try await cluster.get(cluster.submit(AddThrough.self, .init(counter: counter, amount: 100)))))
                    parts.append(String(try await counter.squareOnCluster(9)))
                    let pid = try await counter.pid()
                    try await cluster.kill(counter)
                    do { _ = try await counter.add(1); parts.append("no error") } catch let error as StarlingError {
                        if case .actorDied = error { parts.append("dead") } else { parts.append("\(error)") }
                    }
                    parts.append(isAlive(pid) ? "worker alive" : "worker gone")
                    result = parts.joined(separator: " | ")
                case "actor-concurrency":
                    // Eight calls at once: one at a time by default, up to four with maxConcurrency 4.
                    var most: [Int] = []
                    for limit in [1, 4] {
                        let counter = try await cluster.spawn(Counter.self, config: 0, options: .init(maxConcurrency: limit))
                        let calls = (0..<8).map { _ in Task.immediate { try await counter.overlap() } }
                        var highest = 0
                        for call in calls { highest = max(highest, try await call.value) }
                        most.append(highest)
                        try await cluster.kill(counter)
                    }
                    result = most.map(String.init).joined(separator: " ")
                case "store":
                    // A 200 MB value through the node's shared-memory store (capacity 256 MB):
                    // read back bit-exact here and by a task; one larger than the store fails
                    // clearly and the store keeps working.
                    var big = [UInt8](repeating: 0, count: 200 << 20)
                    for index in stride(from: 0, to: big.count, by: 4096) { big[index] = UInt8(truncatingIfNeeded: index >> 12) }
                    let ref = try await cluster.put(big)
                    let back = try await cluster.get(ref)
                    var parts = ["node \(cluster.nodeID.prefix(8))", identical(back, big) ? "exact" : "differs"]
                    parts.append(try await cluster.get(cluster.submit(Checksum.self, ref)) == checksum(big) ? "task exact" : "task differs")
                    do { _ = try await cluster.put([UInt8](repeating: 1, count: 300 << 20)); parts.append("no error") } catch { parts.append("\(error)") }
                    parts.append(try await cluster.get(cluster.put([UInt8](repeating: 3, count: 10 << 20))).count == 10 << 20 ? "still works" : "broken")
                    result = parts.joined(separator: " | ")
                case "spill":
                    // 1 GB of objects through a store of 256 MB: they spill to disk and come
                    // back bit-exact, here and in a task; dropping the refs frees memory and files.
                    var refs: [ObjectRef<[UInt8]>] = []
                    for seed in 0..<10 { refs.append(try await cluster.put(pattern(seed, 100 << 20))) }
                    let spilled = try await cluster.memory().nodes[0].spilledObjects
                    var exact = 0
                    for (seed, ref) in refs.enumerated() where identical(try await cluster.get(ref), pattern(seed, 100 << 20)) { exact += 1 }
                    let task = try await cluster.get(cluster.submit(VerifyPattern.self, .init(ref: refs[3], seed: 3, size: 100 << 20)))
                    refs.removeAll()
                    let after = try await settledStore(cluster) { $0.used == 0 && $0.objects.isEmpty && spillFiles($0) == 0 }
                    result = "exact \(exact) | task \(task) | spilled \(spilled) | after \(after.used) \(after.objects.count) \(spillFiles(after))"
                case "refcount":
                    // Store memory returns to its baseline once every ref is dropped (puts, and
                    // task results stored by workers), measured by the node.
                    let baseline = try await cluster.memory().nodes[0].used
                    let arenaBaseline = arenaBytes()
                    var puts: [ObjectRef<[UInt8]>] = []
                    for seed in 0..<5 { puts.append(try await cluster.put(pattern(seed, 20 << 20))) }
                    var results: [ObjectRef<[UInt8]>] = []
                    for seed in 0..<3 { results.append(try await cluster.submit(MakePattern.self, .init(seed: seed, size: 10 << 20))) }
                    var exact = 0
                    for (seed, ref) in results.enumerated() where identical(try await cluster.get(ref), pattern(seed, 10 << 20)) { exact += 1 }
                    // A result nobody holds a ref to is freed as soon as it arrives.
                    _ = try await cluster.submit(MakePattern.self, .init(seed: 9, size: 10 << 20))
                    // (It arrives, is found unwanted and freed asynchronously: wait for that.)
                    let held = try await settledStore(cluster) { $0.objects.filter { $0.reference == "local ref" }.count == 8 }
                    let heldObjects = held.objects.filter { $0.reference == "local ref" }.count
                    puts.removeAll()
                    results.removeAll()
                    let after = try await settledStore(cluster) { $0.used == baseline }
                    // The freed memory the node kept for new objects goes back to the system
                    // once it is idle: the arena's file holds no more pages than before.
                    let cooled = try await settledStore(cluster) { $0.warmBytes == 0 && arenaBytes() <= arenaBaseline }
                    result = "exact \(exact) | baseline \(baseline) | held \(held.used >= 130 << 20) \(heldObjects) | after \(after.used) \(after.objects.count)"
                        + " | cooled \(cooled.warmBytes) \(arenaBytes() <= arenaBaseline)"
                case "concurrent-store":
                    // Eight tasks at once, each putting and reading back its own values.
                    let runs = try await (0..<8).asyncMap { seed in
                        try await cluster.submit(PutAndGet.self, .init(seed: seed, count: 6, size: 2 << 20), options: .init(resources: ["CPU": 0.25]))
                    }
                    let exact = try await cluster.get(runs)
                    result = exact.map(String.init).joined(separator: " ")
                case "cross-node":
                    // 200 MB made on another node and read here; 200 MB put here and read there.
                    let other = CommandLine.arguments[2]
                    let made = try await cluster.submit(MakePattern.self, .init(seed: 5, size: 200 << 20), options: .init(scheduling: .node(other)))
                    let here = identical(try await cluster.get(made), pattern(5, 200 << 20))
                    let put = try await cluster.put(pattern(6, 200 << 20))
                    let there = try await cluster.get(cluster.submit(VerifyPattern.self, .init(ref: put, seed: 6, size: 200 << 20),
                                                                     options: .init(scheduling: .node(other))))
                    let copies = try await cluster.memory().nodes.flatMap(\.objects).filter { $0.copy == "copy" }.count
                    // An actor on the other node: a 3 MiB argument stored here is pulled there and
                    // read in place; its 3 MiB result is stored there and pulled here.
                    let remote = try await cluster.spawn(Counter.self, config: 0, options: .init(scheduling: .node(other)))
                    let sum = try await remote.total([UInt8](repeating: 3, count: 3 << 20))
                    let big = try await remote.bigResult(3 << 20)
                    result = "\(here) \(there) copies \(copies) actor \(sum == 3 * (3 << 20)) \(big.count == 3 << 20 && big.allSatisfy { $0 == 9 })"
                case "lineage":
                    // Results stored on a node that then dies: one is rebuilt by running its task
                    // again, one whose task may not run again fails saying so.
                    let (victim, marker) = (CommandLine.arguments[2], CommandLine.arguments[3])
                    let rebuilt = try await cluster.submit(MakePattern.self, .init(seed: 7, size: 20 << 20),
                                                           options: .init(maxRetries: 2, scheduling: .node(victim, soft: true)))
                    let lost = try await cluster.submit(MakePattern.self, .init(seed: 8, size: 20 << 20),
                                                        options: .init(maxRetries: 0, scheduling: .node(victim, soft: true)))
                    _ = await cluster.wait([rebuilt, lost], numReady: 2)
                    _ = FileManager.default.createFile(atPath: marker, contents: nil)
                    // The test kills the node; wait until the head declared it dead.
                    for _ in 0..<200 where try await cluster.nodes().contains(where: { $0.id == victim }) {
                        try await Task.sleep(for: .milliseconds(50))
                    }
                    let exact = identical(try await cluster.get(rebuilt), pattern(7, 20 << 20))
                    var outcome = "no error"
                    do { _ = try await cluster.get(lost) } catch { outcome = "\(error)" }
                    result = "\(exact) | \(outcome)"
                case "view":
                    // Views read arrays in place: a put, a stored task result, a borrowed ref in
                    // a task; a small array is copied; dropping views and refs frees the store.
                    let n = 1 << 20
                    let expected = Double(n) * Double(n - 1) / 2
                    var parts: [String] = []
                    var weights: ObjectRef<[Float]>? = try await cluster.put((0..<n).map(Float.init))
                    var view: ArrayView<Float>? = try await cluster.view(weights!)
                    parts.append("put \(view!.isInPlace) \(view!.count) \(view![12345]) \(view!.reduce(0) { $0 + Double($1) } == expected)")
                    let made = try await cluster.submit(Floats.self, 3 << 20)
                    let madeView = try await cluster.view(made)
                    parts.append("result \(madeView.isInPlace) \(madeView.count) \(madeView[(3 << 20) - 1])")
                    parts.append("task \(try await cluster.get(cluster.submit(SumView.self, weights!)) == expected)")
                    let small = try await cluster.view(cluster.put([Float](repeating: 2, count: 10)))
                    parts.append("small \(small.isInPlace) \(small.reduce(0, +))")
                    // The task's view was dropped when it returned (its unpin may still travel).
                    let pinned = try await settledStore(cluster) { $0.objects.filter { $0.pins > 0 }.count == 2 }.objects.filter { $0.pins > 0 }.count
                    parts.append("pinned \(pinned)")
                    view = nil
                    weights = nil
                    _ = (view, weights)
                    let after = try await settledStore(cluster) { $0.objects.count == 1 }
                    parts.append("left \(after.objects.count)")
                    result = parts.joined(separator: " | ")
                case "metrics":
                    // Four tasks record metrics; the head sums them; /metrics is saved for the
                    // test to parse.
                    _ = try await cluster.get(try await (1...4).asyncMap { try await cluster.submit(RecordMetrics.self, $0) })
                    let samples = try await cluster.metrics(prefix: "test_")
                    let items = samples.first { $0.name == "test_items" }?.value ?? -1
                    let observations = samples.first { $0.name == "test_latency_seconds" }?.count ?? 0
                    guard let url = try await cluster.dashboardURL() else { throw StarlingError.cluster("no dashboard") }
                    // Tasks and actor calls the owners and the actor's host report: 6 tasks
                    // finish, 3 fail, and the actor serves 5 calls of which 1 throws.
                    _ = try await cluster.get(try await (1...6).asyncMap { try await cluster.submit(Square.self, $0) })
                    for code in 1...3 { _ = try? await cluster.get(cluster.submit(Fail.self, code)) }
                    let counter = try await cluster.spawn(Counter.self, config: 10, options: .init(name: "metered"))
                    for _ in 1...4 { _ = try await counter.add(1) }
                    _ = try? await counter.take(1_000)
                    func fetch(_ path: String) async throws -> Any {
                        try JSONSerialization.jsonObject(with: try await URLSession.shared.data(from: URL(string: url + path)!).0)
                    }
                    // Owners report within a second of a change; give them a few.
                    var tasks: [String: Any] = [:], actorCalls: [String: Any] = [:]
                    for _ in 0..<100 {
                        tasks = try await fetch("/api/tasks") as? [String: Any] ?? [:]
                        let actors = try await fetch("/api/actors") as? [[String: Any]] ?? []
                        actorCalls = actors.first { $0["name"] as? String == "metered" }?["calls"] as? [String: Any] ?? [:]
                        let functions = tasks["by_function"] as? [[String: Any]] ?? []
                        let square = functions.first { $0["function"] as? String == "Square" }
                        let fail = functions.first { $0["function"] as? String == "Fail" }
                        if square?["finished"] as? Int == 6, fail?["failed"] as? Int == 3, actorCalls["succeeded"] as? Int == 4,
                           actorCalls["failed"] as? Int == 1 { break }
                        try await Task.sleep(for: .milliseconds(100))
                    }
                    let byState = tasks["by_state"] as? [String: Any] ?? [:]
                    let events = try await fetch("/api/events?limit=200") as? [[String: Any]] ?? []
                    let failedEvents = events.filter { $0["kind"] as? String == "taskFailed" }.compactMap { $0["message"] as? String }
                    let text = String(decoding: try await URLSession.shared.data(from: URL(string: url + "/metrics")!).0, as: UTF8.self)
                    try text.write(toFile: CommandLine.arguments[2], atomically: true, encoding: .utf8)
                    let healthz = String(decoding: try await URLSession.shared.data(from: URL(string: url + "/healthz")!).0, as: UTF8.self)
                    // One line: parts separated by " | ".
                    result = (["\(items) \(observations) \(healthz.trimmingCharacters(in: .whitespacesAndNewlines))",
                               "tasks finished=\(byState["finished"] ?? "-") failed=\(byState["failed"] ?? "-") pending=\(byState["pending"] ?? "-") running=\(byState["running"] ?? "-")",
                               "actor succeeded=\(actorCalls["succeeded"] ?? "-") failed=\(actorCalls["failed"] ?? "-")"]
                              + failedEvents.sorted().map { $0.replacingOccurrences(of: "\n", with: " ") }).joined(separator: " | ")
                case "returned-ref":
                    // A task hands back the ref it was given; the driver drops its own copy and
                    // still reads the value through the returned one.
                    var original: ObjectRef<[UInt8]>? = try await cluster.put(pattern(4, 1 << 20))
                    let echoed = try await cluster.get(cluster.submit(EchoRef.self, original!))
                    original = nil
                    _ = original
                    try await Task.sleep(for: .milliseconds(300))
                    result = identical(try await cluster.get(echoed[0]), pattern(4, 1 << 20)) ? "kept" : "differs"
                case "borrowed-refs":
                    // Refs inside a task's input and in actor calls are resolved by asking their
                    // owner; an actor's own refs come back to the driver the same way.
                    let five = try await cluster.put(5)
                    let sixteen = try await cluster.submit(Square.self, 4)
                    var parts = [String(try await cluster.get(cluster.submit(SumRefs.self, .init(refs: [five, sixteen]))))]
                    let counter = try await cluster.spawn(Counter.self, config: 100)
                    parts.append(String(try await counter.addFrom(sixteen)))
                    let stashed = try await counter.stash(21)
                    parts.append(String(try await cluster.get(stashed)))
                    // Past the inline limit, and past the size from which actor results go
                    // through the store: both arrive whole.
                    let results = [try await counter.bigResult(9 << 20), try await counter.bigResult(2 << 20)]
                    parts.append(results.map { "\($0.count) \($0.allSatisfy { $0 == 9 })" }.joined(separator: " ")
                                 + " \(try await counter.total([UInt8](repeating: 3, count: 2 << 20)))"
                                 // Both went through the driver's node store, and left it once read.
                                 + " store \(try await settledStore(cluster) { $0.used == 0 }.used)")
                    let failed = try await cluster.submit(Fail.self, 3)
                    do { _ = try await cluster.get(cluster.submit(SumRefs.self, .init(refs: [failed]))); parts.append("no error") } catch { parts.append("\(error)") }
                    result = parts.joined(separator: " | ")
                case "actor-exit":
                    // kill with restart: a fresh incarnation from the config; then an exit from
                    // inside, after which calls fail saying so.
                    let counter = try await cluster.spawn(Counter.self, config: 7, options: .init(maxRestarts: 3))
                    _ = try await counter.add(100)
                    try await cluster.kill(counter, restart: true)
                    var parts = [String(try await counter.add(1))]
                    parts.append(String(try await counter.quit()))
                    var outcome = "no error"
                    for _ in 0..<100 {
                        do { _ = try await counter.add(1); try await Task.sleep(for: .milliseconds(20)) } catch { outcome = "\(error)"; break }
                    }
                    parts.append(outcome)
                    result = parts.joined(separator: " | ")
                case "actor-restart":
                    // kill -9 of the actor's worker: restarted with its original config, the
                    // call in flight retried (maxTaskRetries 1); after the one restart allowed,
                    // calls fail at once naming the actor and the cause.
                    let counter = try await cluster.spawn(Counter.self, config: 10,
                                                          options: .init(name: "phoenix", maxRestarts: 1, maxTaskRetries: 1))
                    var parts = [String(try await counter.add(5))]
                    kill(try await counter.pid(), SIGKILL)
                    parts.append(String(try await counter.add(1)))
                    kill(try await counter.pid(), SIGKILL)
                    let clock = ContinuousClock()
                    let start = clock.now
                    do { _ = try await counter.add(1); parts.append("no error") } catch { parts.append("\(error)") }
                    do { _ = try await counter.add(1); parts.append("no error") } catch { parts.append("\(error)") }
                    parts.append(clock.now - start < .seconds(10) ? "fast" : "slow")
                    result = parts.joined(separator: " | ")
                case "actor-node-killed":
                    // An actor pinned (softly) to a node; the test kills that node while the
                    // driver calls it: the head restarts it elsewhere and the calls go on there.
                    let node = CommandLine.arguments[2]
                    let marker = CommandLine.arguments[3]
                    let counter = try await cluster.spawn(Counter.self, config: 0,
                                                          options: .init(scheduling: .node(node, soft: true), maxRestarts: 1, maxTaskRetries: 1))
                    let before = try await counter.whereAmI()
                    _ = FileManager.default.createFile(atPath: marker, contents: Data(before.utf8))
                    var after = before
                    for _ in 0..<400 where after == before {
                        after = try await counter.whereAmI()
                        try await Task.sleep(for: .milliseconds(25))
                    }
                    result = "\(before == node) \(after != before) \(try await counter.add(1))"
                case "placement-node-killed":
                    // A spread group over the two nodes, an actor in the bundle on the victim;
                    // the test kills the victim: the bundle is placed again on the other node
                    // and the actor restarts in it.
                    let victim = CommandLine.arguments[2]
                    let marker = CommandLine.arguments[3]
                    let group = try await cluster.ready(cluster.createPlacementGroup([["CPU": 1], ["CPU": 1]], strategy: .spread), timeout: .seconds(20))
                    guard let lost = group.bundles.first(where: { $0.nodeID == victim })?.index else {
                        throw StarlingError.cluster("no bundle on the victim: \(group.bundles.map(\.nodeID))")
                    }
                    let kept = group.bundles.first { $0.index != lost }
                    let counter = try await cluster.spawn(Counter.self, config: 0,
                                                          options: .init(scheduling: .placementGroup(group, bundle: lost), maxRestarts: 1, maxTaskRetries: 1))
                    let before = try await counter.whereAmI()
                    _ = try await counter.add(5)
                    _ = FileManager.default.createFile(atPath: marker, contents: Data(before.utf8))
                    var after = before
                    for _ in 0..<600 where after == before {
                        after = (try? await counter.whereAmI()) ?? before
                        try await Task.sleep(for: .milliseconds(25))
                    }
                    let again = try await cluster.ready(group, timeout: .seconds(20))
                    let moved = again.bundles.first { $0.index == lost }?.nodeID
                    let stayed = again.bundles.first { $0.index != lost }?.nodeID
                    // A task into the moved bundle through the handle made before the death.
                    let ranOn = try await cluster.get(cluster.submit(Where.self, .init(), options: .init(scheduling: .placementGroup(group, bundle: lost))))
                    result = "\(before == victim) \(after != before) \(moved == after) \(stayed == kept?.nodeID) \(try await counter.add(1)) \(ranOn == moved)"
                case "placement":
                    // Run on a head and two nodes with 2 CPUs each.
                    var parts: [String] = []
                    func nodesOf(_ group: PlacementGroup) -> Int { Set(group.bundles.map(\.nodeID)).count }
                    let strictPack = try await cluster.ready(cluster.createPlacementGroup([["CPU": 1], ["CPU": 1]], strategy: .strictPack), timeout: .seconds(20))
                    let ran = try await cluster.get(cluster.submit(Where.self, .init(), options: .init(scheduling: .placementGroup(strictPack, bundle: 1))))
                    parts.append("strictPack \(nodesOf(strictPack)) \(ran == strictPack.bundles[1].nodeID)")
                    try await cluster.remove(strictPack)
                    let pack = try await cluster.ready(cluster.createPlacementGroup([["CPU": 1], ["CPU": 1]], strategy: .pack), timeout: .seconds(20))
                    parts.append("pack \(nodesOf(pack))")
                    try await cluster.remove(pack)
                    let spread = try await cluster.ready(cluster.createPlacementGroup([["CPU": 1], ["CPU": 1], ["CPU": 1]], strategy: .spread), timeout: .seconds(20))
                    parts.append("spread \(nodesOf(spread))")
                    try await cluster.remove(spread)
                    let strictSpread = try await cluster.ready(cluster.createPlacementGroup([["CPU": 2], ["CPU": 2], ["CPU": 2]], strategy: .strictSpread), timeout: .seconds(20))
                    let actor = try await cluster.spawn(Counter.self, config: 0, options: .init(scheduling: .placementGroup(strictSpread, bundle: 2)))
                    parts.append("strictSpread \(nodesOf(strictSpread)) \(try await actor.whereAmI() == strictSpread.bundles[2].nodeID)")
                    // Everything is reserved now: a new group waits, with a reason, until that one goes.
                    let waiting = try await cluster.createPlacementGroup([["CPU": 1]])
                    do { _ = try await cluster.ready(waiting, timeout: .milliseconds(500)); parts.append("no wait") } catch { parts.append("\(error)") }
                    try await cluster.remove(strictSpread)
                    parts.append(try await cluster.ready(waiting, timeout: .seconds(20)).isReady ? "ready after removal" : "still pending")
                    try await cluster.remove(waiting)
                    for (bundles, strategy) in [([["CPU": 1.0], ["CPU": 1], ["CPU": 1], ["CPU": 1]], PlacementGroupStrategy.strictSpread),
                                                ([["CPU": 3.0]], .pack)] {
                        do { _ = try await cluster.createPlacementGroup(bundles, strategy: strategy); parts.append("no error") } catch { parts.append("\(error)") }
                    }
                    result = parts.joined(separator: " | ")
                case "actor-detached-create":
                    let registry = try await cluster.spawn(Counter.self, config: 100,
                                                           options: .init(name: "registry", namespace: "tests", lifetime: .detached))
                    _ = try await registry.add(1)
                    let again = try await cluster.spawn(Counter.self, config: 0,
                                                        options: .init(name: "registry", namespace: "tests", lifetime: .detached, getIfExists: true))
                    result = String(try await again.add(1))
                case "actor-detached-use":
                    let registry = try await cluster.actor(named: "registry", namespace: "tests", as: Counter.self)
                    let total = try await registry.add(10)
                    try await cluster.kill(registry)
                    var after = "no error"
                    do { _ = try await cluster.actor(named: "registry", namespace: "tests", as: Counter.self) } catch { after = "\(error)" }
                    result = "\(total) | \(after)"
                case "nodes":
                    let nodes = try await cluster.nodes()
                    result = "\(nodes.count) head=\(nodes.first { $0.isHead }?.id ?? "none") local=\(cluster.nodeID)"
                case "spread-all":
                    // One task on each node at once (a barrier holds them until all started).
                    result = try await nodesUsed(cluster, count: try await cluster.nodes().count, sleepMillis: 0, barrier: true,
                                                 options: .init(scheduling: .spread))
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
                    guard let outcome = try await TuneScenarios.run(scenario, Array(CommandLine.arguments.dropFirst(2)), cluster) else {
                        throw StarlingError.cluster("unknown scenario \(scenario)")
                    }
                    result = outcome
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
