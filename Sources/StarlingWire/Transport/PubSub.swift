import CNNG
import StarlingLog
import Synchronization

/// One published event: a topic and its payload (usually a packed protobuf message).
public struct PublishedEvent: Sendable, Equatable {
    public let topic: String
    public let payload: [UInt8]
}

/// Cluster events on PUB/SUB. PUB cannot run a handshake (it never receives), so every frame
/// is signed instead: `topic ‖ 0x00 ‖ HMAC(token, topic ‖ 0x00 ‖ payload) ‖ payload`.
/// Subscribers drop frames whose signature does not verify: nobody without the token can
/// inject events. (Confidentiality needs `tls+tcp://`.)
enum EventFrame {
    static func encode(topic: String, payload: [UInt8], token: ClusterToken) -> [UInt8] {
        let head = Array(topic.utf8) + [0]
        return head + HMACSHA256.mac(key: token.bytes, parts: [head, payload]) + payload
    }

    static func decode(_ frame: UnsafeRawBufferPointer, token: ClusterToken) -> PublishedEvent? {
        guard let zero = frame.firstIndex(of: 0), frame.count >= zero + 1 + HMACSHA256.size else { return nil }
        let head = Array(frame[..<(zero + 1)])
        let mac = Array(frame[(zero + 1)..<(zero + 1 + HMACSHA256.size)])
        let payload = Array(frame[(zero + 1 + HMACSHA256.size)...])
        guard HMACSHA256.equal(mac, HMACSHA256.mac(key: token.bytes, parts: [head, payload])),
              let topic = String(validating: head.dropLast(), as: UTF8.self) else { return nil }
        return PublishedEvent(topic: topic, payload: payload)
    }
}

/// Publishes signed events to every subscriber connected to its address.
public final class EventPublisher: Sendable {
    public let address: Address
    private let socket: nng_socket
    private let token: ClusterToken

    public init(listeningOn address: Address, token: ClusterToken, settings: TransportSettings = .default) throws {
        var socket = nng_socket()
        try NNG.check(nng_pub0_open(&socket), "nng_pub0_open")
        self.socket = socket
        self.token = token
        do {
            self.address = try Endpoint.listen(socket, on: address, tls: settings.tls)
        } catch {
            nng_close(socket)
            throw error
        }
    }

    /// Sends without waiting; a subscriber too slow to keep up misses events (PUB semantics).
    public func publish(topic: String, payload: [UInt8]) throws {
        let frame = EventFrame.encode(topic: topic, payload: payload, token: token)
        let message = try frame.withUnsafeBytes { try OutgoingMessage.copying($0) }
        let rc = nng_sendmsg(socket, message.message, Int32(NNG_FLAG_NONBLOCK))
        if rc != 0 {
            message.free()
            if rc == Int32(NNG_EAGAIN.rawValue) { return }
            try NNG.check(rc, "publish \(topic)")
        }
    }

    private let closed = Atomic<Bool>(false)

    public func close() {
        if !closed.exchange(true, ordering: .acquiringAndReleasing) { NNG.closeInBackground(socket) }
    }

    deinit { close() }
}

/// Receives verified events for the subscribed topic prefixes.
///
/// ```swift
/// let subscriber = try EventSubscriber(connectingTo: publisherAddress, token: token, topics: ["node."])
/// for await event in subscriber.events { print(event.topic) }
/// ```
public final class EventSubscriber: Sendable {
    /// Events in arrival order; finishes when the subscriber is closed.
    public let events: AsyncStream<PublishedEvent>
    private let receiver: Task<Void, Never>

    public init(connectingTo address: Address, token: ClusterToken, topics: [String] = [""],
                settings: TransportSettings = .default) throws {
        var socket = nng_socket()
        try NNG.check(nng_sub0_open(&socket), "nng_sub0_open")
        let aio: AsyncAio
        do {
            try NNG.check(nng_socket_set_size(socket, NNG.optRecvMaxSize, settings.maxMessageSize), "set recv-size-max")
            for topic in topics {
                let prefix = Array(topic.utf8)
                try NNG.check(prefix.withUnsafeBytes { nng_socket_set(socket, NNG.optSubscribe, $0.baseAddress, $0.count) }, "subscribe to \(topic)")
            }
            try Endpoint.dial(socket, to: address, settings: settings)
            aio = try AsyncAio()
        } catch {
            nng_close(socket)
            throw error
        }
        let (stream, continuation) = AsyncStream.makeStream(of: PublishedEvent.self, bufferingPolicy: .bufferingNewest(4096))
        events = stream
        receiver = Task.detached {
            let log = Logger(label: "events")
            // The receiving loop owns the socket's lifetime: closing it while a receive is
            // in progress on another thread is not safe with libnng 1.5.2.
            defer { NNG.closeInBackground(socket) }
            while !Task.isCancelled {
                let rc = await aio.run(timeout: nil) { nng_recv_aio(socket, $0) }
                if rc == NNG.closedCode || Task.isCancelled { break }
                guard rc == 0, let raw = aio.takeMessage() else { continue }
                let message = ReceivedMessage(taking: raw)
                if let event = EventFrame.decode(message.body, token: token) {
                    continuation.yield(event)
                } else {
                    log.warning("dropped an event frame from \(address) whose signature does not verify")
                }
            }
            continuation.finish()
        }
    }

    /// Stops receiving; `events` finishes and the socket closes.
    public func close() {
        receiver.cancel()
    }

    deinit { close() }
}
