/// Encodes `Encodable` values to StarlingCodec's compact binary format.
///
/// Task arguments, task results and actor calls travel in this format. Every value carries a
/// one-byte type tag, so decoding into the wrong type fails with an error naming what was
/// expected, what was found and where. Contiguous arrays of numbers (`[Float]`, `[Int]`,
/// `[UInt8]`, ..., `ContiguousArray` of those) and `Data` are written with one memory copy,
/// wherever they sit in the value: tensors cost little more than a memcpy.
///
/// ```swift
/// struct Batch: Codable {
///     var step: Int
///     var weights: [Float]
/// }
///
/// let bytes = try BinaryEncoder().encode(Batch(step: 3, weights: [0.5, 1.5]))
/// let batch = try BinaryDecoder().decode(Batch.self, from: bytes)
/// ```
///
/// An encoder holds no state between calls; one value can be shared by many tasks.
public struct BinaryEncoder: Sendable {
    /// Values handed to `encode(to:)` implementations as `encoder.userInfo`.
    public var userInfo: [CodingUserInfoKey: any Sendable] = [:]

    /// How deeply values may nest before encoding fails with ``CodecError/nestingTooDeep(limit:path:)``
    /// (a guard against cyclic object graphs). Keep it equal to the decoder's.
    public var maxDepth: Int = BinaryDecoder.defaultMaxDepth

    public init() {}

    /// Encodes `value` to a new byte array.
    public func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(128)
        try encode(value, into: &bytes)
        return bytes
    }

    /// Encodes `value` and appends it to `bytes`, for callers that reuse a buffer or put a header
    /// first. On error `bytes` is left as it was.
    ///
    /// ```swift
    /// var message: [UInt8] = [kind]
    /// try BinaryEncoder().encode(arguments, into: &message)
    /// ```
    public func encode<T: Encodable>(_ value: T, into bytes: inout [UInt8]) throws {
        try EncoderState.encode(value, appendingTo: &bytes, options: options)
    }

    /// Encodes `value` and appends it to `parts`, leaving each packed array (`[Float]`, `Data`…)
    /// of at least `threshold` bytes (4 KiB at the least) where it lies in the value's memory
    /// instead of copying it: see ``EncodedParts``. On error `parts` is left as it was.
    ///
    /// A `Data` made with `bytesNoCopy` and no deallocator does not own its bytes: they must
    /// outlive `parts`.
    ///
    /// ```swift
    /// var parts = EncodedParts()
    /// try BinaryEncoder().encode(batch, into: &parts)
    /// try parts.withParts { try destination.write($0) }   // the arrays copied once, here
    /// ```
    public func encode<T: Encodable>(_ value: T, into parts: inout EncodedParts, gatheringAtLeast threshold: Int = 64 * 1024) throws {
        var bytes = parts.takeBytes()
        do {
            // Small `Data` keeps its bytes inline, in a copy on the stack: never gathered.
            let gathered = try EncoderState.encode(value, appendingTo: &bytes, gatherAtLeast: max(threshold, Self.leastGathered), options: options)
            parts.adopt(bytes, blocks: gathered.blocks, owners: gathered.owners)
        } catch {
            parts.adopt(bytes, blocks: [], owners: [])
            throw error
        }
    }

    /// The smallest block `encode(_:into:gatheringAtLeast:)` leaves in place.
    public static let leastGathered = 4096

    var options: CoderOptions {
        CoderOptions(userInfo: userInfo.isEmpty ? [:] : userInfo.mapValues { $0 as Any }, maxDepth: maxDepth)
    }
}
