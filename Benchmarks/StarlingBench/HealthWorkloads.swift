import Foundation
import Starling

/// Health workloads (issue 6). `idle_cpu`: a head (which is also a node) started with
/// `starling start --head`, settled for 5 s, then its CPU time over 30 s, as % of one core.
/// `metrics_scrape`: an embedded cluster with 100 actors alive; ms for `GET /metrics`, mean of
/// 20 after one untimed. Ray's peer: `Benchmarks/ray/health.py`.
enum HealthWorkloads {
    struct Figures: Sendable { var idleCPU = 0.0, scrape = 0.0 }
    // Workloads run one after another from the main task, so these caches are never shared.
    nonisolated(unsafe) static var starling: Figures?
    nonisolated(unsafe) static var ray: [String: Double]?

    static let idleSeconds = 30.0, actors = 100, scrapes = 20

    static var all: [Workload] {
        [
            Workload(name: "idle_cpu", unit: "%", direction: .lowerIsBetter) { try await figure($0, \.idleCPU, "idle_cpu") },
            Workload(name: "metrics_scrape", unit: "ms", direction: .lowerIsBetter) { try await figure($0, \.scrape, "metrics_scrape") },
        ]
    }

    static func figure(_ options: BenchOptions, _ key: KeyPath<Figures, Double>, _ rayKey: String) async throws -> Measurement {
        if starling == nil { starling = Figures(idleCPU: try await idleCPU(), scrape: try await metricsScrape()) }
        var measurement = Measurement(value: starling![keyPath: key])
        if options.peer == "ray" {
            if ray == nil { ray = try RayPeer.figures(script: "health.py") }
            measurement.peer = "ray-2.60"
            measurement.peerValue = ray?[rayKey]
        }
        return measurement
    }

    /// User plus system CPU seconds of a process (from /proc/PID/stat).
    static func cpuSeconds(_ pid: Int32) -> Double {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return 0 }
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    static func idleCPU() async throws -> Double {
        let cli = try BenchPaths.cli()
        let directory = BenchPaths.scratch.appendingPathComponent("idle-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let head = try ClusterMember(cli, ["start", "--head", "--port", "0", "--dashboard-port", "0", "--token-file", directory + "/token"])
        defer { head.stop() }
        _ = try head.waitForLine(containing: "starling node ")
        try await Task.sleep(for: .seconds(5))
        let pid = head.process.processIdentifier
        let before = cpuSeconds(pid)
        let start = ContinuousClock.now
        try await Task.sleep(for: .seconds(idleSeconds))
        return 100 * (cpuSeconds(pid) - before) / (TaskWorkloads.micros(ContinuousClock.now - start) / 1e6)
    }

    static func metricsScrape() async throws -> Double {
        try await Starling.run(embedded: .init(resources: ["CPU": 2], dashboardPort: 0)) { cluster in
            var alive: [BenchActor] = []
            for _ in 0..<actors { alive.append(try await cluster.spawn(BenchActor.self, config: 0, options: .init(resources: ["CPU": 0]))) }
            for actor in alive { _ = try await actor.smallValue() }
            guard let base = try await cluster.dashboardURL() else {
                throw BenchError.missing("the embedded head runs no HTTP endpoint")
            }
            let url = base + "/metrics"
            _ = try await PlainHTTP.fetch(url)
            let start = ContinuousClock.now
            for _ in 0..<scrapes { _ = try await PlainHTTP.fetch(url) }
            return TaskWorkloads.micros(ContinuousClock.now - start) / 1000 / Double(scrapes)
        }
    }
}
