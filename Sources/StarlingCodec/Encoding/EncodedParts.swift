import Foundation

/// An encoded value whose large arrays may still lie in the value's own memory: the bytes
/// the encoder wrote, with the arrays' blocks referenced in their places instead of copied.
///
/// ``BinaryEncoder/encode(_:into:gatheringAtLeast:)`` fills it. Writing the parts one after
/// another (``withParts(_:)``) gives exactly the bytes ``BinaryEncoder/encode(_:)`` would: a
/// value bound for shared memory is copied once, from its arrays straight to its destination.
/// The parts keep copies of the arrays they point into, so the memory stays valid (and, the
/// arrays being copy-on-write, unchanged) for as long as the parts live.
public struct EncodedParts {
    /// The bytes written, the gathered blocks left out.
    private(set) var bytes: [UInt8] = []
    private var blocks: [GatheredBlock] = []
    private var owners: [any KeepsStorageAlive] = []
    /// Bytes in gathered blocks.
    private var gatheredCount = 0

    public init() {}

    /// The encoded length: written bytes and gathered blocks.
    public var count: Int { bytes.count + gatheredCount }

    /// True when no block was gathered: the bytes are the whole encoding.
    public var isContiguous: Bool { blocks.isEmpty }

    /// Appends plain bytes (framing around encoded values).
    public mutating func append(contentsOf newBytes: some Sequence<UInt8>) {
        bytes.append(contentsOf: newBytes)
    }

    /// Appends `value`'s little-endian bytes.
    public mutating func append<I: FixedWidthInteger>(littleEndian value: I) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    /// Overwrites bytes written at encoded offset `offset` (a placeholder appended earlier, not
    /// part of a gathered block) with `value`'s little-endian bytes.
    public mutating func overwrite<I: FixedWidthInteger>(littleEndian value: I, at offset: Int) {
        var gatheredBefore = 0
        for block in blocks {
            let blockStart = block.at + gatheredBefore
            guard offset >= blockStart else { break }
            precondition(offset >= blockStart + block.bytes.count, "EncodedParts.overwrite inside a gathered block")
            gatheredBefore += block.bytes.count
        }
        let index = offset - gatheredBefore
        precondition(index >= 0 && index + MemoryLayout<I>.size <= bytes.count, "EncodedParts.overwrite past the written bytes")
        withUnsafeBytes(of: value.littleEndian) { raw in
            bytes.withUnsafeMutableBytes { ($0.baseAddress! + index).copyMemory(from: raw.baseAddress!, byteCount: raw.count) }
        }
    }

    /// Drops the last `n` written bytes (after the last gathered block).
    public mutating func removeLast(_ n: Int) {
        precondition(n <= bytes.count - (blocks.last?.at ?? 0), "EncodedParts.removeLast reaches into a gathered block")
        bytes.removeLast(n)
    }

    /// Runs `body` with the encoding's pieces in order: written bytes and gathered blocks.
    public func withParts<R>(_ body: ([UnsafeRawBufferPointer]) throws -> R) rethrows -> R {
        try bytes.withUnsafeBytes { written in
            var parts: [UnsafeRawBufferPointer] = []
            parts.reserveCapacity(2 * blocks.count + 1)
            var from = 0
            for block in blocks {
                if block.at > from { parts.append(UnsafeRawBufferPointer(rebasing: written[from..<block.at])) }
                parts.append(block.bytes)
                from = block.at
            }
            if written.count > from { parts.append(UnsafeRawBufferPointer(rebasing: written[from...])) }
            return try body(parts)
        }
    }

    /// The whole encoding in one array (a copy of each gathered block).
    public func joined() -> [UInt8] {
        if blocks.isEmpty { return bytes }
        return [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            withParts { parts in
                var position = UnsafeMutableRawPointer(buffer.baseAddress!)
                for part in parts where part.count > 0 {
                    position.copyMemory(from: part.baseAddress!, byteCount: part.count)
                    position += part.count
                }
            }
            initialized = count
        }
    }

    /// Takes over what an encoder wrote after `bytes.count` (the encoder appended to `bytes`).
    mutating func adopt(_ written: consuming [UInt8], blocks newBlocks: [GatheredBlock], owners newOwners: [any KeepsStorageAlive]) {
        bytes = written
        blocks += newBlocks
        owners += newOwners
        gatheredCount += newBlocks.reduce(0) { $0 + $1.bytes.count }
    }

    /// The written bytes, for an encoder to append to (given back with `adopt`).
    mutating func takeBytes() -> [UInt8] {
        var taken: [UInt8] = []
        swap(&taken, &bytes)
        return taken
    }
}

/// A block of an encoding left in its owner's memory: it belongs just before the written byte
/// at `at`.
struct GatheredBlock {
    let at: Int
    let bytes: UnsafeRawBufferPointer
}

/// Values whose contiguous storage stays where it is, unchanged, for as long as any copy of the
/// value lives (their buffer is shared and copied on write): a copy held beside a gathered
/// block keeps the block's memory valid.
protocol KeepsStorageAlive {}
extension Array: KeepsStorageAlive {}
extension ContiguousArray: KeepsStorageAlive {}
extension ArraySlice: KeepsStorageAlive {}
extension Data: KeepsStorageAlive {}
