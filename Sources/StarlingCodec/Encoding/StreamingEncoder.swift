/// The `Encoder` handed to a value's `encode(to:)`: a value slot in the output.
struct _Encoder: Encoder {
    let state: EncoderState
    let frame: Int

    var codingPath: [any CodingKey] { state.basePath + state.path }
    var userInfo: [CodingUserInfoKey: Any] { state.userInfo }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        let id = state.openContainer(frame, kind: Tag.keyed)
        return KeyedEncodingContainer(KeyedEncoder<Key>(state: state, frame: id, depth: state.path.count))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        let id = state.openContainer(frame, kind: Tag.unkeyed)
        return UnkeyedEncoder(state: state, frame: id, depth: state.path.count)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        SingleValueEncoder(state: state, frame: frame)
    }
}

struct KeyedEncoder<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let state: EncoderState
    let frame: Int
    let depth: Int

    var codingPath: [any CodingKey] { state.codingPath(depth: depth) }

    @inline(__always)
    private func scalar<S: BinaryScalar>(_ value: S, _ key: Key) throws {
        guard state.core.keyedScalar(frame, key.stringValue, value) else { try state.cannotWriteInPlace() }
    }

    mutating func encodeNil(forKey key: Key) throws {
        guard state.core.keyedNil(frame, key.stringValue) else { try state.cannotWriteInPlace() }
    }

    mutating func encode(_ value: Bool, forKey key: Key) throws { try scalar(value, key) }
    mutating func encode(_ value: Int, forKey key: Key) throws { try scalar(value, key) }
    mutating func encode(_ value: Int8, forKey key: Key) throws { try scalar(value, key) }
    mutating func encode(_ value: Int16, forKey key: Key) throws { try scalar(value, key) }
    mutating func encode(_ value: Int32, forKey key: Key) throws { try scalar(value, key) }
    mutating func encode(_ value: Int64, forKey key: Key) throws { try scalar(value, key) }
    mutating func encode(_ value: Int128, forKey key: Key) throws { try scalar(value, key) }
    mutating func encode(_ value: UInt, forKey key: Key) throws { try scalar(value, key) }
    mutating func encode(_ value: UInt8, forKey key: Key) throws { try scalar(value, key) }
    mutating func encode(_ value: UInt16, forKey key: Key) throws { try scalar(value, key) }
    mutating func encode(_ value: UInt32, forKey key: Key) throws { try scalar(value, key) }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { try scalar(value, key) }
    mutating func encode(_ value: UInt128, forKey key: Key) throws { try scalar(value, key) }
    mutating func encode(_ value: Float, forKey key: Key) throws { try scalar(value, key) }
    mutating func encode(_ value: Double, forKey key: Key) throws { try scalar(value, key) }

    mutating func encode(_ value: String, forKey key: Key) throws {
        guard state.core.keyedString(frame, key.stringValue, value) else { try state.cannotWriteInPlace() }
    }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
        guard state.core.beginKeyed(frame, key.stringValue) else { try state.cannotWriteInPlace() }
        try state.encodeValue(value, key: key, depth: depth)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type,
                                                        forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        let id = state.nestedContainer(frame, key: key, elementIndex: 0, depth: depth, kind: Tag.keyed)
        return KeyedEncodingContainer(KeyedEncoder<NestedKey>(state: state, frame: id, depth: depth + 1))
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        let id = state.nestedContainer(frame, key: key, elementIndex: 0, depth: depth, kind: Tag.unkeyed)
        return UnkeyedEncoder(state: state, frame: id, depth: depth + 1)
    }

    mutating func superEncoder() -> any Encoder {
        state.superEncoder(frame, key: StringKey.super, elementIndex: 0, depth: depth)
    }

    mutating func superEncoder(forKey key: Key) -> any Encoder {
        state.superEncoder(frame, key: key, elementIndex: 0, depth: depth)
    }
}

struct UnkeyedEncoder: UnkeyedEncodingContainer {
    let state: EncoderState
    let frame: Int
    let depth: Int
    private(set) var count = 0

    var codingPath: [any CodingKey] { state.codingPath(depth: depth) }

    @inline(__always)
    private mutating func scalar<S: BinaryScalar>(_ value: S) throws {
        guard state.core.elementScalar(frame, value) else { try state.cannotWriteInPlace() }
        count += 1
    }

    mutating func encodeNil() throws {
        guard state.core.elementNil(frame) else { try state.cannotWriteInPlace() }
        count += 1
    }

    mutating func encode(_ value: Bool) throws { try scalar(value) }
    mutating func encode(_ value: Int) throws { try scalar(value) }
    mutating func encode(_ value: Int8) throws { try scalar(value) }
    mutating func encode(_ value: Int16) throws { try scalar(value) }
    mutating func encode(_ value: Int32) throws { try scalar(value) }
    mutating func encode(_ value: Int64) throws { try scalar(value) }
    mutating func encode(_ value: Int128) throws { try scalar(value) }
    mutating func encode(_ value: UInt) throws { try scalar(value) }
    mutating func encode(_ value: UInt8) throws { try scalar(value) }
    mutating func encode(_ value: UInt16) throws { try scalar(value) }
    mutating func encode(_ value: UInt32) throws { try scalar(value) }
    mutating func encode(_ value: UInt64) throws { try scalar(value) }
    mutating func encode(_ value: UInt128) throws { try scalar(value) }
    mutating func encode(_ value: Float) throws { try scalar(value) }
    mutating func encode(_ value: Double) throws { try scalar(value) }

    mutating func encode(_ value: String) throws {
        guard state.core.elementString(frame, value) else { try state.cannotWriteInPlace() }
        count += 1
    }

    mutating func encode<T: Encodable>(_ value: T) throws {
        guard state.core.beginUnkeyed(frame) else { try state.cannotWriteInPlace() }
        count += 1
        try state.encodeValue(value, key: IndexKey(count - 1), depth: depth)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        let id = state.nestedContainer(frame, key: nil, elementIndex: count, depth: depth, kind: Tag.keyed)
        count += 1
        return KeyedEncodingContainer(KeyedEncoder<NestedKey>(state: state, frame: id, depth: depth + 1))
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let id = state.nestedContainer(frame, key: nil, elementIndex: count, depth: depth, kind: Tag.unkeyed)
        count += 1
        return UnkeyedEncoder(state: state, frame: id, depth: depth + 1)
    }

    mutating func superEncoder() -> any Encoder {
        let encoder = state.superEncoder(frame, key: nil, elementIndex: count, depth: depth)
        count += 1
        return encoder
    }
}

/// The single value container of a value slot: the value is written in the slot's place.
struct SingleValueEncoder: SingleValueEncodingContainer {
    let state: EncoderState
    let frame: Int

    var codingPath: [any CodingKey] { state.basePath + state.path }

    /// Claims the slot, or throws: written twice, or (closed) redo with tree encoding.
    @inline(__always)
    private func claim() throws {
        switch state.core.fillSlot(frame) {
        case .open: return
        case .used: throw state.singleValueUsedTwice()
        case .closed: try state.cannotWriteInPlace()
        }
    }

    @inline(__always)
    private func scalar<S: BinaryScalar>(_ value: S) throws {
        try claim()
        state.core.writer.scalar(value)
    }

    mutating func encodeNil() throws {
        try claim()
        state.core.writer.byte(Tag.null)
    }

    mutating func encode(_ value: Bool) throws { try scalar(value) }
    mutating func encode(_ value: Int) throws { try scalar(value) }
    mutating func encode(_ value: Int8) throws { try scalar(value) }
    mutating func encode(_ value: Int16) throws { try scalar(value) }
    mutating func encode(_ value: Int32) throws { try scalar(value) }
    mutating func encode(_ value: Int64) throws { try scalar(value) }
    mutating func encode(_ value: Int128) throws { try scalar(value) }
    mutating func encode(_ value: UInt) throws { try scalar(value) }
    mutating func encode(_ value: UInt8) throws { try scalar(value) }
    mutating func encode(_ value: UInt16) throws { try scalar(value) }
    mutating func encode(_ value: UInt32) throws { try scalar(value) }
    mutating func encode(_ value: UInt64) throws { try scalar(value) }
    mutating func encode(_ value: UInt128) throws { try scalar(value) }
    mutating func encode(_ value: Float) throws { try scalar(value) }
    mutating func encode(_ value: Double) throws { try scalar(value) }

    mutating func encode(_ value: String) throws {
        try claim()
        state.core.writer.byte(Tag.string)
        state.core.writer.string(value)
    }

    mutating func encode<T: Encodable>(_ value: T) throws {
        switch state.core.checkSlot(frame) {
        case .open: break
        case .used: throw state.singleValueUsedTwice()
        case .closed: try state.cannotWriteInPlace()
        }
        if state.encodeHot(value) {
            state.core.dropTopSlot()
        } else if try state.encodeDirectly(value) {
            state.core.dropTopSlot()
        } else {
            // A composite value takes over this slot: it opens its own container in it.
            try state.encodeComposite(value, into: frame)
        }
    }
}
