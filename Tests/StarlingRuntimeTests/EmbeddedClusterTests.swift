#if canImport(Glibc)
import Glibc
#endif
import Foundation
import StarlingNode
import StarlingWire
import Testing

/// Runs `StarlingTestApp SCENARIO` as a real driver process (its embedded cluster starts real
/// worker processes from the same executable) and returns what it printed after `RESULT `.
/// Afterwards it checks that no process of that run and no session directory is left.
func runScenario(_ arguments: [String], environment: [String: String] = [:], timeout: Duration = .seconds(120),
                 whileRunning: (Int32) async throws -> Void = { _ in }) async throws -> String {
    let (process, output, errors) = try startScenario(arguments, environment: environment)
    defer { try? FileManager.default.removeItem(atPath: errors) }
    let pid = process.processIdentifier
    let watchdog = Task {
        try await Task.sleep(for: timeout)
        kill(pid, SIGKILL)
    }
    try await whileRunning(pid)
    // Read and wait on a thread of its own: blocking here would take one of the two threads of
    // Swift's cooperative pool from every other test for as long as the scenario runs.
    let reader = output.fileHandleForReading
    let data = await onOwnThread {
        let data = reader.readDataToEndOfFile()
        process.waitUntilExit()
        return data
    }
    watchdog.cancel()
    let text = String(decoding: data, as: UTF8.self)
    try await expectNoLeftovers(of: pid)
    guard process.terminationStatus == 0, let line = text.split(separator: "\n").first(where: { $0.hasPrefix("RESULT ") }) else {
        // A crash says why on standard error (a trap's message names its file and line).
        let stderr = (try? String(contentsOfFile: errors, encoding: .utf8)) ?? ""
        let how = process.terminationReason == .uncaughtSignal ? "was killed by signal" : "exited with"
        throw ScenarioError.failed("\(arguments.joined(separator: " ")) \(how) \(process.terminationStatus): \(text)"
                                   + (stderr.isEmpty ? "" : "\nstandard error (end):\n" + String(stderr.suffix(3000))))
    }
    return String(line.dropFirst("RESULT ".count))
}

/// A product of this package built next to the test bundle (`StarlingTestApp`, `starling`).
func builtProduct(_ name: String) throws -> URL {
    let directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    let candidates = [directory.appendingPathComponent(name), directory.deletingLastPathComponent().appendingPathComponent(name)]
    guard let executable = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) else {
        throw ScenarioError.missing("\(name) not found next to \(CommandLine.arguments[0]); build with `swift build --build-tests`")
    }
    return executable
}

/// Starts the test app with stdout on a pipe and stderr in a file (returned; the caller
/// removes it).
func startScenario(_ arguments: [String], environment: [String: String] = [:]) throws -> (Process, Pipe, String) {
    let process = Process()
    process.executableURL = try builtProduct("StarlingTestApp")
    process.arguments = arguments
    if !environment.isEmpty {
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
    }
    let output = Pipe()
    process.standardOutput = output
    let errors = NSTemporaryDirectory() + "starling-scenario-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).err"
    guard FileManager.default.createFile(atPath: errors, contents: nil), let errorFile = FileHandle(forWritingAtPath: errors) else {
        throw ScenarioError.missing("cannot create \(errors) for the scenario's standard error")
    }
    defer { try? errorFile.close() }
    process.standardError = errorFile
    do {
        try process.run()
    } catch {
        try? FileManager.default.removeItem(atPath: errors)
        throw error
    }
    return (process, output, errors)
}

/// After driver (or node) `pid` exited: none of its workers and no session directory may
/// remain (`allowSession`: a process killed with SIGKILL cannot clean up its directory; the
/// next Starling process to start removes it, here the test does).
func expectNoLeftovers(of pid: Int32, allowSession: Bool = false) async throws {
    var leftovers: [String] = []
    for _ in 0..<50 {
        leftovers = workersOf(pid)
        if leftovers.isEmpty { break }
        try await Task.sleep(for: .milliseconds(100))
    }
    for leftover in leftovers { kill(pid_t(leftover) ?? 0, SIGKILL) }
    #expect(leftovers.isEmpty, "worker processes of driver \(pid) outlived it: \(leftovers)")
    let sessions = (try? FileManager.default.contentsOfDirectory(atPath: "/tmp"))?.filter { $0.hasPrefix("starling-\(pid)-") } ?? []
    #expect(allowSession || sessions.isEmpty, "session directory left behind: \(sessions)")
    for session in sessions { try? FileManager.default.removeItem(atPath: "/tmp/" + session) }
    // Likewise the object-store segments of a node killed with SIGKILL.
    let segments = ((try? FileManager.default.contentsOfDirectory(atPath: "/dev/shm")) ?? []).filter { $0.hasPrefix("starling-\(pid)-") }
    #expect(allowSession || segments.isEmpty, "shared-memory segments left behind: \(segments)")
    for segment in segments { shm_unlink("/" + segment) }
}

/// Pids of the worker processes of driver (or node) `pid`, found by the session directory in
/// their environment (orphans are re-parented, so a parent-pid check would miss exactly the leaks).
func workersOf(_ pid: Int32) -> [String] {
    ProcessTable.withEnvironment(prefix: "STARLING_SESSION_DIR=/tmp/starling-\(pid)-").map(String.init)
}

func isRunning(_ pid: Int32) -> Bool { ProcessTable.isRunning(pid) }

enum ScenarioError: Error, CustomStringConvertible {
    case missing(String)
    case failed(String)
    var description: String {
        switch self { case let .missing(text), let .failed(text): return text }
    }
}

@Suite("Embedded cluster (real processes)")
struct EmbeddedClusterTests {
    @Test("Each process's threads are placed: the driver on one CPU (and it exports the CPUs it had), a worker on as many as its lease has, the first beside the driver")
    func threadPlacement() async throws {
        // This test process is not placed: its CPUs are the machine's.
        let machine = try #require(CPUAffinity.parse(String(try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
            .split(separator: "\n").first { $0.hasPrefix("Cpus_allowed_list:") }!.split(separator: "\t").last!)))
        let lists = try await runScenario(["cpu-placement"]).split(separator: " ").map { CPUAffinity.parse(String($0)) }
        try #require(lists.count == 4)
        let (driver, one, two) = (try #require(lists[0]), try #require(lists[1]), try #require(lists[2]))
        #expect(driver.count == 1)
        #expect(one == driver)
        #expect(two.count == min(2, machine.count))
        // What the processes it starts take back (starling start, workers).
        #expect(lists[3] == machine)
        let unplaced = try await runScenario(["cpu-placement"], environment: ["STARLING_DRIVER_CPUS": "all"])
        #expect(unplaced.split(separator: " ").first.flatMap { CPUAffinity.parse(String($0)) } == machine)
    }

    @Test("remote functions run on worker processes and return their results")
    func squares() async throws {
        #expect(try await runScenario(["squares"]) == String((0..<100).map { $0 * $0 }.reduce(0, +)))
    }

    @Test("10,000 small tasks all complete, nothing lost")
    func tenThousand() async throws {
        let expected = (0..<10_000).map { ($0 % 100) * ($0 % 100) }.reduce(0, +)
        #expect(try await runScenario(["many", "10000"]) == "10000 \(expected)")
    }

    @Test("a user error reaches get with its type, message and the task name")
    func userError() async throws {
        let error = try await runScenario(["user-error"])
        #expect(error.hasPrefix("task Fail failed with StarlingTestApp.Fail.Boom: boom 7 (worker log: /tmp/starling-"), "\(error)")
        #expect(error.hasSuffix(".log)"), "the error names the worker's log: \(error)")
    }

    @Test("an infeasible task fails at once naming the resources asked and the largest node")
    func infeasible() async throws {
        let message = try await runScenario(["infeasible"])
        #expect(message.contains("needs {CPU: 64}"))
        #expect(message.contains("has {CPU: 2}"))
    }

    @Test("with waitIfInfeasible an infeasible task waits instead of failing")
    func infeasibleWaits() async throws {
        let message = try await runScenario(["infeasible-wait"])
        #expect(message.hasPrefix("get of "), "\(message)")
        #expect(message.hasSuffix("timed out after 1.0 s"), "\(message)")
    }

    @Test("kill -9 of a worker mid-task is recovered by retry on a new worker")
    func workerKilled() async throws {
        #expect(try await runScenario(["worker-killed"]) == "survived")
    }

    @Test("tasks needing a resource in short supply queue and then run; their workers die with the driver")
    func queueing() async throws {
        let result = try await runScenario(["queue"])
        let parts = result.split(separator: " ")
        #expect(parts.first == "4")
        let pids = parts.count > 1 ? parts[1].split(separator: ",").compactMap { Int32($0) } : []
        #expect(!pids.isEmpty, "the tasks reported no worker pid: \(result)")
        for pid in pids {
            #expect(!isRunning(pid), "worker \(pid) outlived its driver")
            if isRunning(pid) { kill(pid, SIGKILL) }
        }
    }

    @Test("a ref argument is resolved before its task runs; a failed dependency fails the task")
    func refArguments() async throws {
        let result = try await runScenario(["ref-args"])
        #expect(result.hasPrefix("81 | "))
        #expect(result.contains("task Fail failed with StarlingTestApp.Fail.Boom: boom 1"))
    }

    @Test("a task submits tasks of its own (nested tasks) and gets their results")
    func nestedTasks() async throws {
        #expect(try await runScenario(["nested"]) == String((0..<10).map { $0 * $0 }.reduce(0, +)))
    }

    @Test("cancel stops a running task and drops a queued one; get reports the cancellation")
    func cancelTasks() async throws {
        // The running task's sleep (60 s) records that it was cancelled, not that it ran out;
        // the queued one never started.
        let result = try await runScenario(["cancel"])
        #expect(result == "task SleepOrMark was cancelled | task SleepOrMark was cancelled | running: cancelled, queued ran: false", "\(result)")
    }

    @Test("the node takes back the leases of an owner that died (a nested-task owner killed)")
    func ownerDies() async throws {
        #expect(try await runScenario(["owner-dies"]) == "recovered true")
    }

    @Test("wait returns the first ready refs, and honours its timeout")
    func waitSemantics() async throws {
        #expect(try await runScenario(["wait"]) == "1 true 1 2")
    }

    @Test("get with a timeout fails with a typed error and the cluster shuts down cleanly")
    func getTimeout() async throws {
        #expect(try await runScenario(["get-timeout"]).contains("timed out after 0.2 s"))
    }
}

@Suite("Embedded cluster: worker pool and cancellation (real processes)")
struct WorkerPoolTests {
    @Test("idle workers beyond the prestarted one are stopped after the idle timeout")
    func idleWorkersStop() async throws {
        // Two workers ran the two tasks at once; all but one are stopped once idle past the timeout.
        let counts = try await runScenario(["idle-stop"]).split(separator: " ").compactMap { Int($0) }
        #expect(counts.count == 2 && counts[0] == 2, "\(counts)")
        #expect(counts.last == 1, "\(counts)")
    }

    @Test("cancelling the Swift Task waiting in get cancels the remote task")
    func getCancellation() async throws {
        let result = try await runScenario(["get-cancelled"])
        #expect(result.hasPrefix("task ObjectRef<Int32>("), "\(result)")
        #expect(result.hasSuffix(") was cancelled | true"), "\(result)")
    }
}

@Suite("Embedded cluster: size limits (real processes)")
struct SizeLimitTests {
    @Test("results past the inline limit go through the node's store; arguments past it fail with a typed error; many large results in flight all arrive")
    func inlineLimit() async throws {
        let parts = try await runScenario(["too-large"]).components(separatedBy: " | ")
        #expect(parts.count == 3)
        #expect(parts.first == String(9 << 20), "a result past the inline limit arrives through the store: \(parts)")
        #expect(parts.dropFirst().first?.hasPrefix("task argument: its argument is ") == true, "\(parts)")
        #expect(parts.last == String(12 * (7 << 20)))
    }
}

@Suite("Object store (real processes)")
struct ObjectStoreTests {
    @Test("a 200 MB value goes through the node's shared memory bit-exact, to a task too; a put larger than the store fails clearly; no segment is left")
    func sharedMemoryStore() async throws {
        let parts = try await runScenario(["store"]).components(separatedBy: " | ")
        #expect(parts.count == 5, "\(parts)")
        guard parts.count == 5 else { return }
        #expect(parts[1] == "exact")
        #expect(parts[2] == "task exact")
        #expect(parts[3].hasPrefix("an object of 3145728") && parts[3].hasSuffix(" bytes does not fit: it is larger than the whole object store (268435456 bytes)"), "\(parts[3])")
        #expect(parts[4] == "still works")
        expectNoSegments(ofNode: parts[0].replacingOccurrences(of: "node ", with: ""))
    }

    @Test("1 GB of objects through a store of 256 MB spills to disk and reads back bit-exact; dropping the refs frees memory and spill files")
    func spilling() async throws {
        let result = try await runScenario(["spill"], timeout: .seconds(240))
        let parts = result.components(separatedBy: " | ")
        #expect(parts.count == 4, "\(result)")
        guard parts.count == 4 else { return }
        #expect(parts[0] == "exact 10")
        #expect(parts[1] == "task true")
        let spilled = Int(parts[2].split(separator: " ").last ?? "") ?? 0
        #expect(spilled >= 8, "10 objects of 100 MB in 256 MB must spill at least 8: \(parts[2])")
        #expect(parts[3] == "after 0 0 0", "store use, objects and spill files after the refs were dropped: \(parts[3])")
    }

    @Test("dropping every ref returns the store's memory to its baseline (puts and stored task results), measured by the node and in /dev/shm")
    func referenceCounting() async throws {
        let result = try await runScenario(["refcount"])
        let parts = result.components(separatedBy: " | ")
        #expect(parts.count == 5, "\(result)")
        guard parts.count == 5 else { return }
        #expect(parts[0] == "exact 3")
        #expect(parts[1] == "baseline 0")
        #expect(parts[2] == "held true 8", "5 puts and 3 held results are the driver's local refs: \(parts[2])")
        #expect(parts[3] == "after 0 0")
        #expect(parts[4] == "cooled 0 true", "freed memory kept for new objects, and the arena's pages in /dev/shm, go back once idle: \(parts[4])")
    }

    @Test("views read arrays in place (a put, a stored result, a borrowed ref in a task); small ones are copied; views pin their objects until dropped")
    func views() async throws {
        let result = try await runScenario(["view"])
        #expect(result == "put true 1048576 12345.0 true | result true 3145728 3145727.0 | task true | small false 20.0 | pinned 2 | left 1", "\(result)")
    }

    @Test("a ref a task returns keeps its value alive after the driver dropped its own copy")
    func returnedRef() async throws {
        #expect(try await runScenario(["returned-ref"]) == "kept")
    }

    @Test("8 tasks put and get their own objects at the same time, all bit-exact")
    func concurrentPutGet() async throws {
        #expect(try await runScenario(["concurrent-store"]) == Array(repeating: "6", count: 8).joined(separator: " "))
    }
}

/// No shared-memory segment of the node is left in /dev/shm.
func expectNoSegments(ofNode node: String) {
    let left = ((try? FileManager.default.contentsOfDirectory(atPath: "/dev/shm")) ?? []).filter { $0.hasPrefix("starling-") && $0.contains("-\(node.prefix(8))-") }
    #expect(left.isEmpty, "shared-memory segments left behind: \(left)")
}
