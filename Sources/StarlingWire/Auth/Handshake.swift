/// The cluster handshake as pure logic (no sockets): the RPC layer feeds it messages.
///
/// 1. client → `HelloRequest { protocol_version, client_nonce }`
/// 2. server → `HelloReply { server_nonce, server_proof = HMAC(token, "server" ‖ cn ‖ sn) }`
///    (the client checks the proof: it is talking to a member of its cluster)
/// 3. client → `ProveRequest { client_proof = HMAC(token, "client" ‖ sn ‖ cn) }`
/// 4. server marks the connection authenticated, or closes it.
///
/// Nonces are fresh per connection, so a recorded proof is useless on another connection,
/// and the token itself never crosses the wire.
enum Handshake {
    static let nonceSize = 32
    private static let serverLabel = Array("starling-handshake-server-v1".utf8)
    private static let clientLabel = Array("starling-handshake-client-v1".utf8)

    /// What the server remembers about a connection between Hello and Prove.
    struct Challenge: Sendable, Equatable {
        let clientNonce: [UInt8]
        let serverNonce: [UInt8]
    }

    static func hello(peerName: String) -> HelloRequest {
        var hello = HelloRequest()
        hello.protocolVersion = starlingProtocolVersion
        hello.clientNonce = randomBytes(nonceSize)
        hello.peerName = peerName
        return hello
    }

    /// Server side of step 2. Returns the reply and, when the hello is acceptable, the
    /// challenge to remember for this connection.
    static func answer(_ hello: HelloRequest, token: ClusterToken, serverName: String) -> (HelloReply, Challenge?) {
        var reply = HelloReply()
        reply.protocolVersion = starlingProtocolVersion
        reply.serverName = serverName
        guard hello.protocolVersion == starlingProtocolVersion else {
            reply.status = Status(code: .versionMismatch, message: "server speaks protocol version \(starlingProtocolVersion), client \(hello.protocolVersion)")
            return (reply, nil)
        }
        guard hello.clientNonce.count == nonceSize else {
            reply.status = Status(code: .malformed, message: "client nonce must be \(nonceSize) bytes, got \(hello.clientNonce.count)")
            return (reply, nil)
        }
        let challenge = Challenge(clientNonce: hello.clientNonce, serverNonce: randomBytes(nonceSize))
        reply.status = Status(code: .ok, message: "")
        reply.serverNonce = challenge.serverNonce
        reply.serverProof = HMACSHA256.mac(key: token.bytes, parts: [serverLabel, challenge.clientNonce, challenge.serverNonce])
        return (reply, challenge)
    }

    /// Client side of step 3: checks the server's proof and answers with ours.
    static func prove(_ reply: HelloReply, hello: HelloRequest, token: ClusterToken, peer: String) throws -> ProveRequest {
        if reply.status?.code == .versionMismatch || reply.protocolVersion != starlingProtocolVersion {
            throw WireError.versionMismatch(peer: peer, ours: starlingProtocolVersion, theirs: reply.protocolVersion)
        }
        if let status = reply.status, status.code != .ok {
            throw WireError.unauthenticated(peer: peer, detail: "server refused the hello: \(status.message)")
        }
        let expected = HMACSHA256.mac(key: token.bytes, parts: [serverLabel, hello.clientNonce, reply.serverNonce])
        guard reply.serverNonce.count == nonceSize, HMACSHA256.equal(expected, reply.serverProof) else {
            throw WireError.unauthenticated(peer: peer, detail: "the server could not prove it holds this cluster's token")
        }
        var prove = ProveRequest()
        prove.clientProof = HMACSHA256.mac(key: token.bytes, parts: [clientLabel, reply.serverNonce, hello.clientNonce])
        return prove
    }

    /// Server side of step 4.
    static func verify(_ prove: ProveRequest, challenge: Challenge, token: ClusterToken) -> Bool {
        let expected = HMACSHA256.mac(key: token.bytes, parts: [clientLabel, challenge.serverNonce, challenge.clientNonce])
        return HMACSHA256.equal(expected, prove.clientProof)
    }
}
