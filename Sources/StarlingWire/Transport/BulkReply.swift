import CNNG

/// A reply made of one large `bytes` field, written straight into the outgoing NNG message by
/// `fill` (a `pread` from shared memory or a spill file, say) instead of through a Swift array
/// and protobuf packing; the caller reads it in place from the received message. Object
/// chunks between nodes take this path: four copies of each byte instead of eight.
///
/// The frame is still the reply's protobuf encoding (the field's tag, its length, the bytes;
/// status omitted means OK), so any client can decode it as the reply type.
public struct BulkReply: Sendable {
    /// The protobuf field number of the `bytes` field.
    public let field: UInt32
    public let count: Int
    public let fill: @Sendable (UnsafeMutableRawBufferPointer) throws -> Void

    public init(field: UInt32, count: Int, fill: @escaping @Sendable (UnsafeMutableRawBufferPointer) throws -> Void) {
        self.field = field
        self.count = count
        self.fill = fill
    }

    /// The tag and length that precede the bytes.
    static func prefix(field: UInt32, count: Int) -> [UInt8] {
        var bytes: [UInt8] = []
        appendVarint(UInt64(field) << 3 | 2, to: &bytes)
        appendVarint(UInt64(count), to: &bytes)
        return bytes
    }

    private static func appendVarint(_ value: UInt64, to bytes: inout [UInt8]) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(value & 0x7F) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(value))
    }

    /// The bytes of `field` when `body` is exactly that field and nothing else (a bulk frame);
    /// nil otherwise (an error reply, or a reply packed the ordinary way).
    static func payload(of body: UnsafeRawBufferPointer, field: UInt32) -> UnsafeRawBufferPointer? {
        var index = 0
        func varint() -> UInt64? {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while index < body.count, shift < 64 {
                let byte = body[index]
                index += 1
                value |= UInt64(byte & 0x7F) << shift
                if byte < 0x80 { return value }
                shift += 7
            }
            return nil
        }
        guard let tag = varint(), tag == UInt64(field) << 3 | 2, let length = varint(), UInt64(body.count - index) == length else { return nil }
        return UnsafeRawBufferPointer(rebasing: body[index...])
    }

    func message(limit: Int, what: String) throws -> OutgoingMessage {
        let prefix = Self.prefix(field: field, count: count)
        let total = prefix.count + count
        guard total <= limit else { throw WireError.tooLarge(what: what, size: total, limit: limit) }
        var message: OpaquePointer?
        try NNG.check(nng_msg_alloc(&message, total), "nng_msg_alloc for \(what)")
        let body = nng_msg_body(message!)!
        prefix.withUnsafeBytes { body.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        do {
            try fill(UnsafeMutableRawBufferPointer(start: body + prefix.count, count: count))
        } catch {
            nng_msg_free(message!)
            throw error
        }
        return OutgoingMessage(message: message!)
    }
}

extension RouteTable {
    /// Serves `rpc` with a handler whose successful reply is a `BulkReply` (errors thrown as
    /// `RPCFailure` are ordinary error replies).
    public mutating func addBulk<Request, Reply>(
        _ rpc: RPC<Request, Reply>,
        _ handler: @escaping @Sendable (Request, CallContext) async throws -> BulkReply
    ) {
        let name = rpc.name
        add(method: rpc.method, name: name) { message, context, limit in
            await Self.respond(to: message, as: Request.self, name: name, limit: limit) { request in
                try await handler(request, context).message(limit: limit, what: "reply to \(name)")
            }
        }
    }
}

extension RPCClient {
    /// Calls `rpc` and hands the reply's `bytes` field (`field`, also readable as `bytes`) to
    /// `body` in place when the reply is a bulk frame; otherwise decodes the reply (throwing
    /// its error status) and hands over `bytes` of it.
    public func callBulk<Request, Reply, Result>(_ rpc: RPC<Request, Reply>, _ request: Request, field: UInt32,
                                                 bytes: KeyPath<Reply, [UInt8]>, timeout: Duration? = nil,
                                                 _ body: (UnsafeRawBufferPointer) throws -> Result) async throws -> Result {
        let received = try await exchangeReply(rpc, request, timeout: timeout)
        // The payload points into the received message: it must live until `body` returns.
        let bulk: Result? = try withExtendedLifetime(received) {
            try BulkReply.payload(of: received.body, field: field).map { try body($0) }
        }
        if let bulk { return bulk }
        let reply = try decodeReply(received, rpc, returningFailures: false)
        return try reply[keyPath: bytes].withUnsafeBytes { try body($0) }
    }
}
