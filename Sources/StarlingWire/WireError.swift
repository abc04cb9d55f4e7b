/// Everything that can go wrong on the wire, with the peer and the call it concerns.
///
/// A reader of the message knows what failed, against which address, and what to try.
public enum WireError: Error, CustomStringConvertible, Equatable {
    /// No reply within the call's deadline.
    case timeout(peer: String, call: String, milliseconds: Int)
    /// The socket or connection was closed while the call was pending.
    case closed(peer: String, call: String)
    /// Could not connect to the peer (nothing listening, or unreachable) within the deadline.
    case connectionRefused(peer: String, detail: String)
    /// Bytes that do not parse as the expected message.
    case malformed(what: String, detail: String)
    /// A message larger than the configured limit.
    case tooLarge(what: String, size: Int, limit: Int)
    /// The peer did not (or could not) prove knowledge of the cluster token.
    case unauthenticated(peer: String, detail: String)
    /// The peer speaks another protocol version.
    case versionMismatch(peer: String, ours: UInt32, theirs: UInt32)
    /// The Swift task awaiting the call was cancelled.
    case cancelled(peer: String, call: String)
    /// The peer answered with a non-OK status.
    case remote(peer: String, call: String, code: StatusCode, message: String)
    /// An address this transport cannot use.
    case badAddress(String, detail: String)
    /// Any other NNG failure, with nng's own description.
    case nng(operation: String, code: Int32, detail: String)
    /// A configuration problem (token file, TLS files, options).
    case configuration(String)

    public var description: String {
        switch self {
        case let .timeout(peer, call, ms):
            return "\(call) to \(peer) timed out after \(ms) ms"
        case let .closed(peer, call):
            return "\(call) to \(peer) failed: the connection was closed"
        case let .connectionRefused(peer, detail):
            return "could not connect to \(peer): \(detail) (is a Starling process listening there?)"
        case let .malformed(what, detail):
            return "malformed \(what): \(detail)"
        case let .tooLarge(what, size, limit):
            return "\(what) is \(size) bytes, over the limit of \(limit) bytes"
        case let .unauthenticated(peer, detail):
            return "authentication with \(peer) failed: \(detail) (check the cluster token file)"
        case let .versionMismatch(peer, ours, theirs):
            return "\(peer) speaks Starling protocol version \(theirs), this process speaks \(ours): run the same Starling version everywhere"
        case let .cancelled(peer, call):
            return "\(call) to \(peer) was cancelled"
        case let .remote(peer, call, code, message):
            return "\(call) to \(peer) failed with \(code): \(message)"
        case let .badAddress(address, detail):
            return "bad address \"\(address)\": \(detail)"
        case let .nng(operation, code, detail):
            return "\(operation) failed: \(detail) (nng error \(code))"
        case let .configuration(detail):
            return "configuration error: \(detail)"
        }
    }
}
