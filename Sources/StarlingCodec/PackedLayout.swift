/// The layout of a contiguous array of fixed-width numbers (`[Float]`, `[Int32]`, `[UInt8]`,
/// `Data`…) in the binary format: a short header, then the elements exactly as they lie in
/// memory. Lets the object store write such a value straight into shared memory (one copy)
/// and hand out views of it in place (no copy).
public enum PackedLayout {
    /// The bytes before the elements when `count` elements of `E` are encoded; nil when arrays
    /// of `E` are not packed, or their elements differ in memory from the wire (big-endian).
    public static func header<E>(_: E.Type, count: Int) -> [UInt8]? {
        guard let scalar = E.self as? any PackableScalar.Type else { return nil }
        return header(of: scalar, count: count)
    }

    private static func header<P: PackableScalar>(of _: P.Type, count: Int) -> [UInt8]? {
        guard ByteWriter.bulkCopies(P.self) else { return nil }
        var writer = ByteWriter()
        writer.packedHeader(P.self, count: count)
        return writer.take()
    }

    /// The element count and the offset of the first element, when `bytes` holds exactly a
    /// packed array of `E`; nil otherwise (another type, or not packed).
    public static func elements<E>(_: E.Type, in bytes: UnsafeRawBufferPointer) -> (count: Int, start: Int)? {
        guard let scalar = E.self as? any PackableScalar.Type else { return nil }
        return elements(of: scalar, in: bytes)
    }

    private static func elements<P: PackableScalar>(of _: P.Type, in bytes: UnsafeRawBufferPointer) -> (count: Int, start: Int)? {
        guard ByteWriter.bulkCopies(P.self), bytes.count >= 3, bytes[0] == Tag.packed, bytes[1] == P.wireTag else { return nil }
        var count: UInt64 = 0
        var shift: UInt64 = 0
        var index = 2
        while index < min(bytes.count, 12) {
            let byte = bytes[index]
            count |= UInt64(byte & 0x7F) << shift
            index += 1
            if byte & 0x80 == 0 {
                guard count <= UInt64(bytes.count - index) / UInt64(MemoryLayout<P>.size),
                      Int(count) * MemoryLayout<P>.size == bytes.count - index else { return nil }
                return (Int(count), index)
            }
            shift += 7
        }
        return nil
    }

    /// Bytes of padding before an encoded value so that its elements (if it is a packed array)
    /// start on a 64-byte boundary of the segment.
    public static func alignmentPadding(for encoded: UnsafeRawBufferPointer) -> Int {
        guard encoded.count >= 3, encoded[0] == Tag.packed else { return 0 }
        var index = 2
        while index < min(encoded.count, 12), encoded[index] & 0x80 != 0 { index += 1 }
        let headerSize = index + 1
        return (64 - headerSize % 64) % 64
    }
}
