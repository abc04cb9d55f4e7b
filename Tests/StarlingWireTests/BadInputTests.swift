import Foundation
import Testing
@testable import StarlingWire

@Suite("Bad input")
struct BadInputTests {
    @Test("thousands of random and truncated frames get errors, and the endpoint keeps serving")
    func randomAndTruncatedFrames() async throws {
        let fixture = try EchoFixture.start()
        let client = try await fixture.client()
        var rng = ProtoTestRNG(seed: 0x5EED)
        let knownMethods: [UInt32] = [1, 2, DiagnosticsRPC.echo.method, 100, 200, 300, 999, .max]
        var errorReplies = 0
        for i in 0..<3000 {
            var bytes: [UInt8]
            switch i % 3 {
            case 0: // random bytes, random length (including shorter than the header)
                bytes = (0..<Int.random(in: 0...96, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            case 1: // a real method number followed by garbage
                let method = knownMethods.randomElement(using: &rng)!
                bytes = withUnsafeBytes(of: method.littleEndian) { Array($0) }
                    + (0..<Int.random(in: 0...64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            default: // a valid echo frame cut short
                let valid = frame(method: DiagnosticsRPC.echo.method, EchoRequest(payload: Array(repeating: 0xAB, count: 40)))
                bytes = Array(valid.prefix(Int.random(in: 0..<valid.count, using: &rng)))
            }
            let isProof = bytes.count >= 4 && bytes.prefix(4).elementsEqual(withUnsafeBytes(of: HandshakeRPC.prove.method.littleEndian) { Array($0) })
            do {
                let reply = try await client.callRaw(bytes, timeout: .seconds(5))
                if let status = try? ErrorReply(serializedBytes: reply).status, status.code != .ok { errorReplies += 1 }
                #expect(!isProof, "a bad proof must close the connection, not be answered")
            } catch WireError.closed {
                // Only a wrong handshake proof closes an authenticated connection; the client
                // authenticates a new one on its next call.
                #expect(isProof, "frame \(i) closed the connection: \(bytes)")
                // Wait until the client has a new, authenticated connection.
                var back = false
                for _ in 0..<100 where !back {
                    back = (try? await client.call(DiagnosticsRPC.echo, EchoRequest(), timeout: .milliseconds(200))) != nil
                }
                #expect(back)
            }
        }
        #expect(errorReplies > 1000)
        // Still serving valid requests, on the same connection.
        let echoed = try await client.call(DiagnosticsRPC.echo, EchoRequest(payload: [42]))
        #expect(echoed.payload == [42])
        client.close()
        await fixture.server.close()
    }

    @Test("malformed and unknown requests get typed errors naming the problem")
    func typedErrors() async throws {
        let fixture = try EchoFixture.start()
        let client = try await fixture.client()
        let short = try ErrorReply(serializedBytes: try await client.callRaw([1, 2]))
        #expect(short.status?.code == .malformed)
        #expect(short.status?.message.contains("4-byte") == true)
        let unknown = try ErrorReply(serializedBytes: try await client.callRaw(withUnsafeBytes(of: UInt32(77_777).littleEndian) { Array($0) }))
        #expect(unknown.status?.code == .unknownMethod)
        let garbage = try ErrorReply(serializedBytes: try await client.callRaw(withUnsafeBytes(of: DiagnosticsRPC.echo.method.littleEndian) { Array($0) } + [0xFF, 0xFF, 0xFF]))
        #expect(garbage.status?.code == .malformed)
        client.close()
        await fixture.server.close()
    }

    @Test("oversized frames are dropped and the endpoint keeps serving")
    func oversizedFrames() async throws {
        var settings = TransportSettings()
        settings.maxMessageSize = 64 << 10
        let fixture = try EchoFixture.start(settings: settings)
        // The sender refuses to send past its own limit, with a clear error.
        let client = try await fixture.client(settings: settings)
        await #expect {
            _ = try await client.call(DiagnosticsRPC.echo, EchoRequest(payload: Array(repeating: 1, count: 100 << 10)))
        } throws: { error in
            guard case WireError.tooLarge = error else { return false }
            return true
        }
        // A peer that ignores limits: the server drops its frames (and the connection).
        var loose = TransportSettings()
        loose.maxMessageSize = 1 << 20
        loose.reconnectMin = .milliseconds(20)
        let sender = try await RPCClient.connect(to: fixture.server.address, token: fixture.token, settings: loose)
        for _ in 0..<5 {
            let big = frame(method: DiagnosticsRPC.echo.method, EchoRequest(payload: Array(repeating: 2, count: 200 << 10)))
            await #expect(throws: WireError.self) { _ = try await sender.callRaw(big, timeout: .milliseconds(300)) }
        }
        #expect(await fixture.counter.count == 0)
        let echoed = try await client.call(DiagnosticsRPC.echo, EchoRequest(payload: [7]))
        #expect(echoed.payload == [7])
        sender.close()
        client.close()
        await fixture.server.close()
    }

    @Test("bad addresses are refused with the reason")
    func badAddresses() {
        #expect { try Address("localhost:80") } throws: { "\($0)".contains("scheme://") }
        #expect { try Address("udp://x:1") } throws: { "\($0)".contains("unknown scheme") }
        #expect { try Address("tcp://host") } throws: { "\($0)".contains("port") }
        #expect { try Address("tcp://host:70000") } throws: { "\($0)".contains("port") }
    }

    @Test("connecting where nothing listens fails with connectionRefused")
    func nothingListening() async throws {
        var settings = TransportSettings()
        settings.connectTimeout = .milliseconds(300)
        await #expect {
            _ = try await RPCClient.connect(to: Address("tcp://127.0.0.1:1"), token: ClusterToken.generate(), settings: settings)
        } throws: { error in
            guard case WireError.connectionRefused = error else { return false }
            return true
        }
    }

    @Test("listening on a port in use names the problem")
    func portInUse() async throws {
        let fixture = try EchoFixture.start()
        #expect {
            _ = try RPCServer(listeningOn: fixture.server.address, token: fixture.token, routes: RouteTable())
        } throws: { "\($0)".contains("already in use") }
        await fixture.server.close()
    }
}
