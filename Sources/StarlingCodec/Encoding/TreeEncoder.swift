// The fallback encoder for values whose `encode(to:)` writes to its containers out of order
// (say, two nested containers filled alternately): such containers cannot be written in place,
// so this encoder keeps them as a small tree and writes them out at the end. Only the
// containers of the offending value are buffered: each value put into them is encoded by the
// streaming encoder again (and falls back here only if it, too, interleaves). The bytes are the
// same the streaming encoder would have written.

final class TreeContext {
    let options: CoderOptions
    var deferredError: (any Error)?

    init(options: CoderOptions) { self.options = options }

    func deferError(_ error: CodecError) {
        if deferredError == nil { deferredError = error }
    }
}

final class TreeSlot {
    enum Content {
        case empty
        case bytes([UInt8])
        case keyed(TreeKeyed)
        case unkeyed(TreeUnkeyed)
    }

    var content: Content

    init(_ content: Content = .empty) { self.content = content }

    /// Writes the slot; false when a container is too large for the format.
    func write(to writer: inout ByteWriter) -> Bool {
        switch content {
        case .empty:
            writer.emptyContainer()
            return true
        case .bytes(let bytes):
            bytes.withUnsafeBytes { writer.bulk($0) }
            return true
        case .keyed(let box):
            let header = writer.openContainer(Tag.keyed)
            var ok = true
            for (key, slot) in box.entries {
                writer.string(key)
                ok = slot.write(to: &writer) && ok
            }
            return writer.closeContainer(at: header, count: box.entries.count) && ok
        case .unkeyed(let box):
            let header = writer.openContainer(Tag.unkeyed)
            var ok = true
            for slot in box.items { ok = slot.write(to: &writer) && ok }
            return writer.closeContainer(at: header, count: box.items.count) && ok
        }
    }
}

final class TreeKeyed {
    var entries: [(key: String, slot: TreeSlot)] = []
}

final class TreeUnkeyed {
    var items: [TreeSlot] = []
}

enum TreeEncoding {
    /// Encodes `value` (found at `path`) to bytes: streaming when it can, as a tree when not.
    static func encode<T: Encodable>(_ value: T, path: [any CodingKey], context: TreeContext,
                                     tryStreamingFirst: Bool = true) throws -> [UInt8] {
        if tryStreamingFirst {
            let state = EncoderState(bytes: [], options: context.options, basePath: path)
            var thrown: (any Error)?
            do {
                try state.encodeValue(value)
            } catch {
                thrown = error
            }
            if !state.needsTreeEncoding {
                if let deferred = state.deferredError { throw deferred }
                if let thrown { throw thrown }
                state.core.finish(0)
                if state.core.overflowed {
                    throw CodecError.invalidValue("a container holds more than \(UInt32.max) elements",
                                                  path: CodingPath.render(path))
                }
                return state.core.writer.take()
            }
        }
        guard path.count < context.options.maxDepth else {
            throw CodecError.nestingTooDeep(limit: context.options.maxDepth, path: CodingPath.render(path))
        }
        let slot = TreeSlot()
        try value.encode(to: TreeEncoder(context: context, slot: slot, codingPath: path))
        if let deferred = context.deferredError { throw deferred }
        var writer = ByteWriter()
        guard slot.write(to: &writer) else {
            throw CodecError.invalidValue("a container holds more than \(UInt32.max) elements",
                                          path: CodingPath.render(path))
        }
        return writer.take()
    }
}

struct TreeEncoder: Encoder {
    let context: TreeContext
    let slot: TreeSlot
    let codingPath: [any CodingKey]

    var userInfo: [CodingUserInfoKey: Any] { context.options.userInfo }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        switch slot.content {
        case .empty:
            let box = TreeKeyed()
            slot.content = .keyed(box)
            return KeyedEncodingContainer(TreeKeyedEncoder<Key>(context: context, box: box, codingPath: codingPath))
        case .keyed(let box):
            return KeyedEncodingContainer(TreeKeyedEncoder<Key>(context: context, box: box, codingPath: codingPath))
        default:
            context.deferError(.invalidValue("asked for a keyed container after another kind of value",
                                             path: CodingPath.render(codingPath)))
            return KeyedEncodingContainer(TreeKeyedEncoder<Key>(context: context, box: TreeKeyed(), codingPath: codingPath))
        }
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        switch slot.content {
        case .empty:
            let box = TreeUnkeyed()
            slot.content = .unkeyed(box)
            return TreeUnkeyedEncoder(context: context, box: box, codingPath: codingPath)
        case .unkeyed(let box):
            return TreeUnkeyedEncoder(context: context, box: box, codingPath: codingPath)
        default:
            context.deferError(.invalidValue("asked for an unkeyed container after another kind of value",
                                             path: CodingPath.render(codingPath)))
            return TreeUnkeyedEncoder(context: context, box: TreeUnkeyed(), codingPath: codingPath)
        }
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        TreeSingleValueEncoder(context: context, slot: slot, codingPath: codingPath)
    }
}

struct TreeKeyedEncoder<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let context: TreeContext
    let box: TreeKeyed
    let codingPath: [any CodingKey]

    mutating func encodeNil(forKey key: Key) throws {
        box.entries.append((key.stringValue, TreeSlot(.bytes([Tag.null]))))
    }

    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws { try put(value, key) }

    private func put<T: Encodable>(_ value: T, _ key: Key) throws {
        let bytes = try TreeEncoding.encode(value, path: codingPath + [key], context: context)
        box.entries.append((key.stringValue, TreeSlot(.bytes(bytes))))
    }

    mutating func encode(_ value: Bool, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: String, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: Double, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: Float, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: Int, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: Int8, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: Int16, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: Int32, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: Int64, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: Int128, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: UInt, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: UInt8, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: UInt16, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: UInt32, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: UInt64, forKey key: Key) throws { try put(value, key) }
    mutating func encode(_ value: UInt128, forKey key: Key) throws { try put(value, key) }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type,
                                                        forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
        let nested = TreeKeyed()
        box.entries.append((key.stringValue, TreeSlot(.keyed(nested))))
        return KeyedEncodingContainer(TreeKeyedEncoder<NestedKey>(context: context, box: nested, codingPath: codingPath + [key]))
    }

    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer {
        let nested = TreeUnkeyed()
        box.entries.append((key.stringValue, TreeSlot(.unkeyed(nested))))
        return TreeUnkeyedEncoder(context: context, box: nested, codingPath: codingPath + [key])
    }

    mutating func superEncoder() -> any Encoder {
        let slot = TreeSlot()
        box.entries.append((StringKey.super.stringValue, slot))
        return TreeEncoder(context: context, slot: slot, codingPath: codingPath + [StringKey.super])
    }

    mutating func superEncoder(forKey key: Key) -> any Encoder {
        let slot = TreeSlot()
        box.entries.append((key.stringValue, slot))
        return TreeEncoder(context: context, slot: slot, codingPath: codingPath + [key])
    }
}

struct TreeUnkeyedEncoder: UnkeyedEncodingContainer {
    let context: TreeContext
    let box: TreeUnkeyed
    let codingPath: [any CodingKey]

    var count: Int { box.items.count }

    mutating func encodeNil() throws { box.items.append(TreeSlot(.bytes([Tag.null]))) }

    mutating func encode<T: Encodable>(_ value: T) throws { try put(value) }

    private func put<T: Encodable>(_ value: T) throws {
        let bytes = try TreeEncoding.encode(value, path: codingPath + [IndexKey(count)], context: context)
        box.items.append(TreeSlot(.bytes(bytes)))
    }

    mutating func encode(_ value: Bool) throws { try put(value) }
    mutating func encode(_ value: String) throws { try put(value) }
    mutating func encode(_ value: Double) throws { try put(value) }
    mutating func encode(_ value: Float) throws { try put(value) }
    mutating func encode(_ value: Int) throws { try put(value) }
    mutating func encode(_ value: Int8) throws { try put(value) }
    mutating func encode(_ value: Int16) throws { try put(value) }
    mutating func encode(_ value: Int32) throws { try put(value) }
    mutating func encode(_ value: Int64) throws { try put(value) }
    mutating func encode(_ value: Int128) throws { try put(value) }
    mutating func encode(_ value: UInt) throws { try put(value) }
    mutating func encode(_ value: UInt8) throws { try put(value) }
    mutating func encode(_ value: UInt16) throws { try put(value) }
    mutating func encode(_ value: UInt32) throws { try put(value) }
    mutating func encode(_ value: UInt64) throws { try put(value) }
    mutating func encode(_ value: UInt128) throws { try put(value) }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
        let nested = TreeKeyed()
        let path = codingPath + [IndexKey(count)]
        box.items.append(TreeSlot(.keyed(nested)))
        return KeyedEncodingContainer(TreeKeyedEncoder<NestedKey>(context: context, box: nested, codingPath: path))
    }

    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer {
        let nested = TreeUnkeyed()
        let path = codingPath + [IndexKey(count)]
        box.items.append(TreeSlot(.unkeyed(nested)))
        return TreeUnkeyedEncoder(context: context, box: nested, codingPath: path)
    }

    mutating func superEncoder() -> any Encoder {
        let slot = TreeSlot()
        let path = codingPath + [IndexKey(count)]
        box.items.append(slot)
        return TreeEncoder(context: context, slot: slot, codingPath: path)
    }
}

struct TreeSingleValueEncoder: SingleValueEncodingContainer {
    let context: TreeContext
    let slot: TreeSlot
    let codingPath: [any CodingKey]

    private func set(_ bytes: @autoclosure () throws -> [UInt8]) throws {
        guard case .empty = slot.content else {
            throw CodecError.invalidValue("a single value container holds one value; it was written twice",
                                          path: CodingPath.render(codingPath))
        }
        slot.content = .bytes(try bytes())
    }

    mutating func encodeNil() throws { try set([Tag.null]) }

    mutating func encode<T: Encodable>(_ value: T) throws { try put(value) }

    private func put<T: Encodable>(_ value: T) throws {
        try set(try TreeEncoding.encode(value, path: codingPath, context: context))
    }

    mutating func encode(_ value: Bool) throws { try put(value) }
    mutating func encode(_ value: String) throws { try put(value) }
    mutating func encode(_ value: Double) throws { try put(value) }
    mutating func encode(_ value: Float) throws { try put(value) }
    mutating func encode(_ value: Int) throws { try put(value) }
    mutating func encode(_ value: Int8) throws { try put(value) }
    mutating func encode(_ value: Int16) throws { try put(value) }
    mutating func encode(_ value: Int32) throws { try put(value) }
    mutating func encode(_ value: Int64) throws { try put(value) }
    mutating func encode(_ value: Int128) throws { try put(value) }
    mutating func encode(_ value: UInt) throws { try put(value) }
    mutating func encode(_ value: UInt8) throws { try put(value) }
    mutating func encode(_ value: UInt16) throws { try put(value) }
    mutating func encode(_ value: UInt32) throws { try put(value) }
    mutating func encode(_ value: UInt64) throws { try put(value) }
    mutating func encode(_ value: UInt128) throws { try put(value) }
}
