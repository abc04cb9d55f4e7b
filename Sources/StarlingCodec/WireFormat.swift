// The wire format of StarlingCodec, in one place.
//
// Every value starts with a one-byte tag, so a decoder always knows what it is looking at and
// a wrong type is reported as "expected X, found Y". Multi-byte numbers are little-endian.
//
//   value   := null | bool | int | float | string | keyed | unkeyed | packed | some
//   null    := 0x00
//   bool    := 0x01 u8                      (0 or 1)
//   int     := 0x02 i8 | 0x03 i16 | 0x04 i32 | 0x05 i64 | 0x06 i128
//            | 0x07 u8 | 0x08 u16 | 0x09 u32 | 0x0A u64 | 0x0B u128   (`Int` is i64, `UInt` u64)
//   float   := 0x0C f32 | 0x0D f64          (IEEE 754 bit patterns, NaN payloads kept)
//   string  := 0x0E varint(byteCount) utf8
//   keyed   := 0x0F u32(count) u64(bodyBytes) { varint(keyBytes) keyUTF8 value }*count
//   unkeyed := 0x10 u32(count) u64(bodyBytes) { value }*count
//   packed  := 0x11 elementTag varint(count) element*count    (raw little-endian, no tags)
//   some    := 0x12 value                   (Optional.some around a value that is an optional)
//
// `varint` is unsigned LEB128 (at most 10 bytes). Keys are `CodingKey.stringValue`s. Because
// containers carry their body length, any value can be skipped in O(1), which is what lets a
// keyed container find its keys in any order. `packed` is the fast path: `[Float]`, `[Int]`,
// `Data` and the other contiguous arrays of fixed-width numbers (and `Bool`) are one header and
// one memcpy each way. An unkeyed decoding container also reads a `packed` value element by
// element, so `[Float]` and `Set<Float>` or a hand-written container stay interchangeable.

/// Tag bytes. Plain constants rather than an enum: decoding switches on untrusted bytes.
enum Tag {
    static let null: UInt8 = 0x00
    static let bool: UInt8 = 0x01
    static let int8: UInt8 = 0x02
    static let int16: UInt8 = 0x03
    static let int32: UInt8 = 0x04
    static let int64: UInt8 = 0x05
    static let int128: UInt8 = 0x06
    static let uint8: UInt8 = 0x07
    static let uint16: UInt8 = 0x08
    static let uint32: UInt8 = 0x09
    static let uint64: UInt8 = 0x0A
    static let uint128: UInt8 = 0x0B
    static let float32: UInt8 = 0x0C
    static let float64: UInt8 = 0x0D
    static let string: UInt8 = 0x0E
    static let keyed: UInt8 = 0x0F
    static let unkeyed: UInt8 = 0x10
    static let packed: UInt8 = 0x11
    static let some: UInt8 = 0x12

    /// Bytes after the tag of a container header: u32 count, u64 body length.
    static let containerHeaderSize = 13

    /// Payload width of a fixed-width scalar tag (also the element width in `packed`); nil otherwise.
    @inline(__always)
    static func scalarWidth(_ tag: UInt8) -> Int? {
        switch tag {
        case bool, int8, uint8: return 1
        case int16, uint16: return 2
        case int32, uint32, float32: return 4
        case int64, uint64, float64: return 8
        case int128, uint128: return 16
        default: return nil
        }
    }

    /// The Swift-facing name of what a tag holds, for "found ..." in errors.
    static func name(_ tag: UInt8) -> String {
        switch tag {
        case null: return "nil"
        case bool: return "Bool"
        case int8: return "Int8"
        case int16: return "Int16"
        case int32: return "Int32"
        case int64: return "Int64"
        case int128: return "Int128"
        case uint8: return "UInt8"
        case uint16: return "UInt16"
        case uint32: return "UInt32"
        case uint64: return "UInt64"
        case uint128: return "UInt128"
        case float32: return "Float"
        case float64: return "Double"
        case string: return "String"
        case keyed: return "a keyed container (struct, class or dictionary)"
        case unkeyed: return "an unkeyed container (array or set)"
        case packed: return "a packed array"
        case some: return "an optional"
        default: return "unknown tag 0x" + String(tag, radix: 16)
        }
    }
}

/// The growable output of an encoding: a `[UInt8]` written in place.
///
/// Small writes go through one unsafe store into space grown ahead of time (`storage` may be
/// longer than `count`; the tail is scratch), so a field costs a capacity check and a few
/// stores rather than `Array.append(contentsOf:)` per number. Bulk writes are one memcpy into
/// exactly reserved capacity, with no zero-filling first.
struct ByteWriter {
    private var storage: [UInt8]
    /// Bytes written so far; `storage[count...]` is scratch.
    private(set) var count: Int
    /// Packed arrays at least this large whose storage an owner keeps alive are gathered
    /// (`gather`): referenced where they lie, not copied. Off unless asked for.
    var gatherAtLeast = Int.max
    /// The gathered blocks, in output order, each placed before `storage[block.at]`.
    private(set) var gathered: [GatheredBlock] = []
    /// What keeps each gathered block's memory alive and unchanged.
    private(set) var owners: [any KeepsStorageAlive] = []

    init(_ bytes: consuming [UInt8] = []) {
        count = bytes.count
        storage = bytes
    }

    /// The bytes written, leaving the writer empty.
    mutating func take() -> [UInt8] {
        if storage.count > count { storage.removeLast(storage.count - count) }
        var result: [UInt8] = []
        swap(&result, &storage)
        count = 0
        return result
    }

    /// Makes room for `n` more bytes of scratch after `count`.
    @inline(__always)
    private mutating func reserve(_ n: Int) {
        if storage.count - count < n { grow(n) }
    }

    /// Extends the scratch by at least `n` bytes and at most the length so far (so zeroing it
    /// costs O(1) per byte written, even in a large reused buffer), reallocating geometrically
    /// only when the capacity cannot hold it.
    @inline(never)
    private mutating func grow(_ n: Int) {
        let needed = count + n
        if storage.capacity < needed {
            storage.reserveCapacity(Swift.max(needed, storage.capacity * 2, 64))
        }
        let extra = Swift.min(storage.capacity - storage.count, Swift.max(needed - storage.count, storage.count, 1024))
        storage.append(contentsOf: repeatElement(0, count: extra))
    }

    /// Runs `body` with a pointer to at least `n` bytes of scratch at the end of the output;
    /// `body` returns how many of them it wrote.
    @inline(__always)
    mutating func write(upTo n: Int, _ body: (UnsafeMutableRawPointer) -> Int) {
        reserve(n)
        let offset = count
        let written = storage.withUnsafeMutableBytes { body($0.baseAddress! + offset) }
        count += written
    }

    @inline(__always)
    mutating func byte(_ value: UInt8) {
        write(upTo: 1) { $0.storeBytes(of: value, as: UInt8.self); return 1 }
    }

    @inline(__always)
    mutating func fixed<T: FixedWidthInteger>(_ value: T) {
        write(upTo: MemoryLayout<T>.size) {
            $0.storeBytes(of: value.littleEndian, as: T.self)
            return MemoryLayout<T>.size
        }
    }

    /// A tag byte followed by a fixed-width payload, in one write.
    @inline(__always)
    mutating func tagged<T: FixedWidthInteger>(_ tag: UInt8, _ value: T) {
        write(upTo: 1 + MemoryLayout<T>.size) {
            $0.storeBytes(of: tag, as: UInt8.self)
            ($0 + 1).storeBytes(of: value.littleEndian, as: T.self)
            return 1 + MemoryLayout<T>.size
        }
    }

    @inline(__always)
    static func storeVarint(_ value: UInt64, at p: UnsafeMutableRawPointer) -> Int {
        var v = value
        var i = 0
        while v >= 0x80 {
            (p + i).storeBytes(of: UInt8(truncatingIfNeeded: v) | 0x80, as: UInt8.self)
            v >>= 7
            i += 1
        }
        (p + i).storeBytes(of: UInt8(v), as: UInt8.self)
        return i + 1
    }

    mutating func varint(_ value: UInt64) {
        write(upTo: 10) { Self.storeVarint(value, at: $0) }
    }

    /// `varint(byteCount)` then the UTF-8 bytes.
    @inline(__always)
    mutating func string(_ value: String) {
        var value = value
        value.withUTF8 { utf8 in
            if utf8.count > 4096 {
                varint(UInt64(utf8.count))
                bulk(UnsafeRawBufferPointer(utf8))
                return
            }
            write(upTo: 10 + utf8.count) { p in
                let n = Self.storeVarint(UInt64(utf8.count), at: p)
                if utf8.count > 0 { (p + n).copyMemory(from: utf8.baseAddress!, byteCount: utf8.count) }
                return n + utf8.count
            }
        }
    }

    /// The gathered blocks and their owners, leaving the writer without any.
    mutating func takeGathered() -> (blocks: [GatheredBlock], owners: [any KeepsStorageAlive]) {
        defer { gathered = []; owners = [] }
        return (gathered, owners)
    }

    /// Appends a large block: gathered when this writer gathers blocks that large and `owner`
    /// keeps `raw` alive, copied otherwise.
    mutating func bulk(_ raw: UnsafeRawBufferPointer, owner: @autoclosure () -> (any KeepsStorageAlive)?) {
        if raw.count >= gatherAtLeast, let owner = owner() {
            gathered.append(GatheredBlock(at: count, bytes: raw))
            owners.append(owner)
            return
        }
        bulk(raw)
    }

    /// Appends a large block with one copy, leaving room for what usually follows so the next
    /// small write does not reallocate (and copy) the whole buffer again.
    mutating func bulk(_ raw: UnsafeRawBufferPointer) {
        guard raw.count > 0 else { return }
        if raw.count <= 256 {
            write(upTo: raw.count) { $0.copyMemory(from: raw.baseAddress!, byteCount: raw.count); return raw.count }
            return
        }
        if storage.count > count { storage.removeLast(storage.count - count) }  // no zero-filling
        let needed = count + raw.count
        if needed > storage.capacity {
            storage.reserveCapacity(Swift.max(needed + needed >> 6 + 1024, storage.capacity * 2))
        }
        raw.withMemoryRebound(to: UInt8.self) { storage.append(contentsOf: $0) }
        count = storage.count
    }

    /// Writes a container header with placeholder count and length; returns its offset.
    @inline(__always)
    mutating func openContainer(_ tag: UInt8) -> Int {
        let offset = count
        write(upTo: Tag.containerHeaderSize) {
            $0.storeBytes(of: tag, as: UInt8.self)
            ($0 + 1).storeBytes(of: UInt32(0), as: UInt32.self)
            ($0 + 5).storeBytes(of: UInt64(0), as: UInt64.self)
            return Tag.containerHeaderSize
        }
        return offset
    }

    /// Fills in the count and body length of the container header at `offset`.
    /// Returns false when the count does not fit the format's u32.
    @inline(__always)
    mutating func closeContainer(at offset: Int, count elements: Int) -> Bool {
        // Blocks gathered inside the container count in its length (they lie after its header).
        var gatheredInside = 0
        for block in gathered.reversed() {
            guard block.at > offset else { break }
            gatheredInside += block.bytes.count
        }
        let body = UInt64(count - offset - Tag.containerHeaderSize + gatheredInside)
        storage.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: UInt32(truncatingIfNeeded: elements).littleEndian, toByteOffset: offset + 1, as: UInt32.self)
            raw.storeBytes(of: body.littleEndian, toByteOffset: offset + 5, as: UInt64.self)
        }
        return elements <= Int(UInt32.max)
    }

    /// An empty keyed container: what a value that encodes nothing becomes.
    mutating func emptyContainer() {
        _ = openContainer(Tag.keyed)
    }
}
