public import Foundation

/// Decodes `Decodable` values from the bytes ``BinaryEncoder`` writes.
///
/// Decoding checks every length and count against the bytes that are left before it reads or
/// allocates anything: truncated, corrupted or hostile input throws a ``CodecError`` and never
/// crashes or allocates more than the input could describe. Keys may be decoded in any order,
/// and `decodeIfPresent` and `contains` see exactly the keys that were encoded.
///
/// ```swift
/// let decoder = BinaryDecoder()
/// let batch = try decoder.decode(Batch.self, from: bytes)          // [UInt8]
/// let batch2 = try decoder.decode(Batch.self, from: data)          // Data
/// let batch3 = try body.withUnsafeBytes {                          // a received message body
///     try decoder.decode(Batch.self, from: $0)
/// }
/// ```
///
/// The whole input must be one value: bytes left after it are ``CodecError/trailingBytes(count:offset:)``.
public struct BinaryDecoder: Sendable {
    /// The default nesting limit, deep enough for any sensible payload and shallow enough that a
    /// hostile input cannot exhaust a thread's stack.
    public static let defaultMaxDepth = 256

    /// Values handed to `init(from:)` implementations as `decoder.userInfo` (for example the
    /// actor system that decodes distributed actor references).
    public var userInfo: [CodingUserInfoKey: any Sendable] = [:]

    /// How deeply values may nest before decoding fails with ``CodecError/nestingTooDeep(limit:path:)``.
    public var maxDepth: Int = BinaryDecoder.defaultMaxDepth

    public init() {}

    /// Decodes a `T` from `bytes`.
    public func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        try bytes.withUnsafeBytes { try decode(type, from: $0) }
    }

    /// Decodes a `T` from `data`.
    public func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
        try data.withUnsafeBytes { try decode(type, from: $0) }
    }

    /// Decodes a `T` from raw memory at any alignment, such as a received message body. The
    /// memory is only read during the call; the result does not point into it.
    public func decode<T: Decodable>(_ type: T.Type, from buffer: UnsafeRawBufferPointer) throws -> T {
        try DecoderState.decode(type, from: buffer, options: options)
    }

    var options: CoderOptions {
        CoderOptions(userInfo: userInfo.isEmpty ? [:] : userInfo.mapValues { $0 as Any }, maxDepth: maxDepth)
    }
}
