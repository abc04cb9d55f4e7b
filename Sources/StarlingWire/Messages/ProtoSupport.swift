import CProtobufC

// The one mapping layer between the generated Swift messages (Messages/Generated/) and the
// protobuf-c structs. Generated code calls only the helpers below; nothing outside this
// folder sees a protobuf-c type.
//
// Packing: a message's value is copied into a C struct tree allocated from a ProtoArena
// (strings, byte buffers, arrays and sub-structs), protobuf-c packs it, and the arena frees
// everything at once. Unpacking: protobuf-c decodes into its own allocation, the generated
// `init(c:)` copies out Swift values, and the C tree is freed before returning.

/// A generated message backed by a protobuf-c struct.
protocol ProtoCBacked: ProtoMessage {
    associatedtype CMessage
    /// Copies the value out of a C struct that protobuf-c unpacked.
    init(c: UnsafePointer<CMessage>)
    /// Initialises `c` with the generated `*__init` function and fills in this value, with
    /// every pointer taken from `a`.
    func fill(_ c: UnsafeMutablePointer<CMessage>, _ a: ProtoArena)
}

/// Bump allocator for the C side of one pack: everything is freed when the arena goes away.
///
/// Not thread-safe and never shared: it lives for the duration of one `protoPack` call.
final class ProtoArena {
    /// The first block fits a typical small message; later ones are larger.
    private static let firstBlockSize = 1024
    private static let blockSize = 8192
    private var blocks: [UnsafeMutableRawPointer] = []
    private var cursor: UnsafeMutableRawPointer?
    private var remaining = 0

    init() {}

    deinit {
        for block in blocks { block.deallocate() }
    }

    /// `size` bytes aligned to `alignment` (at most 16), uninitialised.
    func allocate(_ size: Int, alignment: Int) -> UnsafeMutableRawPointer {
        if let cursor {
            let aligned = cursor.alignedUp(toMultipleOf: alignment)
            let needed = (aligned - cursor) + size
            if needed <= remaining {
                self.cursor = aligned + size
                remaining -= needed
                return aligned
            }
        }
        let blockSize = blocks.isEmpty ? Self.firstBlockSize : Self.blockSize
        if size > blockSize / 2 {
            // Large buffers (bytes fields) get their own block; the current block stays open.
            let block = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16)
            blocks.append(block)
            return block
        }
        let block = UnsafeMutableRawPointer.allocate(byteCount: blockSize, alignment: 16)
        blocks.append(block)
        cursor = block + size
        remaining = blockSize - size
        return block
    }

    /// Room for one `T`, uninitialised (the generated `*__init` function initialises it).
    func new<T>(_ type: T.Type) -> UnsafeMutablePointer<T> {
        allocate(MemoryLayout<T>.stride, alignment: MemoryLayout<T>.alignment)
            .bindMemory(to: T.self, capacity: 1)
    }

    /// A NUL-terminated copy of `s`. protobuf-c strings are C strings: a string containing
    /// U+0000 is cut at the first one.
    func string(_ s: String) -> UnsafeMutablePointer<CChar> {
        let count = s.utf8.count
        let p = allocate(count + 1, alignment: 1).bindMemory(to: CChar.self, capacity: count + 1)
        s.withCString { p.initialize(from: $0, count: count) }
        p[count] = 0
        return p
    }

    /// A copy of `b` as protobuf-c binary data.
    func bytes(_ b: [UInt8]) -> ProtobufCBinaryData {
        if b.isEmpty { return ProtobufCBinaryData(len: 0, data: nil) }
        let p = allocate(b.count, alignment: 1).bindMemory(to: UInt8.self, capacity: b.count)
        b.withUnsafeBufferPointer { p.initialize(from: $0.baseAddress!, count: b.count) }
        return ProtobufCBinaryData(len: b.count, data: p)
    }

    /// A C array holding `xs` as they are (numeric repeated fields).
    func array<T>(_ xs: [T]) -> UnsafeMutablePointer<T>? {
        if xs.isEmpty { return nil }
        let p = allocate(MemoryLayout<T>.stride * xs.count, alignment: MemoryLayout<T>.alignment)
            .bindMemory(to: T.self, capacity: xs.count)
        xs.withUnsafeBufferPointer { p.initialize(from: $0.baseAddress!, count: xs.count) }
        return p
    }

    /// A C array holding `xs` converted by `convert`.
    func array<S, T>(_ xs: [S], _ convert: (S) -> T) -> UnsafeMutablePointer<T>? {
        if xs.isEmpty { return nil }
        let p = allocate(MemoryLayout<T>.stride * xs.count, alignment: MemoryLayout<T>.alignment)
            .bindMemory(to: T.self, capacity: xs.count)
        for (i, x) in xs.enumerated() { (p + i).initialize(to: convert(x)) }
        return p
    }

    /// A filled C struct for an optional sub-message (nil stays NULL).
    func message<M: ProtoCBacked>(_ m: M?) -> UnsafeMutablePointer<M.CMessage>? {
        guard let m else { return nil }
        let c = new(M.CMessage.self)
        m.fill(c, self)
        return c
    }

    /// A C array of pointers to filled C structs (repeated sub-messages).
    func messages<M: ProtoCBacked>(_ ms: [M]) -> UnsafeMutablePointer<UnsafeMutablePointer<M.CMessage>?>? {
        array(ms) { message($0) }
    }

    /// A C array of map entries, sorted by key so that packing is deterministic.
    func map<E, V>(
        _ d: [String: V],
        _ initEntry: (UnsafeMutablePointer<E>?) -> Void,
        _ set: (UnsafeMutablePointer<E>, String, V) -> Void
    ) -> UnsafeMutablePointer<UnsafeMutablePointer<E>?>? {
        if d.isEmpty { return nil }
        return array(d.sorted { $0.key < $1.key }) { pair -> UnsafeMutablePointer<E>? in
            let e = new(E.self)
            initEntry(e)
            set(e, pair.key, pair.value)
            return e
        }
    }
}

// MARK: - Reading C values

@inline(__always)
func protoString(_ p: UnsafePointer<CChar>?) -> String {
    guard let p else { return "" }
    return String(cString: p)
}

@inline(__always)
func protoBytes(_ b: ProtobufCBinaryData) -> [UInt8] {
    guard b.len > 0, let data = b.data else { return [] }
    return Array(UnsafeBufferPointer(start: data, count: b.len))
}

@inline(__always)
func protoArray<C>(_ n: Int, _ p: UnsafeMutablePointer<C>?) -> [C] {
    guard n > 0, let p else { return [] }
    return Array(UnsafeBufferPointer(start: p, count: n))
}

@inline(__always)
func protoArray<C, S>(_ n: Int, _ p: UnsafeMutablePointer<C>?, _ convert: (C) -> S) -> [S] {
    guard n > 0, let p else { return [] }
    return UnsafeBufferPointer(start: p, count: n).map(convert)
}

@inline(__always)
func protoMessage<M: ProtoCBacked>(_ p: UnsafeMutablePointer<M.CMessage>?) -> M? {
    guard let p else { return nil }
    return M(c: p)
}

func protoMessages<M: ProtoCBacked>(_ n: Int, _ p: UnsafeMutablePointer<UnsafeMutablePointer<M.CMessage>?>?) -> [M] {
    guard n > 0, let p else { return [] }
    return UnsafeBufferPointer(start: p, count: n).compactMap { $0.map { M(c: $0) } }
}

/// Map entries as a dictionary; a repeated key keeps its last value (protobuf semantics).
func protoMap<E, V>(
    _ n: Int, _ p: UnsafeMutablePointer<UnsafeMutablePointer<E>?>?, _ convert: (E) -> (String, V)
) -> [String: V] {
    guard n > 0, let p else { return [:] }
    var out: [String: V] = [:]
    out.reserveCapacity(n)
    for entry in UnsafeBufferPointer(start: p, count: n) {
        if let entry {
            let (key, value) = convert(entry.pointee)
            out[key] = value
        }
    }
    return out
}

// MARK: - Pack and unpack

/// Packs `message` into the single buffer `allocate` returns for its packed size.
func protoPack<M: ProtoCBacked>(_ message: M, _ allocate: (Int) throws -> UnsafeMutableRawPointer) rethrows {
    let arena = ProtoArena()
    let c = arena.new(M.CMessage.self)
    message.fill(c, arena)
    // Every protobuf-c message struct starts with its ProtobufCMessage header.
    let base = UnsafeRawPointer(c).assumingMemoryBound(to: ProtobufCMessage.self)
    let size = protobuf_c_message_get_packed_size(base)
    let out = try allocate(size)
    let written = protobuf_c_message_pack(base, out.assumingMemoryBound(to: UInt8.self))
    precondition(written == size, "protobuf-c packed \(written) bytes of \(M.protoName), announced \(size)")
    withExtendedLifetime(arena) {}
}

/// Unpacks `bytes` with a generated `*__unpack` function (protobuf_c_message_unpack with the
/// message's descriptor) and copies the result out.
func protoUnpack<M: ProtoCBacked>(
    _ bytes: UnsafeRawBufferPointer,
    _ unpack: (UnsafeMutablePointer<ProtobufCAllocator>?, Int, UnsafePointer<UInt8>?) -> UnsafeMutablePointer<M.CMessage>?
) throws -> M {
    let start = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)
    guard let c = unpack(nil, bytes.count, start) else {
        throw WireError.malformed(what: M.protoName, detail: "protobuf-c could not unpack \(bytes.count) bytes")
    }
    defer {
        protobuf_c_message_free_unpacked(UnsafeMutableRawPointer(c).assumingMemoryBound(to: ProtobufCMessage.self), nil)
    }
    return M(c: c)
}
