import Foundation
import Starling

/// Times, inside a task on the other node, pulling a 100 MB array into its node's store and
/// viewing it there (`Cluster.view`); returns seconds and the last element.
struct PullProbe: RemoteFunction {
    static func run(_ ref: ObjectRef<[Float]>) async throws -> [Double] {
        let start = ContinuousClock.now
        let view = try await Cluster.current().view(ref)
        let elapsed = ContinuousClock.now - start
        return [TaskWorkloads.micros(elapsed) / 1e6, Double(view[view.count - 1])]
    }
}

/// `cross_node_get_gigabytes`: a head and a second node, each a `starling start` process on
/// 127.0.0.1 (TCP); this process joins as the driver, puts 100 MB arrays on the head's node and
/// a task on the other node reads each (the node pulls it in chunks). Ray's peer is the same
/// with Ray's cluster_utils (`Benchmarks/ray/cross_node.py`).
enum CrossNodeWorkload {
    static var all: [Workload] {
        [Workload(name: "cross_node_get_gigabytes", unit: "GB/s", direction: .higherIsBetter) { options in
            var measurement = Measurement(value: try await measureStarling())
            if options.peer == "ray" {
                measurement.peer = "ray-2.60"
                measurement.peerValue = try RayPeer.figures(script: "cross_node.py")["cross_node_get_gigabytes"]
            }
            return measurement
        }]
    }

    static func measureStarling() async throws -> Double {
        let cli = try BenchPaths.cli()
        let directory = BenchPaths.scratch.appendingPathComponent("cross-node-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let token = directory + "/token"
        let head = try ClusterMember(cli, ["start", "--head", "--port", "0", "--host", "127.0.0.1", "--resources", "CPU=1", "--token-file", token])
        defer { head.stop() }
        let headLine = try head.waitForLine(containing: "starling head listening at ")
        let address = String(headLine.split(separator: " ")[4])
        let other = try ClusterMember(cli, ["start", "--address", address, "--host", "127.0.0.1", "--resources", "CPU=1", "--token-file", token])
        defer { other.stop() }
        let otherLine = try other.waitForLine(containing: "starling node ")
        let otherID = String(otherLine.split(separator: " ")[2])
        setenv("STARLING_ADDRESS", address, 1)
        setenv("STARLING_TOKEN_FILE", token, 1)
        defer { unsetenv("STARLING_ADDRESS"); unsetenv("STARLING_TOKEN_FILE") }
        let floats = StoreWorkloads.floats, rounds = StoreWorkloads.rounds
        return try await Starling.run { cluster in
            for _ in 0..<100 where try await cluster.nodes().count < 2 { try await Task.sleep(for: .milliseconds(50)) }
            let there = TaskOptions(scheduling: .node(otherID))
            // One untimed round: workers start, connections form.
            _ = try await cluster.get(cluster.submit(PullProbe.self, cluster.put([Float](repeating: 1.5, count: floats)), options: there))
            var seconds = 0.0
            for round in 0..<rounds {
                let ref = try await cluster.put([Float](repeating: Float(round), count: floats))
                let probe = try await cluster.get(cluster.submit(PullProbe.self, ref, options: there))
                guard probe.count == 2, probe[1] == Double(round) else { throw BenchError.peerFailed("the pulled array differs: \(probe)") }
                seconds += probe[0]
            }
            return Double(floats * 4 * rounds) / 1e9 / seconds
        }
    }
}

/// A `starling start` process of the benchmark's cluster, stopped with SIGTERM (it then stops
/// its workers and removes its files).
final class ClusterMember {
    let process = Process()
    private let output = Pipe()
    private var buffer = Data()

    init(_ executable: String, _ arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    func waitForLine(containing text: String) throws -> String {
        while true {
            if let line = String(decoding: buffer, as: UTF8.self).split(separator: "\n").first(where: { $0.contains(text) }) {
                return String(line)
            }
            // availableData returns what the pipe holds (read(upToCount:) waits for all of it).
            let chunk = output.fileHandleForReading.availableData
            guard !chunk.isEmpty else {
                throw BenchError.peerFailed("\(process.arguments?.joined(separator: " ") ?? "") exited before printing \"\(text)\"")
            }
            buffer.append(chunk)
        }
    }

    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        for _ in 0..<100 where process.isRunning { usleep(50_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }
}
