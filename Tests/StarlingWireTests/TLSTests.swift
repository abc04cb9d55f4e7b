import Foundation
import Testing
@testable import StarlingWire

@Suite("TLS")
struct TLSTests {
    /// Makes a self-signed certificate for localhost with the openssl command, if present.
    static func makeCertificate(in directory: TemporaryDirectory) throws -> (certAndKey: String, ca: String)? {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl") else { return nil }
        let key = directory.file("key.pem"), cert = directory.file("cert.pem")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                             "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { return nil }
        let combined = directory.file("server.pem")
        let both = try String(contentsOfFile: cert, encoding: .utf8) + String(contentsOfFile: key, encoding: .utf8)
        try both.write(toFile: combined, atomically: true, encoding: .utf8)
        return (combined, cert)
    }

    @Test("tls+tcp carries authenticated calls when certificates are configured")
    func tlsCall() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        guard let files = try Self.makeCertificate(in: directory) else {
            print("TLSTests: skipped, the openssl command is not installed")
            return
        }
        let token = ClusterToken.generate()
        var serverSettings = TransportSettings()
        serverSettings.tls = TLSSettings(certificateAndKeyFile: files.certAndKey)
        var routes = RouteTable()
        routes.add(DiagnosticsRPC.echo) { request, _ in EchoReply(payload: request.payload) }
        let server = try RPCServer(listeningOn: Address("tls+tcp://127.0.0.1:0"), token: token, routes: routes, settings: serverSettings)
        var clientSettings = TransportSettings()
        clientSettings.tls = TLSSettings(caFile: files.ca, serverName: "localhost")
        let client = try await RPCClient.connect(to: server.address, token: token, settings: clientSettings)
        #expect(try await client.call(DiagnosticsRPC.echo, EchoRequest(payload: [5])).payload == [5])
        client.close()
        await server.close()
    }

    @Test("mutual TLS: both ends present the cluster certificate and verify the other's")
    func mutualTLS() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.cleanup() }
        guard let files = try Self.makeCertificate(in: directory) else {
            print("TLSTests: skipped, the openssl command is not installed")
            return
        }
        var settings = TransportSettings()
        settings.tls = TLSSettings(certificateAndKeyFile: files.certAndKey, caFile: files.ca)
        let token = ClusterToken.generate()
        var routes = RouteTable()
        routes.add(DiagnosticsRPC.echo) { request, _ in EchoReply(payload: request.payload) }
        let server = try RPCServer(listeningOn: Address("tls+tcp://127.0.0.1:0"), token: token, routes: routes, settings: settings)
        var client = settings
        client.connectTimeout = .seconds(20)
        client.handshakeTimeout = .seconds(20)
        client.tls?.serverName = "localhost"  // mbedtls 2.28 matches names, not IP addresses
        let connected = try await RPCClient.connect(to: server.address, token: token, settings: client)
        #expect(try await connected.call(DiagnosticsRPC.echo, EchoRequest(payload: [7])).payload == [7])
        connected.close()
        await server.close()
    }

    @Test("tls+tcp without certificates is a configuration error")
    func tlsNeedsCertificates() {
        #expect {
            _ = try RPCServer(listeningOn: Address("tls+tcp://127.0.0.1:0"), token: ClusterToken.generate(), routes: RouteTable())
        } throws: { "\($0)".contains("certificate") }
    }
}
