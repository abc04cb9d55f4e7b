import Foundation
import Starling

/// CLI workloads (issue 7). `cli_start_head`: seconds from running `starling start --head`
/// until `starling status` answers. `up_local_3`: seconds for `starling up` of a 3-node local
/// config (it returns once every node registered). Ray's peer: `Benchmarks/ray/cli.py`.
enum CLIWorkloads {
    struct Figures: Sendable { var startHead = 0.0, upLocal3 = 0.0 }
    // Workloads run one after another from the main task, so these caches are never shared.
    nonisolated(unsafe) static var starling: Figures?
    nonisolated(unsafe) static var ray: [String: Double]?

    static var all: [Workload] {
        [
            Workload(name: "cli_start_head", unit: "s", direction: .lowerIsBetter) { try await figure($0, \.startHead, "cli_start_head") },
            Workload(name: "up_local_3", unit: "s", direction: .lowerIsBetter) { try await figure($0, \.upLocal3, "up_local_3") },
        ]
    }

    static func figure(_ options: BenchOptions, _ key: KeyPath<Figures, Double>, _ rayKey: String) async throws -> Measurement {
        if starling == nil { starling = try measureStarling() }
        var measurement = Measurement(value: starling![keyPath: key])
        if options.peer == "ray" {
            if ray == nil { ray = try RayPeer.figures(script: "cli.py") }
            measurement.peer = "ray-2.60"
            measurement.peerValue = ray?[rayKey]
        }
        return measurement
    }

    static func measureStarling() throws -> Figures {
        let cli = try BenchPaths.cli()
        let directory = BenchPaths.scratch.appendingPathComponent("cli-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var figures = Figures()

        let token = directory + "/token"
        var start = ContinuousClock.now
        let head = try ClusterMember(cli, ["start", "--head", "--port", "6392", "--dashboard-port", "none", "--token-file", token])
        defer { head.stop() }
        // The head writes the token first; `status` before that only complains that it is missing.
        while !FileManager.default.fileExists(atPath: token) { usleep(2_000) }
        while (try? ChildProcess.capture(cli, ["status", "--address", "127.0.0.1:6392", "--token-file", token])) == nil {
            usleep(5_000)
        }
        figures.startHead = TaskWorkloads.micros(ContinuousClock.now - start) / 1e6
        head.stop()

        let config = directory + "/local-3.json"
        try """
        { "name": "bench-\(getpid())", "provider": { "type": "local" },
          "head": { "port": 0, "dashboard_port": 0, "resources": { "CPU": 1 } },
          "workers": { "count": 2, "resources": { "CPU": 1 } }, "token_file": "\(directory)/up-token" }
        """.write(toFile: config, atomically: true, encoding: .utf8)
        start = .now
        _ = try ChildProcess.capture(cli, ["up", config])
        figures.upLocal3 = TaskWorkloads.micros(ContinuousClock.now - start) / 1e6
        _ = try ChildProcess.capture(cli, ["down", config])
        return figures
    }
}
