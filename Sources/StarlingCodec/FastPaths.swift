import Foundation

// Types written and read without going through their own Codable code. The packed arrays are
// the point: a `[Float]` of a million elements is one header and one memcpy each way, wherever
// it sits in a value (top level, a field deep in a struct, an element of an array).

extension String: EncodesDirectly, DecodesDirectly {
    func encodeDirectly(to state: EncoderState) throws {
        state.core.writer.byte(Tag.string)
        state.core.writer.string(self)
    }

    static func decodeDirectly(from state: DecoderState, at offset: Int, limit: Int) throws -> String {
        try state.readString(at: offset, limit: limit).value
    }
}

// MARK: - Packed arrays

extension ByteWriter {
    mutating func data(_ data: Data) {
        packedHeader(UInt8.self, count: data.count)
        data.withUnsafeBytes { bulk($0, owner: data) }
    }

    /// `packed elementTag varint(count)`, the part before the elements.
    @inline(__always)
    mutating func packedHeader<E: PackableScalar>(_: E.Type, count: Int) {
        byte(Tag.packed)
        byte(E.wireTag)
        varint(UInt64(count))
    }

    /// True when an array of `E` in memory is exactly its packed elements on the wire.
    @inline(__always)
    static func bulkCopies<E: PackableScalar>(_: E.Type) -> Bool {
        #if _endian(little)
        return MemoryLayout<E>.size == E.wireWidth
        #else
        return false
        #endif
    }

    /// Writes a contiguous collection of scalars as a packed array: one memcpy when it can.
    @inline(__always)
    mutating func packed<C: RandomAccessCollection>(_ elements: C) where C.Element: PackableScalar {
        packedHeader(C.Element.self, count: elements.count)
        if Self.bulkCopies(C.Element.self),
           elements.withContiguousStorageIfAvailable({ bulk(UnsafeRawBufferPointer($0), owner: elements as? any KeepsStorageAlive) }) != nil {
            return
        }
        for element in elements { element.writePayload(to: &self) }
    }
}

extension DecoderState {
    /// The packed header at `offset`: element tag, count, offset of the first element.
    /// The count is checked against the bytes left before anything is allocated.
    func packedHeader(at offset: Int, limit: Int) throws(RawError) -> (elementTag: UInt8, count: Int, start: Int) {
        try need(offset, 2, limit)
        let elementTag = byte(at: offset + 1)
        guard let width = Tag.scalarWidth(elementTag) else {
            throw RawError.invalidData("packed array of unknown element tag 0x\(String(elementTag, radix: 16))")
        }
        let (count, start) = try varint(at: offset + 2, limit: limit)
        let available = limit - start
        guard count <= UInt64(available / width) else {
            throw RawError.countOutOfRange(count: count, available: available)
        }
        return (elementTag, Int(count), start)
    }

    /// Decodes a packed or element-by-element array of `E`. `make` builds the result from the
    /// element count and the packed bytes (count * wireWidth of them) with one copy.
    func decodePackable<E: PackableScalar, R: Decodable>(
        _: E.Type, as _: R.Type, at offset: Int, limit: Int,
        make: (_ count: Int, _ source: UnsafeRawPointer, _ byteCount: Int) -> R
    ) throws -> R {
        try need(offset, 1, limit)
        let tag = byte(at: offset)
        if tag == Tag.packed {
            let header = try packedHeader(at: offset, limit: limit)
            if header.elementTag == E.wireTag, ByteWriter.bulkCopies(E.self) {
                let source = base + header.start
                let byteCount = header.count * E.wireWidth
                if E.self == Bool.self {
                    let bytes = UnsafeRawBufferPointer(start: source, count: byteCount)
                    var bad: UInt8 = 0
                    for b in bytes { bad |= b & 0xFE }
                    if bad != 0 { throw RawError.invalidData("a Bool byte is neither 0 nor 1") }
                }
                return make(header.count, source, byteCount)
            }
        } else if tag != Tag.unkeyed {
            throw RawError.mismatch(tag: tag)
        }
        // Another element type, a big-endian host, or an unkeyed container: element by element.
        pendingType = R.self
        pendingOffset = offset
        return try R(from: _Decoder(state: self, offset: offset, limit: limit))
    }
}

extension Array: EncodesDirectly where Element: PackableScalar {
    func encodeDirectly(to state: EncoderState) throws {
        state.core.writer.packed(self)
    }
}

extension Array: DecodesDirectly where Element: PackableScalar {
    static func decodeDirectly(from state: DecoderState, at offset: Int, limit: Int) throws -> [Element] {
        try state.decodePackable(Element.self, as: [Element].self, at: offset, limit: limit) { count, source, byteCount in
            [Element](unsafeUninitializedCapacity: count) { buffer, initialized in
                if count > 0 { UnsafeMutableRawPointer(buffer.baseAddress!).copyMemory(from: source, byteCount: byteCount) }
                initialized = count
            }
        }
    }
}

extension ContiguousArray: EncodesDirectly where Element: PackableScalar {
    func encodeDirectly(to state: EncoderState) throws {
        state.core.writer.packed(self)
    }
}

extension ContiguousArray: DecodesDirectly where Element: PackableScalar {
    static func decodeDirectly(from state: DecoderState, at offset: Int, limit: Int) throws -> ContiguousArray<Element> {
        try state.decodePackable(Element.self, as: ContiguousArray<Element>.self, at: offset, limit: limit) { count, source, byteCount in
            ContiguousArray<Element>(unsafeUninitializedCapacity: count) { buffer, initialized in
                if count > 0 { UnsafeMutableRawPointer(buffer.baseAddress!).copyMemory(from: source, byteCount: byteCount) }
                initialized = count
            }
        }
    }
}

/// `Data` is a packed `[UInt8]` on the wire, so the two decode as each other.
extension Data: EncodesDirectly, DecodesDirectly {
    func encodeDirectly(to state: EncoderState) throws {
        state.core.writer.data(self)
    }

    static func decodeDirectly(from state: DecoderState, at offset: Int, limit: Int) throws -> Data {
        try state.decodePackable(UInt8.self, as: Data.self, at: offset, limit: limit) { _, source, byteCount in
            Data(bytes: source, count: byteCount)
        }
    }
}

/// `Date` is its `timeIntervalSinceReferenceDate` as a Double: the same bytes its own Codable
/// conformance produces here, written without the detour through a container.
extension Date: EncodesDirectly, DecodesDirectly {
    func encodeDirectly(to state: EncoderState) throws {
        state.core.writer.scalar(timeIntervalSinceReferenceDate)
    }

    static func decodeDirectly(from state: DecoderState, at offset: Int, limit: Int) throws -> Date {
        Date(timeIntervalSinceReferenceDate: try state.readScalar(Double.self, at: offset, limit: limit).value)
    }
}

// MARK: - Optionals

/// `nil` is the `null` tag and `.some(x)` is just `x`, except that `.some` around a value that is
/// itself optional gets a `some` tag, so `Int??.some(nil)` survives a round trip.
extension Optional: EncodesDirectly where Wrapped: Encodable {
    func encodeDirectly(to state: EncoderState) throws {
        switch self {
        case .none:
            state.core.writer.byte(Tag.null)
        case .some(let wrapped):
            if Wrapped.self is any OptionalMarker.Type { state.core.writer.byte(Tag.some) }
            try state.encodeValue(wrapped)
        }
    }
}

extension Optional: DecodesDirectly where Wrapped: Decodable {
    static func decodeDirectly(from state: DecoderState, at offset: Int, limit: Int) throws -> Wrapped? {
        try state.need(offset, 1, limit)
        switch state.byte(at: offset) {
        case Tag.null: return nil
        case Tag.some: return try state.decodeValue(Wrapped.self, at: offset + 1, limit: limit)
        default: return try state.decodeValue(Wrapped.self, at: offset, limit: limit)
        }
    }
}
