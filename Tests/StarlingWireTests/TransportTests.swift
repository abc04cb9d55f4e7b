import Foundation
import Testing
@testable import StarlingWire

@Suite("Transport")
struct TransportTests {
    @Test("concurrent calls over ipc and tcp all get their own replies", arguments: ["ipc", "tcp"])
    func concurrentCalls(scheme: String) async throws {
        let fixture = try EchoFixture.start(scheme: scheme)
        let client = try await fixture.client()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<200 {
                group.addTask {
                    let payload = Array("call \(i)".utf8)
                    let reply = try await client.call(DiagnosticsRPC.echo, EchoRequest(payload: payload))
                    #expect(reply.payload == payload)
                }
            }
            try await group.waitForAll()
        }
        #expect(await fixture.counter.count == 200)
        client.close()
        await fixture.server.close()
    }

    @Test("handler errors reach the caller with their status code")
    func handlerErrors() async throws {
        let token = ClusterToken.generate()
        var routes = RouteTable()
        routes.add(DiagnosticsRPC.echo) { _, _ -> EchoReply in throw RPCFailure(.notFound, "no such thing") }
        let server = try RPCServer(listeningOn: Address("tcp://127.0.0.1:0"), token: token, routes: routes)
        let client = try await RPCClient.connect(to: server.address, token: token)
        await #expect {
            _ = try await client.call(DiagnosticsRPC.echo, EchoRequest())
        } throws: { error in
            guard case let WireError.remote(_, call, code, message) = error else { return false }
            return code == .notFound && message == "no such thing" && call == DiagnosticsRPC.echo.name
        }
        client.close()
        await server.close()
    }

    @Test("a call times out with a typed error naming the peer and call")
    func timeout() async throws {
        let fixture = try EchoFixture.start(delay: .seconds(5))
        let client = try await fixture.client()
        await #expect {
            _ = try await client.call(DiagnosticsRPC.echo, EchoRequest(), timeout: .milliseconds(100))
        } throws: { error in
            guard case let WireError.timeout(peer, call, ms) = error else { return false }
            return peer == fixture.server.address.description && call == DiagnosticsRPC.echo.name && ms == 100
        }
        client.close()
        await fixture.server.close()
    }

    @Test("cancelling the awaiting task returns promptly and leaks no contexts or aios")
    func cancellation() async throws {
        let fixture = try EchoFixture.start(delay: .seconds(30))
        let client = try await fixture.client()
        // Warm the context pool up to the concurrency used below, then take the baseline.
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<20 { group.addTask { _ = try? await client.call(DiagnosticsRPC.echo, EchoRequest(), timeout: .milliseconds(50)) } }
        }
        let baseline = client.diagnostics
        #expect(baseline.inFlight == 0)
        #expect(baseline.contexts == 20)

        let clock = ContinuousClock()
        let start = clock.now
        let tasks = (0..<20).map { _ in
            Task { try await client.call(DiagnosticsRPC.echo, EchoRequest(payload: [1])) }
        }
        try await Task.sleep(for: .milliseconds(100))
        #expect(client.diagnostics.inFlight == 20)
        for task in tasks { task.cancel() }
        for task in tasks {
            let result = await task.result
            guard case let .failure(error) = result, case WireError.cancelled = error else {
                Issue.record("expected WireError.cancelled, got \(result)")
                continue
            }
        }
        // The handler sleeps 30 s: anything near that means cancellation did not reach NNG.
        #expect(clock.now - start < .seconds(10))
        #expect(client.diagnostics.inFlight == 0)
        #expect(client.diagnostics.contexts == baseline.contexts)
        client.close()
        #expect(client.diagnostics.contexts == 0)
        await fixture.server.close()
    }

    @Test("a client reconnects and re-authenticates after the server restarts")
    func reconnect() async throws {
        let token = ClusterToken.generate()
        var routes = RouteTable()
        routes.add(DiagnosticsRPC.echo) { request, _ in EchoReply(payload: request.payload) }
        let first = try RPCServer(listeningOn: Address("tcp://127.0.0.1:0"), token: token, routes: routes)
        let address = first.address
        var settings = TransportSettings()
        settings.reconnectMin = .milliseconds(10)
        settings.reconnectMax = .milliseconds(50)
        let client = try await RPCClient.connect(to: address, token: token, settings: settings)
        #expect(try await client.call(DiagnosticsRPC.echo, EchoRequest(payload: [1])).payload == [1])
        await first.close()
        let second = try RPCServer(listeningOn: address, token: token, routes: routes)
        var reply: EchoReply?
        for _ in 0..<50 where reply == nil {
            reply = try? await client.call(DiagnosticsRPC.echo, EchoRequest(payload: [2]), timeout: .milliseconds(200))
        }
        #expect(reply?.payload == [2])
        client.close()
        await second.close()
    }

    @Test("published events reach subscribers; frames signed with another token are dropped")
    func pubSub() async throws {
        let token = ClusterToken.generate()
        let publisher = try EventPublisher(listeningOn: Address("tcp://127.0.0.1:0"), token: token)
        let subscriber = try EventSubscriber(connectingTo: publisher.address, token: token, topics: ["node."])
        let stranger = try EventSubscriber(connectingTo: publisher.address, token: ClusterToken.generate(), topics: [""])
        let strangerCount = Task { () -> Int in
            var count = 0
            for await _ in stranger.events { count += 1 }
            return count
        }
        // PUB drops events until a subscription has propagated: publish until one arrives.
        let publishing = Task {
            while !Task.isCancelled {
                try? publisher.publish(topic: "job.started", payload: [0])
                try? publisher.publish(topic: "node.joined", payload: Array("n1".utf8))
                try? await Task.sleep(for: .milliseconds(20))
            }
        }
        let watchdog = Task {
            try await Task.sleep(for: .seconds(10))
            subscriber.close()
        }
        var iterator = subscriber.events.makeAsyncIterator()
        let event = await iterator.next()
        publishing.cancel()
        watchdog.cancel()
        #expect(event == PublishedEvent(topic: "node.joined", payload: Array("n1".utf8)))
        stranger.close()
        #expect(await strangerCount.value == 0)
        subscriber.close()
        publisher.close()
    }
}
