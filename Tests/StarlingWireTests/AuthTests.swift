import Foundation
import Testing
@testable import StarlingWire

@Suite("Authentication")
struct AuthTests {
    @Test("the right token authenticates and calls work")
    func rightToken() async throws {
        let fixture = try EchoFixture.start()
        let client = try await fixture.client()
        let reply = try await client.call(DiagnosticsRPC.echo, EchoRequest(payload: [1, 2, 3]))
        #expect(reply.payload == [1, 2, 3])
        #expect(fixture.server.connectionCounts.authenticated == 1)
        client.close()
        await fixture.server.close()
    }

    @Test("a wrong token is refused and no handler runs")
    func wrongToken() async throws {
        let fixture = try EchoFixture.start()
        var settings = TransportSettings()
        // Generous: the assertion is about the kind of error, and CI starts every suite at once.
        settings.connectTimeout = .seconds(30)
        settings.handshakeTimeout = .seconds(30)
        await #expect {
            _ = try await RPCClient.connect(to: fixture.server.address, token: ClusterToken.generate(), settings: settings)
        } throws: { error in
            guard case WireError.unauthenticated = error else { return false }
            return true
        }
        #expect(await fixture.counter.count == 0)
        #expect(fixture.server.connectionCounts.authenticated == 0)
        await fixture.server.close()
    }

    @Test("a request before the handshake gets an UNAUTHENTICATED reply and no handler runs")
    func noHandshake() async throws {
        let fixture = try EchoFixture.start()
        let raw = try await RPCClient.connectWithoutHandshake(to: fixture.server.address)
        let request = frame(method: DiagnosticsRPC.echo.method, EchoRequest(payload: [9]))
        let reply = try ErrorReply(serializedBytes: try await raw.callRaw(request, authenticate: false))
        #expect(reply.status?.code == .unauthenticated && reply.status?.message.contains("handshake") == true, "\(reply)")
        #expect(await fixture.counter.count == 0)
        #expect(fixture.server.connectionCounts.authenticated == 0)
        raw.close()
        await fixture.server.close()
    }

    @Test("a client whose connection was refused as unauthenticated authenticates it and asks again")
    func reauthenticatesRefusedConnection() async throws {
        let fixture = try EchoFixture.start()
        let client = try await fixture.client()
        // As after NNG replaced the connection under the client: the server has not
        // authenticated this one, the client believes it has.
        let pipe = try #require(fixture.server.connectionIDs.first)
        fixture.server.forgetAuthentication(pipe)
        #expect(fixture.server.connectionCounts.authenticated == 0)
        let reply = try await client.call(DiagnosticsRPC.echo, EchoRequest(payload: [4, 5]))
        #expect(reply.payload == [4, 5])
        #expect(await fixture.counter.count == 1, "the refused request ran no handler; the retry ran once")
        #expect(fixture.server.connectionCounts.authenticated == 1)
        client.close()
        await fixture.server.close()
    }

    @Test("a peer with another protocol version gets a version error")
    func versionMismatch() async throws {
        let fixture = try EchoFixture.start()
        let raw = try await RPCClient.connectWithoutHandshake(to: fixture.server.address)
        var hello = Handshake.hello(peerName: "future")
        hello.protocolVersion = starlingProtocolVersion + 1
        let replyBytes = try await raw.callRaw(frame(method: HandshakeRPC.hello.method, hello), authenticate: false)
        let reply = try HelloReply(serializedBytes: replyBytes)
        #expect(reply.status?.code == .versionMismatch)
        #expect(reply.protocolVersion == starlingProtocolVersion)
        // The client side turns such a reply into a typed error naming both versions.
        #expect {
            _ = try Handshake.prove(reply, hello: hello, token: fixture.token, peer: "head")
        } throws: { error in
            guard case let WireError.versionMismatch(_, ours, theirs) = error else { return false }
            return ours == starlingProtocolVersion && theirs == starlingProtocolVersion && "\(error)".contains("protocol version")
        }
        raw.close()
        await fixture.server.close()
    }

    @Test("a server without the token cannot impersonate the cluster")
    func serverProofChecked() throws {
        let token = ClusterToken.generate()
        let hello = Handshake.hello(peerName: "node")
        let (reply, _) = Handshake.answer(hello, token: ClusterToken.generate(), serverName: "impostor")
        #expect(throws: WireError.self) { try Handshake.prove(reply, hello: hello, token: token, peer: "impostor") }
        let (good, challenge) = Handshake.answer(hello, token: token, serverName: "head")
        let prove = try Handshake.prove(good, hello: hello, token: token, peer: "head")
        #expect(Handshake.verify(prove, challenge: try #require(challenge), token: token))
    }

    @Test("token files are created 0600 and others' readable files are refused")
    func tokenFile() throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        let path = directory.file("token")
        let token = try ClusterToken.loadOrCreate(at: path)
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        #expect(try ClusterToken.load(from: path) == token)
        chmod(path, 0o644)
        #expect { try ClusterToken.load(from: path) } throws: { "\($0)".contains("chmod 600") }
        #expect(throws: WireError.self) { try ClusterToken(hex: "zz") }
        #expect(throws: WireError.self) { try ClusterToken.load(from: directory.file("missing")) }
    }
}
