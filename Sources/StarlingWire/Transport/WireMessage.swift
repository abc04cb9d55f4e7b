import CNNG

/// A received NNG message, owned by Swift and freed with it.
///
/// Request frames carry a 4-byte little-endian method number before the protobuf bytes;
/// replies are protobuf only. Bodies are not 16-byte aligned: read them with `loadUnaligned`.
// Sendable without compiler proof, safe because the message is exclusively owned after receipt and only ever read.
final class ReceivedMessage: @unchecked Sendable {
    let message: OpaquePointer

    init(taking message: OpaquePointer) {
        self.message = message
    }

    deinit {
        nng_msg_free(message)
    }

    var body: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: nng_msg_body(message), count: nng_msg_len(message))
    }

    /// The NNG pipe (connection) the message arrived on.
    var pipeID: UInt32 {
        UInt32(bitPattern: nng_pipe_id(nng_msg_get_pipe(message)))
    }

    var pipe: nng_pipe { nng_msg_get_pipe(message) }
}

/// An outgoing NNG message built by packing a protobuf message, with an optional header.
// Sendable without compiler proof, safe because one holder owns the message until it is sent (then NNG owns it) or freed.
struct OutgoingMessage: @unchecked Sendable {
    let message: OpaquePointer

    static let headerSize = 4

    /// Packs `value`, prefixed with `method` when given (request frames). Throws
    /// `WireError.tooLarge` before allocating anything when the frame would exceed `limit`.
    static func pack<M: ProtoMessage>(_ value: M, method: UInt32?, limit: Int, what: @autoclosure () -> String) throws -> OutgoingMessage {
        var message: OpaquePointer?
        let headerSize = method == nil ? 0 : headerSize
        try value.pack { size in
            let total = size + headerSize
            guard total <= limit else { throw WireError.tooLarge(what: what(), size: total, limit: limit) }
            try NNG.check(nng_msg_alloc(&message, total), "nng_msg_alloc for \(what())")
            let body = nng_msg_body(message!)!
            if let method {
                body.storeBytes(of: method.littleEndian, toByteOffset: 0, as: UInt32.self)
            }
            return body + headerSize
        }
        guard let message else { throw WireError.nng(operation: "pack \(what())", code: 0, detail: "no message allocated") }
        return OutgoingMessage(message: message)
    }

    /// Copies raw bytes into a new message.
    static func copying(_ bytes: UnsafeRawBufferPointer) throws -> OutgoingMessage {
        var message: OpaquePointer?
        try NNG.check(nng_msg_alloc(&message, bytes.count), "nng_msg_alloc")
        if bytes.count > 0 { nng_msg_body(message!).copyMemory(from: bytes.baseAddress!, byteCount: bytes.count) }
        return OutgoingMessage(message: message!)
    }

    func free() {
        nng_msg_free(message)
    }
}
