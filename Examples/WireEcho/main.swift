import Foundation
import StarlingCodec
import StarlingWire

// The foundation layer on its own: an authenticated RPC endpoint, a client, and a Codable
// payload carried through the binary coder. Run with `swift run WireEcho`.

struct Batch: Codable, Equatable {
    var step: Int
    var learningRate: Double
    var weights: [Float]
}

ProcessTuning.apply()
let directory = FileManager.default.temporaryDirectory.appendingPathComponent("starling-wire-echo-\(getpid())")
try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(at: directory) }

// The head would create this once per cluster; every peer proves it knows it.
let token = try ClusterToken.loadOrCreate(at: directory.appendingPathComponent("token").path)

var routes = RouteTable()
routes.add(DiagnosticsRPC.echo) { request, _ in EchoReply(payload: request.payload) }
let server = try RPCServer(listeningOn: Address("ipc://\(directory.path)/echo.sock"), token: token,
                           name: "echo-server", routes: routes)
let client = try await RPCClient.connect(to: server.address, token: token, name: "echo-client")

let batch = Batch(step: 7, learningRate: 0.05, weights: (0..<1_000_000).map { Float($0) / 1e6 })
let payload = try BinaryEncoder().encode(batch)
let clock = ContinuousClock()
let start = clock.now
let reply = try await client.call(DiagnosticsRPC.echo, EchoRequest(payload: payload))
let elapsed = clock.now - start
let echoed = try BinaryDecoder().decode(Batch.self, from: reply.payload)
print("echoed a \(payload.count)-byte batch through \(server.address) in \(elapsed.formatted(.units(allowed: [.milliseconds], fractionalPart: .show(length: 1)))); intact: \(echoed == batch)")

var latencies: [Duration] = []
let small = EchoRequest(payload: Array(repeating: 1, count: 64))
for _ in 0..<1000 {
    let t0 = clock.now
    _ = try await client.call(DiagnosticsRPC.echo, small)
    latencies.append(clock.now - t0)
}
latencies.sort()
let micros = { (d: Duration) in d.formatted(.units(allowed: [.microseconds], fractionalPart: .hide)) }
print("64-byte round trip over ipc: p50 \(micros(latencies[500])), p99 \(micros(latencies[990]))")

// A client with the wrong token is refused before any handler runs.
do {
    var settings = TransportSettings()
    settings.connectTimeout = .seconds(1)
    _ = try await RPCClient.connect(to: server.address, token: ClusterToken.generate(), settings: settings)
    print("unexpected: a wrong token was accepted")
} catch {
    print("wrong token refused: \(error)")
}
client.close()
await server.close()
