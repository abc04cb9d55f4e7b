#if canImport(Glibc)
import Glibc
#endif
import Foundation
import StarlingWire
import Testing

/// A head and node managers started with the `starling` command on 127.0.0.1, each a real
/// process with its own port and resources. `stop()` ends them all and checks that no process,
/// worker or session directory of theirs is left.
final class LocalCluster {
    struct Member {
        let process: Process
        let logPath: String
        var nodeID = ""
        var session = ""
    }

    let directory: String
    let tokenFile: String
    private(set) var members: [Member] = []
    private(set) var headAddress = ""
    /// The head's HTTP endpoint (dashboard, /metrics).
    private(set) var dashboardURL = ""

    var environment: [String: String] { ["STARLING_ADDRESS": headAddress, "STARLING_TOKEN_FILE": tokenFile] }

    /// Extra environment of every member (TLS variables, for one).
    let memberEnvironment: [String: String]
    /// A command every member runs under (`taskset -c 0`, say): its first word is the program.
    let launchPrefix: [String]

    /// Starts a head with `headResources` and one node per entry of `nodeResources`.
    init(headResources: String, nodeResources: [String], headArguments: [String] = [], launchPrefix: [String] = [],
         memberEnvironment: [String: String] = [:]) async throws {
        self.memberEnvironment = memberEnvironment
        self.launchPrefix = launchPrefix
        directory = NSTemporaryDirectory() + "starling-test-cluster-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        tokenFile = directory + "/token"
        do {
            let head = try launch(["start", "--head", "--port", "0", "--resources", headResources, "--token-file", tokenFile,
                                   "--dashboard-port", "0"] + headArguments, name: "head")
            let headLine = try await waitForLine(head, prefix: "starling head listening at ")
            headAddress = String(headLine.split(separator: " ")[4])
            dashboardURL = String(try await waitForLine(head, prefix: "starling dashboard at ").split(separator: " ")[3])
            members.append(head)
            try await describe(0)
            for (index, resources) in nodeResources.enumerated() {
                members.append(try launch(["start", "--address", headAddress, "--resources", resources, "--token-file", tokenFile], name: "node\(index)"))
                try await describe(members.count - 1)
            }
            // Nodes learn of each other through the head's view on their next heartbeat: wait
            // until the head's node (where drivers ask first) sees them all.
            _ = try await waitForLine(members[0], prefix: "", containing: "sees \(members.count) live nodes")
        } catch {
            await stop()
            throw error
        }
    }

    private func launch(_ arguments: [String], name: String) throws -> Member {
        let process = Process()
        let starling = try builtProduct("starling")
        if let wrapper = launchPrefix.first {
            process.executableURL = URL(fileURLWithPath: wrapper)
            process.arguments = Array(launchPrefix.dropFirst()) + [starling.path] + arguments
        } else {
            process.executableURL = starling
            process.arguments = arguments
        }
        // Info level: the harness waits on the head's "sees N live nodes" line.
        process.environment = ProcessInfo.processInfo.environment.merging(["STARLING_LOG": "info"].merging(memberEnvironment) { _, new in new }) { _, new in new }
        let logPath = "\(directory)/\(name).log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = FileHandle(forWritingAtPath: logPath)!
        process.standardOutput = log
        process.standardError = log
        try process.run()
        return Member(process: process, logPath: logPath)
    }

    private func waitForLine(_ member: Member, prefix: String, containing: String = "") async throws -> String {
        for _ in 0..<300 {
            let text = (try? String(contentsOfFile: member.logPath, encoding: .utf8)) ?? ""
            if let line = text.split(separator: "\n").first(where: { $0.hasPrefix(prefix) && (containing.isEmpty || $0.contains(containing)) }) {
                return String(line)
            }
            if !member.process.isRunning { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        let text = (try? String(contentsOfFile: member.logPath, encoding: .utf8)) ?? ""
        throw ScenarioError.failed("\(member.process.arguments ?? []) did not print \"\(prefix)…\(containing)\": \(text)")
    }

    /// Reads the node id a member printed and its session directory.
    private func describe(_ index: Int) async throws {
        let line = try await waitForLine(members[index], prefix: "starling node ")
        members[index].nodeID = String(line.split(separator: " ")[2])
        let pid = members[index].process.processIdentifier
        members[index].session = ((try? FileManager.default.contentsOfDirectory(atPath: "/tmp")) ?? [])
            .first { $0.hasPrefix("starling-\(pid)-") }.map { "/tmp/" + $0 } ?? ""
    }

    /// Starts one more node and waits until it registered (not until the others see it).
    func addNode(resources: String) async throws -> String {
        members.append(try launch(["start", "--address", headAddress, "--resources", resources, "--token-file", tokenFile], name: "node\(members.count)"))
        try await describe(members.count - 1)
        return members[members.count - 1].nodeID
    }

    func log(_ index: Int) -> String { (try? String(contentsOfFile: members[index].logPath, encoding: .utf8)) ?? "" }

    /// kill -9 of a member once the driver wrote `marker` (up to 10 s).
    func kill9(_ index: Int, once marker: String) async throws {
        for _ in 0..<400 where !FileManager.default.fileExists(atPath: marker) {
            try await Task.sleep(for: .milliseconds(25))
        }
        kill9(index)
    }

    /// kill -9 of a member (its workers die with it: they watch their parent).
    func kill9(_ index: Int) {
        kill(members[index].process.processIdentifier, SIGKILL)
        members[index].process.waitUntilExit()
    }

    /// Stops every member (SIGTERM, then SIGKILL after 10 s) and checks nothing is left.
    func stop() async {
        for member in members where member.process.isRunning { member.process.terminate() }
        for member in members {
            for _ in 0..<100 where member.process.isRunning { try? await Task.sleep(for: .milliseconds(100)) }
            if member.process.isRunning {
                Issue.record("\(member.process.arguments ?? []) ignored SIGTERM for 10 s")
                kill(member.process.processIdentifier, SIGKILL)
                member.process.waitUntilExit()
            }
        }
        for member in members {
            try? await expectNoLeftovers(of: member.process.processIdentifier, allowSession: member.process.terminationReason == .uncaughtSignal)
        }
        try? FileManager.default.removeItem(atPath: directory)
    }
}

@Suite("Multi-node cluster on 127.0.0.1 (real processes)", .serialized)
struct MultiNodeClusterTests {
    /// Runs `scenario` (given the last node's id and a marker path) on a fresh cluster, and kills
    /// that node with -9 once the driver wrote the marker; returns the scenario's result.
    func runKillingNode(_ scenario: String) async throws -> String {
        var result = ""
        try await withCluster { cluster in
            let marker = cluster.directory + "/\(scenario)-marker"
            result = try await runScenario([scenario, cluster.members[2].nodeID, marker], environment: cluster.environment) { _ in
                try await cluster.kill9(2, once: marker)
            }
        }
        return result
    }

    /// Runs `body` against a head with no CPUs and two 4-CPU nodes, then stops them all.
    func withCluster(_ body: (LocalCluster) async throws -> Void) async throws {
        let cluster = try await LocalCluster(headResources: "CPU=0", nodeResources: ["CPU=4", "CPU=4"])
        do {
            try await body(cluster)
        } catch {
            await cluster.stop()
            throw error
        }
        await cluster.stop()
    }

    @Test("a driver joins with STARLING_ADDRESS: it sees every node, its executable reaches the nodes, tasks run")
    func joinAndRun() async throws {
        try await withCluster { cluster in
            let nodes = try await runScenario(["nodes"], environment: cluster.environment)
            #expect(nodes == "3 head=\(cluster.members[0].nodeID) local=\(cluster.members[0].nodeID)")
            #expect(try await runScenario(["squares"], environment: cluster.environment) == String((0..<100).map { $0 * $0 }.reduce(0, +)))
            // The nodes lacked the driver's executable: they fetched it from the head by hash.
            let fetched = cluster.members.dropFirst().filter { member in
                let cache = member.session + "/job-executables"
                return !(((try? FileManager.default.subpathsOfDirectory(atPath: cache)) ?? []).filter { $0.hasSuffix("StarlingTestApp") }.isEmpty)
            }
            #expect(!fetched.isEmpty, "no node holds a fetched copy of the job's executable")
            // The driver has exited: the head told every node to stop its job's workers.
            var remaining: [String] = []
            for _ in 0..<50 {
                remaining = cluster.members.flatMap { workersOf($0.process.processIdentifier) }
                if remaining.isEmpty { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(remaining.isEmpty, "workers of a finished job are still running: \(remaining)")
        }
    }

    @Test("spread tasks land on both nodes; default tasks pack onto one")
    func spreadAndPack() async throws {
        try await withCluster { cluster in
            let nodeIDs = [cluster.members[1].nodeID, cluster.members[2].nodeID].sorted()
            let spread = try await runScenario(["spread"], environment: cluster.environment)
            // Two tasks: spread puts one on each node, where the default policy would pack both onto one.
            #expect(spread == "2 " + nodeIDs.joined(separator: ","))
            let packed = try await runScenario(["pack"], environment: cluster.environment)
            let parts = packed.split(separator: " ")
            #expect(parts.first == "2")
            #expect(parts.count == 2 && !parts[1].contains(","), "default tasks spread instead of packing: \(packed)")
        }
    }

    @Test("node affinity: hard runs only on the node named; to a missing node hard fails fast, soft runs elsewhere")
    func affinity() async throws {
        try await withCluster { cluster in
            let target = cluster.members[2].nodeID
            #expect(try await runScenario(["affinity", target], environment: cluster.environment) == "4 \(target)")
            let dead = try await runScenario(["affinity-dead"], environment: cluster.environment)
            #expect(dead.hasPrefix("true | "))
            #expect(dead.contains("pinned to node 00112233445566778899aabbccddeeff, which is not alive"))
        }
    }

    @Test("a task pinned to a node that joined a moment ago runs there: the node asks the head rather than wait for its next heartbeat's view")
    func affinityToANewNode() async throws {
        // Heartbeats (which carry the view) every 20 s: the head's node cannot know of the new one.
        let cluster = try await LocalCluster(headResources: "CPU=1", nodeResources: [],
                                             headArguments: ["--heartbeat-interval", "20", "--node-timeout", "120"])
        do {
            let target = try await cluster.addNode(resources: "CPU=1")
            #expect(try await runScenario(["affinity", target], environment: cluster.environment) == "4 \(target)")
        } catch {
            await cluster.stop()
            throw error
        }
        await cluster.stop()
    }

    @Test("a node started by a driver that placed its threads takes back the CPUs the driver had; one placed elsewhere on purpose keeps its CPUs")
    func inheritedPlacementUndone() async throws {
        let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
        let line = try #require(status.split(separator: "\n").first { $0.hasPrefix("Cpus_allowed_list:") }?.split(separator: "\t").last)
        let machine = try #require(CPUAffinity.parse(String(line)))
        guard machine.count >= 2, let first = machine.first else { return } // nothing to take back on one CPU
        func headCPUs(placedBy driver: Int) async throws -> String? {
            // As if started by a driver placed on `driver`: the head starts confined to `first`.
            let cluster = try await LocalCluster(headResources: "CPU=1", nodeResources: [], launchPrefix: ["/usr/bin/taskset", "-c", "\(first)"],
                                                 memberEnvironment: [CPUAffinity.unplacedVariable: CPUAffinity.format(machine),
                                                                     CPUAffinity.placedVariable: "\(driver)"])
            let pid = cluster.members[0].process.processIdentifier
            let head = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
            await cluster.stop()
            return head?.split(separator: "\n").first { $0.hasPrefix("Cpus_allowed_list:") }?.split(separator: "\t").last.map(String.init)
        }
        #expect(try await headCPUs(placedBy: first) == CPUAffinity.format(machine))
        // Its CPUs are not the ones the driver was placed on: someone chose them; they stay.
        #expect(try await headCPUs(placedBy: machine[1]) == "\(first)")
    }

    @Test("a named detached actor outlives its driver; a second driver finds it by name, calls it and kills it")
    func detachedActor() async throws {
        try await withCluster { cluster in
            // get-or-create returns the same actor: 100 + 1 + 1.
            #expect(try await runScenario(["actor-detached-create"], environment: cluster.environment) == "102")
            let used = try await runScenario(["actor-detached-use"], environment: cluster.environment)
            #expect(used.hasPrefix("112 | "), "the second driver saw the first one's state: \(used)")
            #expect(used.contains("no live actor named \"registry\" in namespace \"tests\""), "\(used)")
        }
    }

    @Test("kill -9 of the node hosting an actor: the head restarts it on the other node and calls go on")
    func actorNodeKilled() async throws {
        let result = try await runKillingNode("actor-node-killed")
        // It ran on the victim first, then elsewhere, with its state from its config (0 + 1).
        #expect(result == "true true 1")
    }

    @Test("kill -9 of a node holding a placement group's bundle: the bundle is placed again elsewhere; the actor in it restarts there and tasks follow it")
    func placementGroupNodeKilled() async throws {
        let result = try await runKillingNode("placement-node-killed")
        // On the victim first; then on the other node, in the same bundle index, which moved
        // there; the group's other bundle stayed; state from its config again (0 + 1, not the 5
        // added before the kill); a task sent with the old handle runs in the moved bundle.
        #expect(result == "true true true true 1 true")
    }

    @Test("placement groups of each strategy on three nodes; tasks and actors run in their bundles; pending and infeasible ones say why")
    func placementGroups() async throws {
        let cluster = try await LocalCluster(headResources: "CPU=2", nodeResources: ["CPU=2", "CPU=2"])
        do {
            let parts = try await runScenario(["placement"], environment: cluster.environment).components(separatedBy: " | ")
            #expect(parts.count == 8, "\(parts)")
            if parts.count == 8 {
                #expect(parts[0] == "strictPack 1 true")
                #expect(parts[1] == "pack 1")
                #expect(parts[2] == "spread 3")
                #expect(parts[3] == "strictSpread 3 true")
                #expect(parts[4].hasPrefix("placement group ") && parts[4].contains("is not ready: pending: "), "\(parts[4])")
                #expect(parts[5] == "ready after removal")
                #expect(parts[6].contains("strictSpread needs 4 different nodes but the cluster has 3 live nodes"), "\(parts[6])")
                #expect(parts[7].contains("bundle 0 needs {CPU: 3} but no live node has that much in all"), "\(parts[7])")
            }
        } catch {
            await cluster.stop()
            throw error
        }
        await cluster.stop()
    }

    @Test("kill -9 of a whole node mid-task: its tasks are retried on the other node")
    func nodeKilled() async throws {
        try await withCluster { cluster in
            let markers = cluster.directory + "/markers"
            try FileManager.default.createDirectory(atPath: markers, withIntermediateDirectories: true)
            let victim = cluster.members[2].nodeID
            let survivor = cluster.members[1].nodeID
            let result = try await runScenario(["node-killed", markers], environment: cluster.environment) { _ in
                for _ in 0..<200 {
                    let started = (try? FileManager.default.contentsOfDirectory(atPath: markers)) ?? []
                    if started.contains(where: { $0.hasPrefix(victim) }) { break }
                    try await Task.sleep(for: .milliseconds(50))
                }
                cluster.kill9(2)
            }
            let started = (try? FileManager.default.contentsOfDirectory(atPath: markers)) ?? []
            #expect(started.contains { $0.hasPrefix(victim) }, "no task ever started on the node that was killed")
            #expect(result == "6 \(survivor)")
            #expect(cluster.log(0).contains("node \(victim.prefix(8)) is dead"), "the head did not declare the killed node dead")
        }
    }

    @Test("a 200 MB object made on one node is read bit-exact on another, and one put here is read there; an actor there takes and returns 3 MiB")
    func crossNodeObjects() async throws {
        var nodes: [String] = []
        try await withCluster { cluster in
            nodes = cluster.members.map(\.nodeID)
            let result = try await runScenario(["cross-node", cluster.members[2].nodeID], environment: cluster.environment, timeout: .seconds(240))
            // Each read pulled a copy to the reader's node; large actor values cross both ways.
            #expect(result == "true true copies 2 actor true true")
        }
        for node in nodes { expectNoSegments(ofNode: node) }
    }

    @Test("the node holding a task's stored result is killed: get rebuilds it by running the task again; without retries left it says why")
    func lineageReconstruction() async throws {
        try await withCluster { cluster in
            let victim = cluster.members[2].nodeID
            let marker = cluster.directory + "/results-ready"
            let result = try await runScenario(["lineage", victim, marker], environment: cluster.environment) { _ in
                try await cluster.kill9(2, once: marker)
            }
            let parts = result.components(separatedBy: " | ")
            #expect(parts.first == "true", "the rebuilt result differs: \(result)")
            #expect(parts.last?.contains("is lost: ") == true && parts.last?.contains("no live node holds it") == true && parts.last?.contains("its task MakePattern cannot run again: all 1 attempt(s)") == true, "\(result)")
        }
    }

    @Test("starling submit runs a binary as a job's driver and streams its output; job status, logs and stop; a failing job fails; a wrong token is refused")
    func submitJobs() async throws {
        try await withCluster { cluster in
            let cli = try builtProduct("starling").path
            let app = try builtProduct("StarlingTestApp").path
            let at = ["--address", cluster.headAddress, "--token-file", cluster.tokenFile]
            // Waiting: the job's output arrives, and submit exits with the job's exit code.
            let squares = try await ChildProcessOutput.run(cli, ["submit"] + at + [app, "squares"])
            #expect(squares.status == 0 && squares.output.contains("RESULT 328350"), "\(squares)")
            #expect(squares.error.contains("SUCCEEDED"), "\(squares)")
            let failing = try await ChildProcessOutput.run(cli, ["submit"] + at + [app, "no-such-scenario"])
            #expect(failing.status == 1 && failing.output.contains("ERROR unknown scenario no-such-scenario"), "\(failing)")
            #expect(failing.error.contains("FAILED") && failing.error.contains("exited with code 1"), "\(failing)")

            // --no-wait prints the id; the job runs until `job stop`.
            let started = try await ChildProcessOutput.run(cli, ["submit", "--no-wait", "--name", "sleeper"] + at + [app, "sleep"])
            let id = started.output.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(started.status == 0 && id.hasPrefix("job-"), "\(started)")
            var status = ""
            for _ in 0..<200 {
                status = try await ChildProcessOutput.run(cli, ["job", "status", id] + at).output
                let logs = try await ChildProcessOutput.run(cli, ["job", "logs", id] + at).output
                if status.contains("RUNNING"), logs.contains("SLEEPING") { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(status.contains("job \(id) (sleeper): RUNNING") && status.contains("[job id "), "\(status)")
            let stop = try await ChildProcessOutput.run(cli, ["job", "stop", id] + at)
            #expect(stop.output.contains("stopping"), "\(stop)")
            for _ in 0..<100 where !status.contains("STOPPED") {
                try await Task.sleep(for: .milliseconds(100))
                status = try await ChildProcessOutput.run(cli, ["job", "status", id] + at).output
            }
            #expect(status.contains("STOPPED") && status.contains("stopped by `starling job stop`"), "\(status)")
            let again = try await ChildProcessOutput.run(cli, ["job", "stop", id] + at)
            #expect(again.output.contains("had already finished"), "\(again)")
            let unknown = try await ChildProcessOutput.run(cli, ["job", "status", "job-nope"] + at)
            #expect(unknown.status != 0 && unknown.error.contains("no submitted job job-nope"), "\(unknown)")

            // A running task shows in `list workers` with its name, node and worker pid, and in
            // `list tasks` (as its owner reports it) and `status` as running.
            let tasker = try await ChildProcessOutput.run(cli, ["submit", "--no-wait"] + at + [app, "task-sleep"])
            let taskJob = tasker.output.trimmingCharacters(in: .whitespacesAndNewlines)
            var workerRows: [[String: Any]] = []
            for _ in 0..<200 where !workerRows.contains(where: { ($0["task"] as? String) == "Pid" }) {
                try await Task.sleep(for: .milliseconds(100))
                let listedWorkers = try await ChildProcessOutput.run(cli, ["list", "workers", "--json"] + at).output
                workerRows = (try? JSONSerialization.jsonObject(with: Data(listedWorkers.utf8))) as? [[String: Any]] ?? []
            }
            let running = workerRows.first { ($0["task"] as? String) == "Pid" }
            #expect(running?["state"] as? String == "running" && (running?["pid"] as? Int ?? 0) > 0
                    && cluster.members.contains { $0.nodeID == running?["node_id"] as? String }, "\(workerRows)")
            var taskRows: [[String: Any]] = []
            for _ in 0..<100 where !taskRows.contains(where: { ($0["task"] as? String) == "Pid" && ($0["running"] as? Int) == 1 }) {
                let listedTasks = try await ChildProcessOutput.run(cli, ["list", "tasks", "--json"] + at).output
                taskRows = (try? JSONSerialization.jsonObject(with: Data(listedTasks.utf8))) as? [[String: Any]] ?? []
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(taskRows.contains { ($0["task"] as? String) == "Pid" && ($0["running"] as? Int) == 1 && ($0["pending"] as? Int) == 0 },
                    "\(taskRows)")
            var statusText = ""
            for _ in 0..<50 where !statusText.contains("tasks: 0 pending, 1 running") {
                statusText = try await ChildProcessOutput.run(cli, ["status"] + at).output
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(statusText.contains("tasks: 0 pending, 1 running"), "\(statusText)")
            _ = try await ChildProcessOutput.run(cli, ["job", "stop", taskJob, "--force"] + at)

            // Without the token nothing is uploaded or run.
            let wrongToken = cluster.directory + "/wrong-token-submit"
            _ = FileManager.default.createFile(atPath: wrongToken, contents: Data(String(repeating: "cd", count: 32).utf8), attributes: [.posixPermissions: 0o600])
            let refused = try await ChildProcessOutput.run(cli, ["submit", "--address", cluster.headAddress, "--token-file", wrongToken, app, "squares"])
            #expect(refused.status != 0 && refused.error.contains("cannot reach the head") && !refused.output.contains("RESULT"), "\(refused)")
            let listed = try await ChildProcessOutput.run(cli, ["list", "jobs", "--json"] + at).output
            let rows = (try? JSONSerialization.jsonObject(with: Data(listed.utf8))) as? [[String: Any]] ?? []
            let submitted = rows.compactMap { $0["submission_id"] as? String }.filter { !$0.isEmpty }
            #expect(submitted.count == 4 && submitted.contains(id), "the four submissions above, nothing from the refused one: \(listed)")
        }
    }

    @Test("with --tls-cert/--tls-ca every connection is mutual TLS: a driver with the certificates runs Pi across the nodes; plain tcp and a client without them are refused")
    func mutualTLS() async throws {
        let certificates = NSTemporaryDirectory() + "starling-tls-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: certificates, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        defer { try? FileManager.default.removeItem(atPath: certificates) }
        let made = try await ChildProcessOutput.run("/usr/bin/openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", certificates + "/key.pem",
                                                                       "-out", certificates + "/cert.pem", "-days", "1", "-subj", "/CN=starling-test",
                                                                       "-addext", "subjectAltName=DNS:starling,IP:127.0.0.1"])
        guard made.status == 0 else {
            print("TLS cluster test skipped: openssl could not make a certificate: \(made)")
            return
        }
        let both = try String(contentsOfFile: certificates + "/cert.pem", encoding: .utf8) + String(contentsOfFile: certificates + "/key.pem", encoding: .utf8)
        try both.write(toFile: certificates + "/node.pem", atomically: true, encoding: .utf8)
        let tls = ["STARLING_TLS_CERT": certificates + "/node.pem", "STARLING_TLS_CA": certificates + "/cert.pem"]
        let cluster = try await LocalCluster(headResources: "CPU=0", nodeResources: ["CPU=2", "CPU=2"], memberEnvironment: tls)
        do {
            #expect(cluster.headAddress.hasPrefix("tls+tcp://127.0.0.1:"), "\(cluster.headAddress)")
            let pi = try await ChildProcessOutput.run(try builtProduct("Pi").path, [], environment: cluster.environment.merging(tls) { _, new in new })
            #expect(pi.status == 0 && pi.output.contains("π ≈ 3.14") && pi.output.contains("on 3 node(s)"), "\(pi)")
            let cli = try builtProduct("starling").path
            let status = try await ChildProcessOutput.run(cli, ["status", "--address", cluster.headAddress, "--token-file", cluster.tokenFile], environment: tls)
            #expect(status.status == 0 && status.output.contains("alive"), "\(status)")
            // Without the certificates: a tls+tcp address cannot be dialled, and plain tcp gets no answer.
            let noCertificates = try await ChildProcessOutput.run(cli, ["status", "--address", cluster.headAddress, "--token-file", cluster.tokenFile])
            #expect(noCertificates.status != 0 && noCertificates.error.contains("caFile"), "\(noCertificates)")
            let plain = cluster.headAddress.replacingOccurrences(of: "tls+tcp://", with: "tcp://")
            let plainTCP = try await ChildProcessOutput.run(cli, ["status", "--address", plain, "--token-file", cluster.tokenFile])
            #expect(plainTCP.status != 0 && plainTCP.error.contains("cannot reach the head"), "\(plainTCP)")
        } catch {
            await cluster.stop()
            throw error
        }
        await cluster.stop()
    }

    @Test("starling memory, logs and status against a running cluster; a wrong token is refused")
    func memoryCommand() async throws {
        try await withCluster { cluster in
            let cli = try builtProduct("starling").path
            let text = try await ChildProcessOutput.run(cli, ["memory", "--address", cluster.headAddress, "--token-file", cluster.tokenFile])
            for member in cluster.members {
                #expect(text.output.contains("node \(member.nodeID.prefix(8)): 0 B of "), "\(text)")
            }
            let json = try await ChildProcessOutput.run(cli, ["memory", "--address", cluster.headAddress, "--token-file", cluster.tokenFile, "--json"])
            let decoded = try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [String: Any]
            #expect((decoded?["nodes"] as? [Any])?.count == 3, "\(json.output)")
            let wrongToken = cluster.directory + "/wrong-token"
            _ = FileManager.default.createFile(atPath: wrongToken, contents: Data(String(repeating: "ab", count: 32).utf8), attributes: [.posixPermissions: 0o600])
            let refused = try await ChildProcessOutput.run(cli, ["memory", "--address", cluster.headAddress, "--token-file", wrongToken])
            #expect(refused.status != 0 && refused.error.contains("cannot reach the head"), "\(refused)")
            // Worker logs: a job ran, so the nodes have worker logs; one can be read by name.
            _ = try await runScenario(["squares"], environment: cluster.environment)
            let listing = try await ChildProcessOutput.run(cli, ["logs", "--address", cluster.headAddress, "--token-file", cluster.tokenFile])
            let name = listing.output.split(whereSeparator: { $0 == " " || $0 == "\n" }).first { $0.hasPrefix("worker-") && $0.hasSuffix(".log") }
            #expect(name != nil, "\(listing)")
            if let name {
                let shown = try await ChildProcessOutput.run(cli, ["logs", String(name), "--address", cluster.headAddress, "--token-file", cluster.tokenFile])
                #expect(shown.status == 0 && shown.output.hasPrefix("==> \(name) on node "), "\(shown)")
            }
            let outside = try await ChildProcessOutput.run(cli, ["logs", "../token", "--address", cluster.headAddress, "--token-file", cluster.tokenFile])
            #expect(outside.status != 0 && outside.error.contains("no live node has a log named ../token"), "\(outside)")
            let status = try await ChildProcessOutput.run(cli, ["status", "--address", cluster.headAddress, "--token-file", cluster.tokenFile])
            #expect(status.output.hasPrefix("3 node(s) alive, 0 dead"), "\(status)")
            // A driver and a node with the wrong token are refused, and nothing of them runs.
            let driver = try await ChildProcessOutput.run(try builtProduct("Pi").path, [], environment: ["STARLING_ADDRESS": cluster.headAddress, "STARLING_TOKEN_FILE": wrongToken])
            #expect(driver.status == 1 && driver.error.hasPrefix("error: cannot connect to the head") && driver.error.contains("token"), "\(driver)")
            let node = try await ChildProcessOutput.run(cli, ["start", "--address", cluster.headAddress, "--token-file", wrongToken])
            #expect(node.status != 0 && node.error.contains("authentication") && node.error.contains("token"), "\(node)")
            let jobs = try await ChildProcessOutput.run(cli, ["list", "jobs", "--json", "--address", cluster.headAddress, "--token-file", cluster.tokenFile])
            #expect(((try? JSONSerialization.jsonObject(with: Data(jobs.output.utf8))) as? [Any])?.count == 1, "only the squares job ran: \(jobs)")
            let listed = try await ChildProcessOutput.run(cli, ["list", "nodes", "--json", "--address", cluster.headAddress, "--token-file", cluster.tokenFile])
            let nodes = (try? JSONSerialization.jsonObject(with: Data(listed.output.utf8))) as? [[String: Any]] ?? []
            #expect(nodes.filter { $0["state"] as? String == "alive" }.count == 3, "\(listed)")
        }
    }
}

/// A command run to completion: its exit status, stdout and stderr.
struct ChildProcessOutput: CustomStringConvertible {
    let status: Int32
    let output: String
    let error: String
    var description: String { "exit \(status): \(output) \(error)" }

    /// Runs the command to its end on a thread of its own: waiting on Swift's cooperative pool
    /// would stall every other test's async work (and the in-process servers of the wire
    /// tests) for as long as the command runs.
    static func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) async throws -> ChildProcessOutput {
        try await onOwnThread { Result { try runBlocking(executable, arguments, environment: environment) } }.get()
    }

    /// `run` for places that cannot await (a `defer`).
    static func runBlocking(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws -> ChildProcessOutput {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        }
        let (out, err) = (Pipe(), Pipe())
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let output = out.fileHandleForReading.readDataToEndOfFile()
        let error = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return ChildProcessOutput(status: process.terminationStatus, output: String(decoding: output, as: UTF8.self),
                                  error: String(decoding: error, as: UTF8.self))
    }
}
