#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Where a keyed container at one nesting depth expects its next key, and (once keys were
/// asked for out of order) an index of all its keys.
struct KeyCursor {
    var bodyStart = -1
    var next = 0
    var index: [String: Int]?
}

/// Everything one decoding shares: the input bytes, the coding path, keyed-container cursors.
///
/// Every read is bounds-checked against an explicit limit (the end of the enclosing value), and
/// every count is checked against the bytes left before anything is allocated. Reads use
/// `loadUnaligned`: the input may start at any address.
///
/// One state lives for one `decode` call on one thread, and no method mutating it calls out to
/// other code during the mutation, so its mutable properties skip dynamic exclusivity checks.
final class DecoderState {
    let base: UnsafeRawPointer
    let end: Int
    let options: CoderOptions
    @exclusivity(unchecked) var path: [any CodingKey] = []
    @exclusivity(unchecked) var nesting = 0
    @exclusivity(unchecked) var cursors: [KeyCursor] = []
    /// The type whose `init(from:)` is about to ask for a container at `pendingOffset`: named in
    /// "expected ..., found ..." errors.
    @exclusivity(unchecked) var pendingType: Any.Type?
    @exclusivity(unchecked) var pendingOffset = -1
    /// The last two types found not to be `DecodesDirectly`: arrays of structs skip the cast.
    @exclusivity(unchecked) var knownComposite: (ObjectIdentifier?, ObjectIdentifier?) = (nil, nil)

    init(_ input: UnsafeRawBufferPointer, options: CoderOptions) {
        // An empty input has no address; every read checks the length first, so a placeholder
        // that is never dereferenced will do.
        base = input.baseAddress.map { UnsafeRawPointer($0) } ?? UnsafeRawPointer(bitPattern: 0x10)!
        end = input.count
        self.options = options
    }

    var userInfo: [CodingUserInfoKey: Any] { options.userInfo }

    // MARK: Reading

    @inline(__always)
    func byte(at offset: Int) -> UInt8 {
        base.load(fromByteOffset: offset, as: UInt8.self)
    }

    /// Throws unless `count` bytes are available at `offset` before `limit`.
    @inline(__always)
    func need(_ offset: Int, _ count: Int, _ limit: Int) throws(RawError) {
        guard count <= limit - offset else {
            throw RawError.truncated(offset: offset, needed: UInt64(count), available: Swift.max(0, limit - offset))
        }
    }

    @inline(__always)
    func fixed<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
        T(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: T.self))
    }

    /// An unsigned LEB128 varint at `offset`: its value and the offset after it.
    @inline(__always)
    func varint(at offset: Int, limit: Int) throws(RawError) -> (UInt64, Int) {
        try need(offset, 1, limit)
        let first = byte(at: offset)
        if first < 0x80 { return (UInt64(first), offset + 1) }
        return try varintSlow(at: offset, limit: limit)
    }

    func varintSlow(at offset: Int, limit: Int) throws(RawError) -> (UInt64, Int) {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        var position = offset
        while true {
            try need(position, 1, limit)
            let b = byte(at: position)
            position += 1
            if shift == 63, b > 1 { throw RawError.invalidData("varint overflows 64 bits") }
            result |= UInt64(b & 0x7F) << shift
            if b < 0x80 { return (result, position) }
            shift += 7
            if shift > 63 { throw RawError.invalidData("varint longer than 10 bytes") }
        }
    }

    /// A byte length read from the input, checked against the bytes left.
    @inline(__always)
    func length(_ value: UInt64, at offset: Int, limit: Int) throws(RawError) -> Int {
        guard value <= UInt64(limit - offset) else {
            throw RawError.truncated(offset: offset, needed: value, available: limit - offset)
        }
        return Int(value)
    }

    /// The offset just past the value at `offset`, in O(1): containers carry their length.
    func valueEnd(at offset: Int, limit: Int) throws(RawError) -> Int {
        var position = offset
        while true {
            try need(position, 1, limit)
            let tag = byte(at: position)
            switch tag {
            case Tag.some:
                position += 1
            case Tag.null:
                return position + 1
            case Tag.string:
                let (count, start) = try varint(at: position + 1, limit: limit)
                return start + (try length(count, at: start, limit: limit))
            case Tag.keyed, Tag.unkeyed:
                try need(position + 1, Tag.containerHeaderSize - 1, limit)
                let body = fixed(UInt64.self, at: position + 5)
                let start = position + Tag.containerHeaderSize
                return start + (try length(body, at: start, limit: limit))
            case Tag.packed:
                let header = try packedHeader(at: position, limit: limit)
                return header.start + header.count * Tag.scalarWidth(header.elementTag)!
            default:
                guard let width = Tag.scalarWidth(tag) else {
                    throw RawError.invalidData("unknown tag 0x\(String(tag, radix: 16)) at offset \(position)")
                }
                try need(position + 1, width, limit)
                return position + 1 + width
            }
        }
    }

    /// Reads a scalar written with any compatible tag; returns it and the offset after it.
    @inline(__always)
    func readScalar<S: BinaryScalar>(_: S.Type, at offset: Int, limit: Int) throws(RawError) -> (value: S, end: Int) {
        try need(offset, 1, limit)
        let tag = byte(at: offset)
        guard tag == S.wireTag || Tag.scalarWidth(tag) != nil else { throw mismatch(at: offset, limit: limit) }
        return try scalarPayload(S.self, tag: tag, at: offset + 1, limit: limit)
    }

    /// "Found ..." for the value at `offset`, naming a packed array's element type and count.
    func mismatch(at offset: Int, limit: Int) -> RawError {
        let tag = byte(at: offset)
        if tag == Tag.packed, let header = try? packedHeader(at: offset, limit: limit) {
            return .mismatch(found: "a packed array of \(Tag.name(header.elementTag)) (\(header.count) elements)")
        }
        return .mismatch(tag: tag)
    }

    /// Reads a scalar payload at `offset` written with `tag` (a tagged value, or an element of a
    /// packed array); returns it and the offset after it.
    @inline(__always)
    func scalarPayload<S: BinaryScalar>(_: S.Type, tag: UInt8, at offset: Int, limit: Int) throws(RawError) -> (value: S, end: Int) {
        if tag == S.wireTag {
            try need(offset, S.wireWidth, limit)
            guard let value = S.readPayload(base + offset) else {
                throw RawError.invalidData("invalid \(S.self) bytes at offset \(offset)")
            }
            return (value, offset + S.wireWidth)
        }
        guard let width = Tag.scalarWidth(tag) else { throw RawError.mismatch(tag: tag) }
        try need(offset, width, limit)
        return (try S.convert(tag: tag, payload: base + offset), offset + width)
    }

    func readString(at offset: Int, limit: Int) throws(RawError) -> (value: String, end: Int) {
        try need(offset, 1, limit)
        let tag = byte(at: offset)
        guard tag == Tag.string else { throw mismatch(at: offset, limit: limit) }
        let (count, start) = try varint(at: offset + 1, limit: limit)
        let n = try length(count, at: start, limit: limit)
        let utf8 = UnsafeBufferPointer(start: (base + start).assumingMemoryBound(to: UInt8.self), count: n)
        // ASCII (most keys, names and labels) is valid UTF-8: skip the generic validator.
        var high: UInt8 = 0
        for byte in utf8 { high |= byte }
        if high < 0x80 { return (String(decoding: utf8, as: UTF8.self), start + n) }
        guard let string = String(validating: utf8, as: UTF8.self) else {
            throw RawError.invalidUTF8(offset: start)
        }
        return (string, start + n)
    }

    /// The header of a container of `tag` at `offset`: element count and body range. The count
    /// is checked against the body length (every element takes at least one byte, every entry two).
    func openContainer(_ tag: UInt8, at offset: Int, limit: Int) throws(RawError) -> (count: Int, start: Int, end: Int) {
        try need(offset, 1, limit)
        let found = byte(at: offset)
        guard found == tag else { throw mismatch(at: offset, limit: limit) }
        try need(offset + 1, Tag.containerHeaderSize - 1, limit)
        let count = fixed(UInt32.self, at: offset + 1)
        let start = offset + Tag.containerHeaderSize
        let body = try length(fixed(UInt64.self, at: offset + 5), at: start, limit: limit)
        let minimum = tag == Tag.keyed ? 2 : 1
        guard UInt64(count) * UInt64(minimum) <= UInt64(body) else {
            throw RawError.countOutOfRange(count: UInt64(count), available: body)
        }
        return (Int(count), start, start + body)
    }

    /// Compares the key bytes at `offset` with `key`.
    @inline(__always)
    func keyEquals(_ key: String, at offset: Int, count: Int) -> Bool {
        var key = key
        return key.withUTF8 { utf8 in
            guard utf8.count == count else { return false }
            if count > 16 { return memcmp(utf8.baseAddress!, base + offset, count) == 0 }
            for i in 0..<count where utf8[i] != base.load(fromByteOffset: offset + i, as: UInt8.self) {
                return false
            }
            return true
        }
    }

    /// The key of the entry at `offset`: its bytes' range and the value's offset.
    @inline(__always)
    func entryKey(at offset: Int, limit: Int) throws(RawError) -> (start: Int, count: Int) {
        let (count, start) = try varint(at: offset, limit: limit)
        return (start, try length(count, at: start, limit: limit))
    }

    func keyString(start: Int, count: Int) -> String {
        String(decoding: UnsafeRawBufferPointer(start: base + start, count: count), as: UTF8.self)
    }

    // MARK: Keyed-container cursors

    /// The offset of the entry a keyed container at `depth` expects next (entries are usually
    /// decoded in the order they were encoded, so that guess is almost always right).
    @inline(__always)
    func cursorNext(depth: Int, bodyStart: Int) -> Int {
        if depth < cursors.count, cursors[depth].bodyStart == bodyStart { return cursors[depth].next }
        return resetCursor(depth: depth, bodyStart: bodyStart)
    }

    func resetCursor(depth: Int, bodyStart: Int) -> Int {
        if cursors.capacity == 0 { cursors.reserveCapacity(8) }
        while cursors.count <= depth { cursors.append(KeyCursor()) }
        cursors[depth] = KeyCursor(bodyStart: bodyStart, next: bodyStart, index: nil)
        return bodyStart
    }

    @inline(__always)
    func advanceCursor(depth: Int, to next: Int) {
        cursors[depth].next = next
    }

    /// All keys of the container at `depth` with their value offsets (first entry wins), built
    /// once per container when a key is not where the cursor expects it.
    func keyIndex(depth: Int, bodyStart: Int, bodyEnd: Int, count: Int) throws(RawError) -> [String: Int] {
        _ = cursorNext(depth: depth, bodyStart: bodyStart)
        if let index = cursors[depth].index { return index }
        var index = [String: Int](minimumCapacity: count)
        var position = bodyStart
        for _ in 0..<count {
            let key = try entryKey(at: position, limit: bodyEnd)
            let value = key.start + key.count
            let name = keyString(start: key.start, count: key.count)
            if index[name] == nil { index[name] = value }
            position = try valueEnd(at: value, limit: bodyEnd)
        }
        guard position == bodyEnd else {
            throw RawError.invalidData("keyed container of \(count) entries has \(bodyEnd - position) bytes left over")
        }
        cursors[depth].index = index
        return index
    }

    // MARK: Values

    /// Decodes a `T` from the value at `offset` (which ends at `limit`). `key` is the value's key
    /// or index in its container at `depth`: it is on the coding path while a composite value
    /// decodes itself, and names the place in errors.
    @inline(__always)
    func decodeValue<T: Decodable, K: CodingKey>(_ type: T.Type, at offset: Int, limit: Int, key: K, depth: Int) throws -> T {
        do {
            if let hot = try decodeHot(T.self, at: offset, limit: limit) { return hot }
        } catch let error as RawError {
            throw describe(error, expected: "\(T.self)", depth: depth, key: key)
        }
        setPath(depth: depth, key)
        let value = try decodeSlow(T.self, at: offset, limit: limit)
        path.removeLast()
        return value
    }

    /// Decodes a value with no key of its own (the top level, an optional's payload).
    func decodeValue<T: Decodable>(_ type: T.Type, at offset: Int, limit: Int) throws -> T {
        do {
            if let hot = try decodeHot(T.self, at: offset, limit: limit) { return hot }
        } catch let error as RawError {
            throw describe(error, expected: "\(T.self)", depth: path.count, key: nil)
        }
        return try decodeSlow(T.self, at: offset, limit: limit)
    }

    func decodeSlow<T: Decodable>(_ type: T.Type, at offset: Int, limit: Int) throws -> T {
        let type = ObjectIdentifier(T.self)
        if type != knownComposite.0, type != knownComposite.1 {
            if let direct = T.self as? any DecodesDirectly.Type {
                do {
                    return try decodeDirectly(direct, as: T.self, at: offset, limit: limit)
                } catch let error as RawError {
                    throw describe(error, expected: "\(T.self)", depth: path.count, key: nil)
                }
            }
            knownComposite = (type, knownComposite.0)
        }
        guard nesting < options.maxDepth else {
            throw CodecError.nestingTooDeep(limit: options.maxDepth, path: CodingPath.render(path))
        }
        nesting += 1
        defer { nesting -= 1 }
        pendingType = T.self
        pendingOffset = offset
        return try T(from: _Decoder(state: self, offset: offset, limit: limit))
    }

    @inline(__always)
    private func decodeDirectly<D: DecodesDirectly, T>(_: D.Type, as _: T.Type, at offset: Int, limit: Int) throws -> T {
        unsafeBitCast(try D.decodeDirectly(from: self, at: offset, limit: limit), to: T.self)
    }

    /// Sets the path to the first `depth` keys plus `key`.
    @inline(__always)
    func setPath(depth: Int, _ key: some CodingKey) {
        if path.count > depth { path.removeLast(path.count - depth) }
        if path.capacity == 0 { path.reserveCapacity(8) }
        path.append(key)
    }

    func codingPath(depth: Int) -> [any CodingKey] {
        Array(path.prefix(depth))
    }

    /// The name of what the value at `offset` is being decoded as, for errors.
    func expectedName(at offset: Int, _ fallback: String) -> String {
        if offset == pendingOffset, let pendingType { return "\(pendingType)" }
        return fallback
    }

    /// Turns a read failure into a ``CodecError`` naming the path and what was expected.
    func describe(_ error: RawError, expected: @autoclosure () -> String, depth: Int,
                  key: @autoclosure () -> (any CodingKey)?) -> CodecError {
        var keys = Array(path.prefix(depth))
        let key = key()
        if let key { keys.append(key) }
        let where_ = CodingPath.render(keys)
        switch error {
        case let .truncated(offset, needed, available):
            return .truncated(path: where_, offset: offset, needed: needed, available: available)
        case let .mismatch(found):
            return .typeMismatch(expected: expected(), found: found, path: where_)
        case .missingKey:
            return .keyNotFound(key: key?.stringValue ?? "", path: CodingPath.render(path.prefix(depth)))
        case .exhausted:
            return .valueNotFound(expected: expected(), path: where_)
        case let .invalidUTF8(offset):
            return .invalidUTF8(path: where_, offset: offset)
        case let .countOutOfRange(count, available):
            return .countOutOfRange(count: count, path: where_, available: available)
        case let .outOfRange(value):
            return .numberOutOfRange(value: value, expected: expected(), path: where_)
        case let .invalidData(detail):
            return .invalidData(detail, path: where_)
        }
    }
}

// MARK: - Top level

extension DecoderState {
    static func decode<T: Decodable>(_ type: T.Type, from input: UnsafeRawBufferPointer, options: CoderOptions) throws -> T {
        let state = DecoderState(input, options: options)
        do {
            let valueEnd: Int
            do {
                valueEnd = try state.valueEnd(at: 0, limit: state.end)
            } catch {
                throw state.describe(error, expected: "\(T.self)", depth: 0, key: nil)
            }
            let value = try state.decodeValue(T.self, at: 0, limit: valueEnd)
            guard valueEnd == state.end else {
                throw CodecError.trailingBytes(count: state.end - valueEnd, offset: valueEnd)
            }
            return value
        } catch {
            throw CodingPath.convert(error)
        }
    }
}
