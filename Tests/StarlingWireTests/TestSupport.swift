import Foundation
@testable import StarlingWire

/// A fresh temporary directory, removed by `cleanup()`.
struct TemporaryDirectory {
    let path: String

    init() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("starling-wire-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        path = url.path
    }

    func file(_ name: String) -> String { path + "/" + name }

    func cleanup() { try? FileManager.default.removeItem(atPath: path) }
}

/// Counts handler invocations across tasks.
actor CallCounter {
    private(set) var count = 0
    func increment() { count += 1 }
}

/// An echo server on loopback with a counter of handler runs.
struct EchoFixture {
    let server: RPCServer
    let token: ClusterToken
    let counter: CallCounter

    static func start(scheme: String = "tcp", settings: TransportSettings = .default, delay: Duration? = nil) throws -> EchoFixture {
        let token = ClusterToken.generate()
        let counter = CallCounter()
        var routes = RouteTable()
        routes.add(DiagnosticsRPC.echo) { request, _ in
            await counter.increment()
            if let delay { try await Task.sleep(for: delay) }
            return EchoReply(payload: request.payload)
        }
        let address = scheme == "ipc"
            ? try Address("ipc:///tmp/starling-test-\(getpid())-\(UInt32.random(in: 0 ... .max)).sock")
            : try Address("tcp://127.0.0.1:0")
        let server = try RPCServer(listeningOn: address, token: token, name: "echo", routes: routes, settings: settings)
        return EchoFixture(server: server, token: token, counter: counter)
    }

    func client(settings: TransportSettings = .default) async throws -> RPCClient {
        try await RPCClient.connect(to: server.address, token: token, name: "test", settings: settings)
    }
}

/// A request frame: 4-byte little-endian method number, then the packed message.
func frame<M: ProtoMessage>(method: UInt32, _ message: M) -> [UInt8] {
    withUnsafeBytes(of: method.littleEndian) { Array($0) } + message.serializedBytes()
}
