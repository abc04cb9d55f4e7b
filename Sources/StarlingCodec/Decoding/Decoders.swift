/// The `Decoder` handed to a type's `init(from:)`: the value at `offset`, ending at `limit`.
/// It is also that value's single value container.
struct _Decoder: Decoder, SingleValueDecodingContainer {
    let state: DecoderState
    let offset: Int
    let limit: Int

    var codingPath: [any CodingKey] { state.path }
    var userInfo: [CodingUserInfoKey: Any] { state.userInfo }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        do throws(RawError) {
            let header = try state.openContainer(Tag.keyed, at: offset, limit: limit)
            return KeyedDecodingContainer(KeyedDecoder<Key>(
                state: state, bodyStart: header.start, bodyEnd: header.end, count: header.count,
                depth: state.path.count))
        } catch {
            throw state.describe(error, expected: state.expectedName(at: offset, "a keyed container"),
                                 depth: state.path.count, key: nil)
        }
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        do throws(RawError) {
            return try UnkeyedDecoder(state: state, at: offset, limit: limit, depth: state.path.count)
        } catch {
            throw state.describe(error, expected: state.expectedName(at: offset, "an unkeyed container"),
                                 depth: state.path.count, key: nil)
        }
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer { self }

    // MARK: Single value

    func decodeNil() -> Bool {
        offset < limit && state.byte(at: offset) == Tag.null
    }

    @inline(__always)
    private func scalar<S: BinaryScalar>(_: S.Type) throws -> S {
        do throws(RawError) {
            return try state.readScalar(S.self, at: offset, limit: limit).value
        } catch {
            throw state.describe(error, expected: "\(S.self)", depth: state.path.count, key: nil)
        }
    }

    func decode(_ type: Bool.Type) throws -> Bool { try scalar(type) }
    func decode(_ type: Int.Type) throws -> Int { try scalar(type) }
    func decode(_ type: Int8.Type) throws -> Int8 { try scalar(type) }
    func decode(_ type: Int16.Type) throws -> Int16 { try scalar(type) }
    func decode(_ type: Int32.Type) throws -> Int32 { try scalar(type) }
    func decode(_ type: Int64.Type) throws -> Int64 { try scalar(type) }
    func decode(_ type: Int128.Type) throws -> Int128 { try scalar(type) }
    func decode(_ type: UInt.Type) throws -> UInt { try scalar(type) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try scalar(type) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try scalar(type) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try scalar(type) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try scalar(type) }
    func decode(_ type: UInt128.Type) throws -> UInt128 { try scalar(type) }
    func decode(_ type: Float.Type) throws -> Float { try scalar(type) }
    func decode(_ type: Double.Type) throws -> Double { try scalar(type) }

    func decode(_ type: String.Type) throws -> String {
        do throws(RawError) {
            return try state.readString(at: offset, limit: limit).value
        } catch {
            throw state.describe(error, expected: "String", depth: state.path.count, key: nil)
        }
    }

    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try state.decodeValue(T.self, at: offset, limit: limit)
    }
}

// MARK: - Keyed

struct KeyedDecoder<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let state: DecoderState
    let bodyStart: Int
    let bodyEnd: Int
    let count: Int
    let depth: Int

    var codingPath: [any CodingKey] { state.codingPath(depth: depth) }

    var allKeys: [Key] {
        var keys: [Key] = []
        keys.reserveCapacity(count)
        var position = bodyStart
        do {
            for _ in 0..<count {
                let key = try state.entryKey(at: position, limit: bodyEnd)
                if let codingKey = Key(stringValue: state.keyString(start: key.start, count: key.count)) {
                    keys.append(codingKey)
                }
                position = try state.valueEnd(at: key.start + key.count, limit: bodyEnd)
            }
        } catch {
            return keys  // malformed entries: the decode that follows reports them
        }
        return keys
    }

    /// The value stored under `key`: its offset and end, or nil when there is no such entry.
    /// Tries the entry after the last one decoded first, then an index of all keys.
    @inline(__always)
    private func locate(_ key: some CodingKey, advance: Bool) throws(RawError) -> (start: Int, end: Int)? {
        let next = state.cursorNext(depth: depth, bodyStart: bodyStart)
        let name = key.stringValue
        if next < bodyEnd {
            let entry = try state.entryKey(at: next, limit: bodyEnd)
            if state.keyEquals(name, at: entry.start, count: entry.count) {
                let start = entry.start + entry.count
                let end = try state.valueEnd(at: start, limit: bodyEnd)
                if advance { state.advanceCursor(depth: depth, to: end) }
                return (start, end)
            }
        }
        return try locateSlow(name, advance: advance)
    }

    private func locateSlow(_ name: String, advance: Bool) throws(RawError) -> (start: Int, end: Int)? {
        let index = try state.keyIndex(depth: depth, bodyStart: bodyStart, bodyEnd: bodyEnd, count: count)
        guard let start = index[name] else { return nil }
        let end = try state.valueEnd(at: start, limit: bodyEnd)
        if advance { state.advanceCursor(depth: depth, to: end) }
        return (start, end)
    }

    private func require(_ key: Key, expected: @autoclosure () -> String) throws -> (start: Int, end: Int) {
        do throws(RawError) {
            guard let found = try locate(key, advance: true) else { throw RawError.missingKey }
            return found
        } catch {
            throw state.describe(error, expected: expected(), depth: depth, key: key)
        }
    }

    func contains(_ key: Key) -> Bool {
        (try? locate(key, advance: false)) != nil
    }

    func decodeNil(forKey key: Key) throws -> Bool {
        do throws(RawError) {
            guard let found = try locate(key, advance: false) else { throw RawError.missingKey }
            guard state.byte(at: found.start) == Tag.null else { return false }
            state.advanceCursor(depth: depth, to: found.end)
            return true
        } catch {
            throw state.describe(error, expected: "nil", depth: depth, key: key)
        }
    }

    @inline(__always)
    private func scalar<S: BinaryScalar>(_: S.Type, _ key: Key) throws -> S {
        do throws(RawError) {
            guard let found = try locate(key, advance: true) else { throw RawError.missingKey }
            return try state.readScalar(S.self, at: found.start, limit: found.end).value
        } catch {
            throw state.describe(error, expected: "\(S.self)", depth: depth, key: key)
        }
    }

    @inline(__always)
    private func scalarIfPresent<S: BinaryScalar>(_: S.Type, _ key: Key) throws -> S? {
        do throws(RawError) {
            guard let found = try locate(key, advance: true) else { return nil }
            if state.byte(at: found.start) == Tag.null { return nil }
            return try state.readScalar(S.self, at: found.start, limit: found.end).value
        } catch {
            throw state.describe(error, expected: "\(S.self)", depth: depth, key: key)
        }
    }

    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try scalar(type, key) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try scalar(type, key) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try scalar(type, key) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try scalar(type, key) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try scalar(type, key) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try scalar(type, key) }
    func decode(_ type: Int128.Type, forKey key: Key) throws -> Int128 { try scalar(type, key) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try scalar(type, key) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try scalar(type, key) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try scalar(type, key) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try scalar(type, key) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try scalar(type, key) }
    func decode(_ type: UInt128.Type, forKey key: Key) throws -> UInt128 { try scalar(type, key) }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try scalar(type, key) }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try scalar(type, key) }

    func decodeIfPresent(_ type: Bool.Type, forKey key: Key) throws -> Bool? { try scalarIfPresent(type, key) }
    func decodeIfPresent(_ type: Int.Type, forKey key: Key) throws -> Int? { try scalarIfPresent(type, key) }
    func decodeIfPresent(_ type: Int8.Type, forKey key: Key) throws -> Int8? { try scalarIfPresent(type, key) }
    func decodeIfPresent(_ type: Int16.Type, forKey key: Key) throws -> Int16? { try scalarIfPresent(type, key) }
    func decodeIfPresent(_ type: Int32.Type, forKey key: Key) throws -> Int32? { try scalarIfPresent(type, key) }
    func decodeIfPresent(_ type: Int64.Type, forKey key: Key) throws -> Int64? { try scalarIfPresent(type, key) }
    func decodeIfPresent(_ type: Int128.Type, forKey key: Key) throws -> Int128? { try scalarIfPresent(type, key) }
    func decodeIfPresent(_ type: UInt.Type, forKey key: Key) throws -> UInt? { try scalarIfPresent(type, key) }
    func decodeIfPresent(_ type: UInt8.Type, forKey key: Key) throws -> UInt8? { try scalarIfPresent(type, key) }
    func decodeIfPresent(_ type: UInt16.Type, forKey key: Key) throws -> UInt16? { try scalarIfPresent(type, key) }
    func decodeIfPresent(_ type: UInt32.Type, forKey key: Key) throws -> UInt32? { try scalarIfPresent(type, key) }
    func decodeIfPresent(_ type: UInt64.Type, forKey key: Key) throws -> UInt64? { try scalarIfPresent(type, key) }
    func decodeIfPresent(_ type: UInt128.Type, forKey key: Key) throws -> UInt128? { try scalarIfPresent(type, key) }
    func decodeIfPresent(_ type: Float.Type, forKey key: Key) throws -> Float? { try scalarIfPresent(type, key) }
    func decodeIfPresent(_ type: Double.Type, forKey key: Key) throws -> Double? { try scalarIfPresent(type, key) }

    func decode(_ type: String.Type, forKey key: Key) throws -> String {
        do throws(RawError) {
            guard let found = try locate(key, advance: true) else { throw RawError.missingKey }
            return try state.readString(at: found.start, limit: found.end).value
        } catch {
            throw state.describe(error, expected: "String", depth: depth, key: key)
        }
    }

    func decodeIfPresent(_ type: String.Type, forKey key: Key) throws -> String? {
        do throws(RawError) {
            guard let found = try locate(key, advance: true) else { return nil }
            if state.byte(at: found.start) == Tag.null { return nil }
            return try state.readString(at: found.start, limit: found.end).value
        } catch {
            throw state.describe(error, expected: "String", depth: depth, key: key)
        }
    }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        let found = try require(key, expected: "\(T.self)")
        return try state.decodeValue(T.self, at: found.start, limit: found.end, key: key, depth: depth)
    }

    /// A missing key or a `nil` gives nil; for `T` itself optional, a present `nil` is `.some(nil)`.
    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        let found: (start: Int, end: Int)
        do throws(RawError) {
            guard let located = try locate(key, advance: true) else { return nil }
            found = located
        } catch {
            throw state.describe(error, expected: "\(T.self)", depth: depth, key: key)
        }
        if state.byte(at: found.start) == Tag.null, !(T.self is any OptionalMarker.Type) { return nil }
        return try state.decodeValue(T.self, at: found.start, limit: found.end, key: key, depth: depth)
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type,
                                               forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        let found = try require(key, expected: "a keyed container")
        do throws(RawError) {
            let header = try state.openContainer(Tag.keyed, at: found.start, limit: found.end)
            state.setPath(depth: depth, key)
            return KeyedDecodingContainer(KeyedDecoder<NestedKey>(
                state: state, bodyStart: header.start, bodyEnd: header.end, count: header.count, depth: depth + 1))
        } catch {
            throw state.describe(error, expected: "a keyed container", depth: depth, key: key)
        }
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        let found = try require(key, expected: "an unkeyed container")
        do throws(RawError) {
            let container = try UnkeyedDecoder(state: state, at: found.start, limit: found.end, depth: depth + 1)
            state.setPath(depth: depth, key)
            return container
        } catch {
            throw state.describe(error, expected: "an unkeyed container", depth: depth, key: key)
        }
    }

    func superDecoder() throws -> any Decoder {
        try superDecoder(StringKey.super)
    }

    func superDecoder(forKey key: Key) throws -> any Decoder {
        try superDecoder(key)
    }

    private func superDecoder(_ key: some CodingKey) throws -> any Decoder {
        do throws(RawError) {
            guard let found = try locate(key, advance: true) else { throw RawError.missingKey }
            state.setPath(depth: depth, key)
            return _Decoder(state: state, offset: found.start, limit: found.end)
        } catch {
            throw state.describe(error, expected: "a value", depth: depth, key: key)
        }
    }
}

// MARK: - Unkeyed

/// Reads an unkeyed container, or a packed array element by element.
struct UnkeyedDecoder: UnkeyedDecodingContainer {
    let state: DecoderState
    let bodyEnd: Int
    let total: Int
    /// The element tag of a packed array; 0 (never a scalar tag) for an unkeyed container.
    let packedTag: UInt8
    let packedWidth: Int
    let depth: Int
    private var offset: Int
    private(set) var currentIndex = 0

    init(state: DecoderState, at offset: Int, limit: Int, depth: Int) throws(RawError) {
        self.state = state
        self.depth = depth
        try state.need(offset, 1, limit)
        if state.byte(at: offset) == Tag.packed {
            let header = try state.packedHeader(at: offset, limit: limit)
            packedTag = header.elementTag
            packedWidth = Tag.scalarWidth(header.elementTag)!
            total = header.count
            self.offset = header.start
            bodyEnd = header.start + header.count * packedWidth
        } else {
            let header = try state.openContainer(Tag.unkeyed, at: offset, limit: limit)
            packedTag = 0
            packedWidth = 0
            total = header.count
            self.offset = header.start
            bodyEnd = header.end
        }
    }

    var codingPath: [any CodingKey] { state.codingPath(depth: depth) }
    var count: Int? { total }
    var isAtEnd: Bool { currentIndex >= total }

    private func fail(_ error: RawError, _ expected: @autoclosure () -> String) -> CodecError {
        state.describe(error, expected: expected(), depth: depth, key: IndexKey(currentIndex))
    }

    private var packedElementName: String { "an element of a packed array of \(Tag.name(packedTag))" }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd else { throw fail(.exhausted, "nil") }
        guard packedTag == 0, state.byte(at: offset) == Tag.null else { return false }
        offset += 1
        currentIndex += 1
        return true
    }

    @inline(__always)
    private mutating func scalar<S: BinaryScalar>(_: S.Type) throws -> S {
        do throws(RawError) {
            guard currentIndex < total else { throw RawError.exhausted }
            let result = packedTag != 0
                ? try state.scalarPayload(S.self, tag: packedTag, at: offset, limit: bodyEnd)
                : try state.readScalar(S.self, at: offset, limit: bodyEnd)
            offset = result.end
            currentIndex += 1
            return result.value
        } catch {
            throw fail(error, "\(S.self)")
        }
    }

    mutating func decode(_ type: Bool.Type) throws -> Bool { try scalar(type) }
    mutating func decode(_ type: Int.Type) throws -> Int { try scalar(type) }
    mutating func decode(_ type: Int8.Type) throws -> Int8 { try scalar(type) }
    mutating func decode(_ type: Int16.Type) throws -> Int16 { try scalar(type) }
    mutating func decode(_ type: Int32.Type) throws -> Int32 { try scalar(type) }
    mutating func decode(_ type: Int64.Type) throws -> Int64 { try scalar(type) }
    mutating func decode(_ type: Int128.Type) throws -> Int128 { try scalar(type) }
    mutating func decode(_ type: UInt.Type) throws -> UInt { try scalar(type) }
    mutating func decode(_ type: UInt8.Type) throws -> UInt8 { try scalar(type) }
    mutating func decode(_ type: UInt16.Type) throws -> UInt16 { try scalar(type) }
    mutating func decode(_ type: UInt32.Type) throws -> UInt32 { try scalar(type) }
    mutating func decode(_ type: UInt64.Type) throws -> UInt64 { try scalar(type) }
    mutating func decode(_ type: UInt128.Type) throws -> UInt128 { try scalar(type) }
    mutating func decode(_ type: Float.Type) throws -> Float { try scalar(type) }
    mutating func decode(_ type: Double.Type) throws -> Double { try scalar(type) }

    mutating func decode(_ type: String.Type) throws -> String {
        do throws(RawError) {
            guard currentIndex < total else { throw RawError.exhausted }
            guard packedTag == 0 else { throw RawError.mismatch(found: packedElementName) }
            let result = try state.readString(at: offset, limit: bodyEnd)
            offset = result.end
            currentIndex += 1
            return result.value
        } catch {
            throw fail(error, "String")
        }
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        if packedTag != 0, let scalarType = T.self as? any BinaryScalar.Type {
            return try packedElement(scalarType, as: T.self)
        }
        let end: Int
        do throws(RawError) {
            guard currentIndex < total else { throw RawError.exhausted }
            guard packedTag == 0 else { throw RawError.mismatch(found: packedElementName) }
            end = try state.valueEnd(at: offset, limit: bodyEnd)
        } catch {
            throw fail(error, "\(T.self)")
        }
        let value = try state.decodeValue(T.self, at: offset, limit: end, key: IndexKey(currentIndex), depth: depth)
        offset = end
        currentIndex += 1
        return value
    }

    private mutating func packedElement<S: BinaryScalar, T>(_: S.Type, as _: T.Type) throws -> T {
        try scalar(S.self) as! T
    }

    /// The next element's range, advancing past it; for nested containers and super decoders.
    private mutating func nextElement(_ expected: @autoclosure () -> String) throws -> (start: Int, end: Int) {
        do throws(RawError) {
            guard currentIndex < total else { throw RawError.exhausted }
            guard packedTag == 0 else { throw RawError.mismatch(found: packedElementName) }
            let start = offset
            let end = try state.valueEnd(at: offset, limit: bodyEnd)
            state.setPath(depth: depth, IndexKey(currentIndex))
            offset = end
            currentIndex += 1
            return (start, end)
        } catch {
            throw fail(error, expected())
        }
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        let element = try nextElement("a keyed container")
        do throws(RawError) {
            let header = try state.openContainer(Tag.keyed, at: element.start, limit: element.end)
            return KeyedDecodingContainer(KeyedDecoder<NestedKey>(
                state: state, bodyStart: header.start, bodyEnd: header.end, count: header.count, depth: depth + 1))
        } catch {
            throw state.describe(error, expected: "a keyed container", depth: depth + 1, key: nil)
        }
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        let element = try nextElement("an unkeyed container")
        do throws(RawError) {
            return try UnkeyedDecoder(state: state, at: element.start, limit: element.end, depth: depth + 1)
        } catch {
            throw state.describe(error, expected: "an unkeyed container", depth: depth + 1, key: nil)
        }
    }

    mutating func superDecoder() throws -> any Decoder {
        let element = try nextElement("a value")
        return _Decoder(state: state, offset: element.start, limit: element.end)
    }
}
