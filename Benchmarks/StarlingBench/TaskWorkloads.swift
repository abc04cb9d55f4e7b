import Foundation
import Starling

/// A task that does nothing: the cost measured is the runtime's.
struct NoOp: RemoteFunction {
    static func run(_ input: Int) async throws -> Int { 0 }
}

/// Task workloads (issue 3) on an embedded cluster with 2 CPUs, against Ray 2.60 on the same
/// definitions (`Benchmarks/ray/tasks.py`) when `--peer ray`.
enum TaskWorkloads {
    struct Figures: Sendable { var clusterStart = 0.0; var sync = 0.0; var async = 0.0; var p50 = 0.0; var p99 = 0.0 }

    // Workloads run one after another from the main task, so these caches are never shared.
    nonisolated(unsafe) static var starling: Figures?
    nonisolated(unsafe) static var ray: [String: Double]?

    static var all: [Workload] {
        [
            Workload(name: "single_client_tasks_sync", unit: "tasks/s", direction: .higherIsBetter) { try await figure($0, \.sync, "single_client_tasks_sync") },
            Workload(name: "single_client_tasks_async", unit: "tasks/s", direction: .higherIsBetter) { try await figure($0, \.async, "single_client_tasks_async") },
            Workload(name: "task_rtt_p50", unit: "us", direction: .lowerIsBetter) { try await figure($0, \.p50, "task_rtt_p50") },
            Workload(name: "task_rtt_p99", unit: "us", direction: .lowerIsBetter) { try await figure($0, \.p99, "task_rtt_p99") },
            Workload(name: "cluster_start", unit: "s", direction: .lowerIsBetter) { try await figure($0, \.clusterStart, "cluster_start") },
        ]
    }

    static func figure(_ options: BenchOptions, _ key: KeyPath<Figures, Double>, _ rayKey: String) async throws -> Measurement {
        if starling == nil { starling = try await measureStarling() }
        var measurement = Measurement(value: starling![keyPath: key])
        if options.peer == "ray" {
            if ray == nil { ray = try measureRay() }
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
            return Figures(clusterStart: micros(started) / 1e6, sync: Double(n) / syncSeconds, async: Double(asyncCount) / asyncSeconds,
                           p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99))
        }
    }

    /// Runs the Ray peer in the project's venv (created with pip on first use).
    static func measureRay() throws -> [String: Double] {
        let venv = BenchPaths.benchmarks.appendingPathComponent(".ray-venv").path
        let python = venv + "/bin/python"
        if !FileManager.default.isExecutableFile(atPath: python) {
            FileHandle.standardError.write(Data("starling-bench: creating \(venv) with ray[default,tune,serve]==2.60.0 (one time)\n".utf8))
            _ = try ChildProcess.capture("/usr/bin/env", ["python3", "-m", "venv", venv])
            _ = try ChildProcess.capture(venv + "/bin/pip", ["install", "-q", "ray[default,tune,serve]==2.60.0"])
        }
        let output = try ChildProcess.capture(python, [BenchPaths.benchmarks.appendingPathComponent("ray/tasks.py").path])
        guard let line = output.split(separator: "\n").last(where: { $0.hasPrefix("{") }),
              let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Double] else {
            throw BenchError.peerFailed("ray/tasks.py printed no figures: \(output.suffix(500))")
        }
        return object
    }

    static func micros(_ d: Duration) -> Double {
        Double(d.components.seconds) * 1e6 + Double(d.components.attoseconds) / 1e12
    }
}
