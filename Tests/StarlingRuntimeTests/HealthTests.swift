#if canImport(Glibc)
import Glibc
#endif
import Foundation
import StarlingWire
import Synchronization
import Testing

/// Collects the head's published events (PUB/SUB) with the time each arrived.
final class EventCollector: Sendable {
    private let received = Mutex<[(event: Event, at: ContinuousClock.Instant)]>([])
    private let subscriber: EventSubscriber
    private let reader = Mutex<Task<Void, Never>?>(nil)

    init(pubsubURL: String, tokenFile: String) throws {
        subscriber = try EventSubscriber(connectingTo: Address(pubsubURL), token: ClusterToken.load(from: tokenFile), topics: ["event"])
        let task = Task { [subscriber, weak self] in
            for await published in subscriber.events {
                guard let update = try? ClusterUpdate(serializedBytes: published.payload), let event = update.event else { continue }
                self?.received.withLock { $0.append((event, .now)) }
            }
        }
        reader.withLock { $0 = task }
    }

    /// Waits up to `timeout` for an event matching `match`; returns it and when it arrived.
    func wait(timeout: Duration, _ match: (Event) -> Bool) async throws -> (event: Event, at: ContinuousClock.Instant)? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let found = received.withLock({ $0.first { match($0.event) } }) { return found }
            try await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }

    func close() {
        reader.withLock { $0?.cancel() }
        subscriber.close()
    }
}

/// The head's PUB/SUB address, from GetClusterInfo.
func pubsubURL(of cluster: LocalCluster) async throws -> String {
    let head = try await RPCClient.connect(to: Address(cluster.headAddress), token: ClusterToken.load(from: cluster.tokenFile), name: "test")
    defer { head.close() }
    return try await head.call(HeadRPC.getClusterInfo, GetClusterInfoRequest()).pubsubUrl
}

@Suite("Health and metrics (real processes)", .serialized)
struct HealthTests {
    @Test("a node killed with SIGKILL is reported dead within the timeout + 1 s on PUB/SUB; its tasks are retried")
    func killedNode() async throws {
        let cluster = try await LocalCluster(headResources: "CPU=0", nodeResources: ["CPU=4", "CPU=4"], headArguments: ["--node-timeout", "2"])
        let events = try EventCollector(pubsubURL: try await pubsubURL(of: cluster), tokenFile: cluster.tokenFile)
        defer { events.close() }
        do {
            let markers = cluster.directory + "/markers"
            try FileManager.default.createDirectory(atPath: markers, withIntermediateDirectories: true)
            let victim = cluster.members[2].nodeID, survivor = cluster.members[1].nodeID
            var killedAtUnixMs: Int64 = 0
            let result = try await runScenario(["node-killed", markers], environment: cluster.environment) { _ in
                for _ in 0..<200 {
                    if ((try? FileManager.default.contentsOfDirectory(atPath: markers)) ?? []).contains(where: { $0.hasPrefix(victim) }) { break }
                    try await Task.sleep(for: .milliseconds(50))
                }
                killedAtUnixMs = Int64(Date().timeIntervalSince1970 * 1000)
                cluster.kill9(2)
            }
            #expect(result == "6 \(survivor)", "the killed node's tasks were retried on the other: \(result)")
            let died = try await events.wait(timeout: .seconds(10)) { $0.kind == .nodeDied && $0.nodeID == victim }
            #expect(died != nil, "no NODE_DIED event for \(victim.prefix(8))")
            // The head's own timestamp of the event: when it declared the node dead.
            if let died {
                let after = died.event.timeUnixMs - killedAtUnixMs
                #expect(after <= 3000, "declared dead \(after) ms after the kill (timeout 2 s + 1 s)")
            }
        } catch {
            await cluster.stop()
            throw error
        }
        await cluster.stop()
    }

    @Test("a node frozen with SIGSTOP is declared dead within the timeout + 1 s; resumed, it is told to rejoin as new and stops")
    func frozenNode() async throws {
        let cluster = try await LocalCluster(headResources: "CPU=1", nodeResources: ["CPU=1"], headArguments: ["--node-timeout", "2"])
        let events = try EventCollector(pubsubURL: try await pubsubURL(of: cluster), tokenFile: cluster.tokenFile)
        defer { events.close() }
        let frozen = cluster.members[1]
        kill(frozen.process.processIdentifier, SIGSTOP)
        let stoppedAt = ContinuousClock.now
        let died = try await events.wait(timeout: .seconds(10)) { $0.kind == .nodeDied && $0.nodeID == frozen.nodeID }
        kill(frozen.process.processIdentifier, SIGCONT)
        #expect(died != nil, "no NODE_DIED event for the frozen node")
        if let died {
            let after = died.at - stoppedAt
            #expect(after >= .milliseconds(1500) && after <= .seconds(3), "declared dead \(after) after SIGSTOP (timeout 2 s)")
            #expect(died.event.message.contains("no heartbeat"), "\(died.event.message)")
        }
        // Resumed, its next heartbeat is answered NODE_DIED: it stops instead of merging back.
        for _ in 0..<100 where frozen.process.isRunning { try await Task.sleep(for: .milliseconds(100)) }
        #expect(!frozen.process.isRunning, "the resumed node kept running after being declared dead")
        #expect(cluster.log(1).contains("register again with a new id"), "\(cluster.log(1).suffix(400))")
        await cluster.stop()
    }

    @Test("""
        user metrics from 4 tasks are summed at the head; owners report tasks by state and failures, \
        actor hosts their calls; /metrics passes a Prometheus text-format parser
        """)
    func userMetrics() async throws {
        let file = NSTemporaryDirectory() + "starling-metrics-\(getpid()).txt"
        defer { try? FileManager.default.removeItem(atPath: file) }
        let lines = try await runScenario(["metrics", file]).components(separatedBy: " | ")
        #expect(lines.first == "10.0 8 ok", "\(lines)")
        // 4 metric tasks + 6 squares finished; 3 failed; nothing left pending or running.
        #expect(lines.dropFirst().first == "tasks finished=10 failed=3 pending=0 running=0", "\(lines)")
        #expect(lines.dropFirst(2).first == "actor succeeded=4 failed=1", "\(lines)")
        // One task-failed event per failed task, naming it and its error, and one for the throw.
        let failures = Array(lines.dropFirst(3))
        #expect(failures.count == 4, "\(failures)")
        for code in 1...3 {
            #expect(failures.contains { $0.contains("task Fail failed with") && $0.contains("boom \(code)") }, "\(failures)")
        }
        #expect(failures.contains { $0.contains("actor call") && $0.contains("take") && $0.contains("Overdrawn") }, "\(failures)")
        let text = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
        #expect(text.contains("test_items{stage=\"train \\\"a\\\"\"} 10"), "\(text)")
        #expect(text.contains("test_latency_seconds_bucket{le=\"+Inf\"} 8"), "\(text)")
        #expect(text.range(of: #"starling_job_tasks_finished_total\{job="[0-9a-f]{32}"\} 10"#, options: .regularExpression) != nil, "\(text)")
        #expect(text.range(of: #"starling_actor_calls_total\{actor="[0-9a-f]{32}",class="Counter",outcome="failed"\} 1"#,
                           options: .regularExpression) != nil, "\(text)")
        let parser = """
        import sys
        from prometheus_client.parser import text_string_to_metric_families
        families = list(text_string_to_metric_families(open(sys.argv[1]).read()))
        names = {f.name for f in families}
        for name in ["test_items", "test_latency_seconds", "starling_node_cpu_percent", "starling_job_tasks", "starling_job_tasks_finished", "starling_actor_calls"]:
            assert name in names, (name, names)
        print(len(families))
        """
        let parsed = try await ChildProcessOutput.run("/usr/bin/python3", ["-c", parser, file])
        if parsed.error.contains("No module named 'prometheus_client'") {
            Issue.record("python3-prometheus-client is missing: run `make deps` (it installs it)")
            return
        }
        #expect(parsed.status == 0, "the Prometheus parser rejected /metrics: \(parsed)")
    }

    @Test("the dashboard in headless Chromium shows one row per live node (skipped without chromium)")
    func dashboard() async throws {
        let cluster = try await LocalCluster(headResources: "CPU=1", nodeResources: ["CPU=1", "CPU=1"])
        do {
            let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("scripts/dashboard-check").path
            let screenshot = cluster.directory + "/dashboard.png"
            let run = try await ChildProcessOutput.run(script, [cluster.dashboardURL, screenshot, "3"])
            if run.status == 77 {
                print("dashboard check skipped: \(run.output)")
            } else {
                #expect(run.status == 0, "\(run)")
                #expect(run.output.contains("3 live node row(s)"), "\(run)")
            }
        } catch {
            await cluster.stop()
            throw error
        }
        await cluster.stop()
    }
}

extension Event {
    /// The node's id as hex (empty when the event names none).
    var nodeID: String { nodeId.map { String(format: "%02x", $0) }.joined() }
}
