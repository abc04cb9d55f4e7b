#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Starling
import StarlingNode

/// A task that does nothing: the cost measured is the runtime's.
struct NoOp: RemoteFunction {
    static func run(_ input: Int) async throws -> Int { 0 }
}

/// A client of `multi_client_tasks_async`: submits `n` no-ops from its worker, then gets them.
struct NoOpClient: RemoteFunction {
    static func run(_ n: Int) async throws -> Int {
        let cluster = try Cluster.current()
        var refs: [ObjectRef<Int>] = []
        refs.reserveCapacity(n)
        for i in 0..<n { refs.append(try await cluster.submit(NoOp.self, i)) }
        return try await cluster.get(refs).count
    }
}

/// Sleeps, so that two at once need two workers.
struct Nap: RemoteFunction {
    static func run(_ millis: Int) async throws -> Int {
        try await Task.sleep(for: .milliseconds(millis))
        return millis
    }
}

/// Task workloads (issue 3) on an embedded cluster with 2 CPUs, against Ray 2.60 on the same
/// definitions (`Benchmarks/ray/tasks.py`) when `--peer ray`.
enum TaskWorkloads {
    struct Figures: Sendable {
        var clusterStart = 0.0, sync = 0.0, async = 0.0, multiClient = 0.0, p50 = 0.0, p99 = 0.0, idleRSS = 0.0
    }
    /// Clients of `multi_client_tasks_async`, and tasks each submits.
    static let clients = 4, tasksPerClient = 2_500

    // Workloads run one after another from the main task, so these caches are never shared.
    nonisolated(unsafe) static var starling: Figures?
    nonisolated(unsafe) static var ray: [String: Double]?

    static var all: [Workload] {
        [
            Workload(name: "single_client_tasks_sync", unit: "tasks/s", direction: .higherIsBetter) { try await figure($0, \.sync, "single_client_tasks_sync") },
            Workload(name: "single_client_tasks_async", unit: "tasks/s", direction: .higherIsBetter) { try await figure($0, \.async, "single_client_tasks_async") },
            Workload(name: "multi_client_tasks_async", unit: "tasks/s", direction: .higherIsBetter) { try await figure($0, \.multiClient, "multi_client_tasks_async") },
            Workload(name: "task_rtt_p50", unit: "us", direction: .lowerIsBetter) { try await figure($0, \.p50, "task_rtt_p50") },
            Workload(name: "task_rtt_p99", unit: "us", direction: .lowerIsBetter) { try await figure($0, \.p99, "task_rtt_p99") },
            Workload(name: "cluster_start", unit: "s", direction: .lowerIsBetter) { try await figure($0, \.clusterStart, "cluster_start") },
            Workload(name: "idle_rss", unit: "MB", direction: .lowerIsBetter) { try await figure($0, \.idleRSS, "idle_rss") },
        ]
    }

    static func figure(_ options: BenchOptions, _ key: KeyPath<Figures, Double>, _ rayKey: String) async throws -> Measurement {
        if starling == nil { starling = try await measureStarling() }
        var measurement = Measurement(value: starling![keyPath: key])
        if options.peer == "ray" {
            if ray == nil { ray = try RayPeer.figures(script: "tasks.py") }
            measurement.peer = "ray-2.60"
            measurement.peerValue = ray?[rayKey]
        }
        return measurement
    }

    static func measureStarling() async throws -> Figures {
        let clock = ContinuousClock()
        let launch = clock.now
        return try await Starling.run(embedded: .init(resources: ["CPU": 2])) { cluster in
            _ = try await cluster.get(cluster.submit(NoOp.self, 0))
            let started = clock.now - launch
            for _ in 0..<200 { _ = try await cluster.get(cluster.submit(NoOp.self, 0)) }
            let n = 2000
            var latencies: [Double] = []
            let syncStart = clock.now
            for _ in 0..<n {
                let t0 = clock.now
                _ = try await cluster.get(cluster.submit(NoOp.self, 0))
                latencies.append(micros(clock.now - t0))
            }
            let syncSeconds = micros(clock.now - syncStart) / 1e6
            latencies.sort()
            let asyncCount = 10_000
            let asyncStart = clock.now
            var refs: [ObjectRef<Int>] = []
            refs.reserveCapacity(asyncCount)
            for i in 0..<asyncCount { refs.append(try await cluster.submit(NoOp.self, i)) }
            _ = try await cluster.get(refs)
            let asyncSeconds = micros(clock.now - asyncStart) / 1e6
            // Clients are zero-CPU tasks (as Ray's are zero-CPU actors); one untimed round
            // starts their workers, as Ray's benchmark creates its actors before timing.
            let clientOptions = TaskOptions(resources: [:])
            func clientRound() async throws -> Double {
                let start = clock.now
                let refs = try await (0..<clients).asyncMap { _ in try await cluster.submit(NoOpClient.self, tasksPerClient, options: clientOptions) }
                let done = try await cluster.get(refs).reduce(0, +)
                guard done == clients * tasksPerClient else { throw BenchError.peerFailed("clients finished \(done) tasks") }
                return Double(done) / (micros(clock.now - start) / 1e6)
            }
            _ = try await clientRound()
            let multiClient = try await clientRound()
            return Figures(clusterStart: micros(started) / 1e6, sync: Double(n) / syncSeconds, async: Double(asyncCount) / asyncSeconds,
                           multiClient: multiClient, p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99),
                           idleRSS: try measureIdleRSS())
        }
    }

    /// `idle_rss` in a fresh process (this one has run other workloads): see `idleRSSProbe`.
    static func measureIdleRSS() throws -> Double {
        let output = try ChildProcess.capture(BenchPaths.executable, ["idle-rss-probe"])
        guard let line = output.split(separator: "\n").last(where: { $0.hasPrefix("IDLE_RSS_MB ") }),
              let value = Double(line.split(separator: " ")[1]) else {
            throw BenchError.peerFailed("idle-rss-probe printed no figure: \(output.suffix(300))")
        }
        return value
    }

    /// Starts an embedded cluster, has two tasks run at once (two workers), idles 2 s, then
    /// prints the resident memory summed over this process and its descendants.
    static func idleRSSProbe() async throws {
        try await Starling.run(embedded: .init(resources: ["CPU": 2])) { cluster in
            let refs = try await (0..<2).asyncMap { _ in try await cluster.submit(Nap.self, 500) }
            _ = try await cluster.get(refs)
            try await Task.sleep(for: .seconds(2))
            let pids = ProcessTable.descendants(of: getpid()) + [getpid()]
            let megabytes = Double(pids.map(ProcessTable.residentBytes).reduce(0, +)) / 1e6
            print("IDLE_RSS_MB \(megabytes) processes=\(pids.count)")
            fflush(nil)
        }
    }

    static func micros(_ d: Duration) -> Double {
        Double(d.components.seconds) * 1e6 + Double(d.components.attoseconds) / 1e12
    }
}

extension Sequence where Element: Sendable {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var out: [T] = []
        for element in self { out.append(try await transform(element)) }
        return out
    }
}
