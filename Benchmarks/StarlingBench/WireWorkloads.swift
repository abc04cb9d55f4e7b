import Foundation
import StarlingCodec
import StarlingWire

/// Wire-level workloads: the Swift transport against a plain-C libnng peer doing the same.
enum WireWorkloads {
    static let rttIterations = 5000
    static let concurrentContexts = 64
    static let concurrentSeconds = 3.0
    static let largeBytes = 64 << 20
    static let largeIterations = 8

    static var all: [Workload] {
        [
            Workload(name: "wire_rtt_tcp_p50", unit: "us", direction: .lowerIsBetter) { _ in try await rtt(scheme: "tcp").p50 },
            Workload(name: "wire_rtt_tcp_p99", unit: "us", direction: .lowerIsBetter) { _ in try await rtt(scheme: "tcp").p99 },
            Workload(name: "wire_rtt_ipc_p50", unit: "us", direction: .lowerIsBetter) { _ in try await rtt(scheme: "ipc").p50 },
            Workload(name: "wire_rpc_concurrent", unit: "req/s", direction: .higherIsBetter) { _ in try await concurrent() },
            Workload(name: "wire_large_msg", unit: "GB/s", direction: .higherIsBetter) { _ in try await large() },
            Workload(name: "codec_float_array", unit: "MB/s", direction: .higherIsBetter) { _ in try codecFloatArray() },
        ]
    }

    // MARK: - Peers

    /// Builds the C peer once per run.
    static let cPeer: Result<String, Error> = Result {
        let source = BenchPaths.benchmarks.appendingPathComponent("peer/nng_peer.c").path
        let binary = BenchPaths.scratch.appendingPathComponent("nng_peer").path
        _ = try ChildProcess.capture("/usr/bin/env", ["cc", "-O2", "-o", binary, source, "-lnng"])
        return binary
    }

    static var tokenFile: String {
        let path = BenchPaths.scratch.appendingPathComponent("token").path
        if !FileManager.default.fileExists(atPath: path) { try? ClusterToken.generate().write(to: path) }
        return path
    }

    static func address(_ scheme: String) -> String {
        scheme == "ipc"
            ? "ipc://\(BenchPaths.scratch.path)/echo-\(UInt32.random(in: 0 ... .max)).sock"
            : "tcp://127.0.0.1:\(Int.random(in: 20000...60000))"
    }

    /// Starts the Swift echo server in its own process (this executable, `serve-echo` mode).
    static func swiftServer(_ url: String) throws -> ChildProcess {
        let server = try ChildProcess(CommandLine.arguments[0], ["serve-echo", url, tokenFile])
        server.waitUntilReady()
        return server
    }

    static func cServer(_ url: String) throws -> ChildProcess {
        let server = try ChildProcess(try cPeer.get(), ["serve", url, "\(concurrentContexts)"])
        server.waitUntilReady()
        return server
    }

    /// Runs the C client mode `arguments[0]` against a fresh C server over ipc; returns its figure.
    static func cClientFigure(_ arguments: [String]) throws -> Double? {
        let url = address("ipc")
        let server = try cServer(url)
        defer { server.kill() }
        var full = arguments
        full.insert(url, at: 1)
        return Double(try ChildProcess.capture(try cPeer.get(), full).trimmingCharacters(in: .whitespacesAndNewlines))
    }

    static func swiftClient(_ url: String) async throws -> RPCClient {
        try await RPCClient.connect(to: Address(url), token: ClusterToken.load(from: tokenFile), name: "bench")
    }

    // MARK: - Workloads

    struct Latency { var p50: Measurement; var p99: Measurement }

    // Workloads run one after another from the main task, so this cache is never shared.
    nonisolated(unsafe) static var cachedRTT: [String: Latency] = [:]

    static func rtt(scheme: String) async throws -> Latency {
        if let cached = cachedRTT[scheme] { return cached }
        // C client against C server.
        let cURL = address(scheme)
        let cServerProcess = try cServer(cURL)
        let cFigures = try ChildProcess.capture(try cPeer.get(), ["rtt", cURL, "64", "\(rttIterations)"])
            .split(separator: " ").compactMap { Double($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        cServerProcess.kill()
        // Swift client against Swift server, same pattern.
        let url = address(scheme)
        let server = try swiftServer(url)
        defer { server.kill() }
        let client = try await swiftClient(url)
        defer { client.close() }
        let request = EchoRequest(payload: [UInt8](repeating: 7, count: 64))
        for _ in 0..<200 { _ = try await client.call(DiagnosticsRPC.echo, request) }
        var samples: [Double] = []
        samples.reserveCapacity(rttIterations)
        let clock = ContinuousClock()
        for _ in 0..<rttIterations {
            let start = clock.now
            _ = try await client.call(DiagnosticsRPC.echo, request)
            let elapsed = clock.now - start
            samples.append(Double(elapsed.components.attoseconds) / 1e12 + Double(elapsed.components.seconds) * 1e6)
        }
        samples.sort()
        let latency = Latency(
            p50: Measurement(value: percentile(samples, 0.5), peer: "c-nng", peerValue: cFigures.first),
            p99: Measurement(value: percentile(samples, 0.99), peer: "c-nng", peerValue: cFigures.count > 1 ? cFigures[1] : nil))
        cachedRTT[scheme] = latency
        return latency
    }

    static func concurrent() async throws -> Measurement {
        let cFigure = try cClientFigure(["concurrent", "\(concurrentContexts)", "\(concurrentSeconds)"])

        let url = address("ipc")
        let server = try swiftServer(url)
        defer { server.kill() }
        let client = try await swiftClient(url)
        defer { client.close() }
        let request = EchoRequest(payload: [UInt8](repeating: 7, count: 64))
        let clock = ContinuousClock()
        let warmUpEnd = clock.now + .milliseconds(300)
        let end = warmUpEnd + .milliseconds(Int(concurrentSeconds * 1000))
        let counts = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<concurrentContexts {
                group.addTask {
                    var done = 0
                    while clock.now < end {
                        _ = try await client.call(DiagnosticsRPC.echo, request)
                        if clock.now >= warmUpEnd { done += 1 }
                    }
                    return done
                }
            }
            return try await group.reduce(0, +)
        }
        return Measurement(value: Double(counts) / concurrentSeconds, peer: "c-nng", peerValue: cFigure)
    }

    static func large() async throws -> Measurement {
        let cFigure = try cClientFigure(["large", "\(largeBytes)", "\(largeIterations)"])

        let url = address("ipc")
        let server = try swiftServer(url)
        defer { server.kill() }
        let client = try await swiftClient(url)
        defer { client.close() }
        let request = EchoRequest(payload: [UInt8](repeating: 7, count: largeBytes))
        _ = try await client.call(DiagnosticsRPC.echo, request)
        let clock = ContinuousClock()
        let start = clock.now
        for _ in 0..<largeIterations { _ = try await client.call(DiagnosticsRPC.echo, request) }
        let seconds = Double((clock.now - start).components.attoseconds) / 1e18 + Double((clock.now - start).components.seconds)
        return Measurement(value: 2.0 * Double(largeBytes * largeIterations) / seconds / 1e9, peer: "c-nng", peerValue: cFigure)
    }

    /// Encode + decode of a struct holding 1M Float, in MB of Float payload per second.
    static func codecFloatArray() throws -> Measurement {
        struct Tensor: Codable { var shape: [Int]; var values: [Float] }
        let tensor = Tensor(shape: [1000, 1000], values: (0..<1_000_000).map { Float($0) * 0.5 })
        let encoder = BinaryEncoder()
        let decoder = BinaryDecoder()
        let iterations = 50
        let clock = ContinuousClock()
        var check = 0
        let start = clock.now
        for _ in 0..<iterations {
            let bytes = try encoder.encode(tensor)
            let back = try decoder.decode(Tensor.self, from: bytes)
            check &+= back.values.count
        }
        let elapsed = clock.now - start
        let seconds = Double(elapsed.components.attoseconds) / 1e18 + Double(elapsed.components.seconds)
        precondition(check == iterations * 1_000_000)
        return Measurement(value: Double(iterations * 4_000_000) / seconds / 1e6)
    }
}

/// The Swift echo server, run as a child process of the benchmark.
enum EchoServerProcess {
    static func run(address: String, tokenFile: String) async throws {
        var routes = RouteTable()
        routes.add(DiagnosticsRPC.echo) { request, _ in EchoReply(payload: request.payload) }
        let server = try RPCServer(listeningOn: Address(address), token: ClusterToken.load(from: tokenFile),
                                   name: "bench-echo", routes: routes)
        print("ready")
        fflush(nil)
        while true { try await Task.sleep(for: .seconds(3600)) }
        _ = server
    }
}
