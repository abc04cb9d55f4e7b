/// A failure found while reading bytes, before the container that called the reader adds the
/// coding path and the expected type to make it a ``CodecError``.
enum RawError: Error {
    case truncated(offset: Int, needed: UInt64, available: Int)
    case mismatch(found: String)
    case missingKey
    case exhausted
    case invalidUTF8(offset: Int)
    case countOutOfRange(count: UInt64, available: Int)
    case outOfRange(value: String)
    case invalidData(String)

    static func mismatch(tag: UInt8) -> RawError { .mismatch(found: Tag.name(tag)) }
}

/// A type the encoder writes itself instead of calling its `encode(to:)`: scalars, strings,
/// packed arrays, `Data`, optionals. Checked with one dynamic cast per generic `encode`.
protocol EncodesDirectly {
    func encodeDirectly(to state: EncoderState) throws
}

/// A type the decoder reads itself instead of calling its `init(from:)`.
protocol DecodesDirectly {
    static func decodeDirectly(from state: DecoderState, at offset: Int, limit: Int) throws -> Self
}

/// Marks `Optional`, so a present-but-nil entry can decode as `.some(nil)` for `T??`.
protocol OptionalMarker {}
extension Optional: OptionalMarker {}

/// A fixed-width value with its own tag: `Bool`, the integers, `Float`, `Double`.
protocol BinaryScalar: Codable, EncodesDirectly, DecodesDirectly {
    /// The integer the value travels as, little-endian.
    associatedtype WireBits: FixedWidthInteger
    /// The tag written before the value, and the element tag in packed arrays.
    static var wireTag: UInt8 { get }
    var wireBits: WireBits { get }
    /// The value of a payload written with `wireTag`; nil when the bits are not a valid value.
    static func fromWireBits(_ bits: WireBits) -> Self?
    /// Reads a payload written with another scalar tag, when that converts without loss.
    static func convert(tag: UInt8, payload: UnsafeRawPointer) throws(RawError) -> Self
}

/// A scalar whose in-memory array layout is its packed wire layout on a little-endian host
/// (when `MemoryLayout<Self>.size == wireWidth`): arrays of it are copied with one memcpy.
protocol PackableScalar: BinaryScalar {}

extension BinaryScalar {
    /// Bytes after the tag.
    @inline(__always)
    static var wireWidth: Int { MemoryLayout<WireBits>.size }

    @inline(__always)
    func writePayload(to writer: inout ByteWriter) { writer.fixed(wireBits) }

    @inline(__always)
    static func readPayload(_ payload: UnsafeRawPointer) -> Self? {
        fromWireBits(WireBits(littleEndian: payload.loadUnaligned(as: WireBits.self)))
    }

    func encodeDirectly(to state: EncoderState) throws {
        state.core.writer.scalar(self)
    }

    static func decodeDirectly(from state: DecoderState, at offset: Int, limit: Int) throws -> Self {
        try state.readScalar(Self.self, at: offset, limit: limit).value
    }

    static func convert(tag: UInt8, payload: UnsafeRawPointer) throws(RawError) -> Self {
        throw RawError.mismatch(tag: tag)
    }
}

extension ByteWriter {
    @inline(__always)
    mutating func scalar<S: BinaryScalar>(_ value: S) {
        tagged(S.wireTag, value.wireBits)
    }
}

// MARK: - Integers

/// Reads any integer payload and converts it to `I` when the value fits.
@inline(never)
func convertInteger<I: FixedWidthInteger>(_: I.Type, tag: UInt8, payload p: UnsafeRawPointer) throws(RawError) -> I {
    func fit<V: BinaryInteger>(_ value: V) throws(RawError) -> I {
        guard let result = I(exactly: value) else {
            throw RawError.outOfRange(value: "\(value) (\(Tag.name(tag)))")
        }
        return result
    }
    switch tag {
    case Tag.int8: return try fit(Int8(bitPattern: p.load(as: UInt8.self)))
    case Tag.int16: return try fit(Int16(littleEndian: p.loadUnaligned(as: Int16.self)))
    case Tag.int32: return try fit(Int32(littleEndian: p.loadUnaligned(as: Int32.self)))
    case Tag.int64: return try fit(Int64(littleEndian: p.loadUnaligned(as: Int64.self)))
    case Tag.int128: return try fit(Int128(littleEndian: p.loadUnaligned(as: Int128.self)))
    case Tag.uint8: return try fit(p.load(as: UInt8.self))
    case Tag.uint16: return try fit(UInt16(littleEndian: p.loadUnaligned(as: UInt16.self)))
    case Tag.uint32: return try fit(UInt32(littleEndian: p.loadUnaligned(as: UInt32.self)))
    case Tag.uint64: return try fit(UInt64(littleEndian: p.loadUnaligned(as: UInt64.self)))
    case Tag.uint128: return try fit(UInt128(littleEndian: p.loadUnaligned(as: UInt128.self)))
    default: throw RawError.mismatch(tag: tag)
    }
}

/// The integers whose payload is exactly their own little-endian bytes.
protocol NativeInteger: FixedWidthInteger, PackableScalar where WireBits == Self {}

extension NativeInteger {
    @inline(__always)
    var wireBits: Self { self }

    @inline(__always)
    static func fromWireBits(_ bits: Self) -> Self? { bits }

    static func convert(tag: UInt8, payload: UnsafeRawPointer) throws(RawError) -> Self {
        try convertInteger(Self.self, tag: tag, payload: payload)
    }
}

extension Int8: NativeInteger { static var wireTag: UInt8 { Tag.int8 } }
extension Int16: NativeInteger { static var wireTag: UInt8 { Tag.int16 } }
extension Int32: NativeInteger { static var wireTag: UInt8 { Tag.int32 } }
extension Int64: NativeInteger { static var wireTag: UInt8 { Tag.int64 } }
extension Int128: NativeInteger { static var wireTag: UInt8 { Tag.int128 } }
extension UInt8: NativeInteger { static var wireTag: UInt8 { Tag.uint8 } }
extension UInt16: NativeInteger { static var wireTag: UInt8 { Tag.uint16 } }
extension UInt32: NativeInteger { static var wireTag: UInt8 { Tag.uint32 } }
extension UInt64: NativeInteger { static var wireTag: UInt8 { Tag.uint64 } }
extension UInt128: NativeInteger { static var wireTag: UInt8 { Tag.uint128 } }

/// `Int` travels as Int64 (so 32- and 64-bit peers agree); packed as-is on 64-bit hosts.
extension Int: PackableScalar {
    static var wireTag: UInt8 { Tag.int64 }

    @inline(__always)
    var wireBits: Int64 { Int64(self) }

    @inline(__always)
    static func fromWireBits(_ bits: Int64) -> Int? { Int(exactly: bits) }

    static func convert(tag: UInt8, payload: UnsafeRawPointer) throws(RawError) -> Int {
        try convertInteger(Int.self, tag: tag, payload: payload)
    }
}

/// `UInt` travels as UInt64.
extension UInt: PackableScalar {
    static var wireTag: UInt8 { Tag.uint64 }

    @inline(__always)
    var wireBits: UInt64 { UInt64(self) }

    @inline(__always)
    static func fromWireBits(_ bits: UInt64) -> UInt? { UInt(exactly: bits) }

    static func convert(tag: UInt8, payload: UnsafeRawPointer) throws(RawError) -> UInt {
        try convertInteger(UInt.self, tag: tag, payload: payload)
    }
}

// MARK: - Bool and floating point

extension Bool: PackableScalar {
    static var wireTag: UInt8 { Tag.bool }

    @inline(__always)
    var wireBits: UInt8 { self ? 1 : 0 }

    @inline(__always)
    static func fromWireBits(_ bits: UInt8) -> Bool? {
        switch bits {
        case 0: return false
        case 1: return true
        default: return nil
        }
    }
}

extension Float: PackableScalar {
    static var wireTag: UInt8 { Tag.float32 }

    @inline(__always)
    var wireBits: UInt32 { bitPattern }

    @inline(__always)
    static func fromWireBits(_ bits: UInt32) -> Float? { Float(bitPattern: bits) }
}

extension Double: PackableScalar {
    static var wireTag: UInt8 { Tag.float64 }

    @inline(__always)
    var wireBits: UInt64 { bitPattern }

    @inline(__always)
    static func fromWireBits(_ bits: UInt64) -> Double? { Double(bitPattern: bits) }

    /// A `Float` widens to `Double` exactly.
    static func convert(tag: UInt8, payload: UnsafeRawPointer) throws(RawError) -> Double {
        guard tag == Tag.float32 else { throw RawError.mismatch(tag: tag) }
        return Double(Float(bitPattern: UInt32(littleEndian: payload.loadUnaligned(as: UInt32.self))))
    }
}
