import Foundation

// Exact-type checks for the types that reach the generic `encode`/`decode` most often. A type
// identity check costs about a nanosecond; the protocol cast that finds every other directly
// coded type costs 60-90 ns, so these are tried first and the cast result for ordinary
// (composite) types is remembered per call (see `EncoderState.encodeDirectly`).
//
// The identifiers are computed once: asking for `[Float].self` in unspecialized generic code
// is a metadata-cache lookup every time (the stdlib pre-specializes those arrays).

struct HotTypeIDs: Sendable {
    let floatArray = ObjectIdentifier([Float].self)
    let string = ObjectIdentifier(String.self)
    let doubleArray = ObjectIdentifier([Double].self)
    let intArray = ObjectIdentifier([Int].self)
    let int = ObjectIdentifier(Int.self)
    let double = ObjectIdentifier(Double.self)
    let float = ObjectIdentifier(Float.self)
    let bool = ObjectIdentifier(Bool.self)
    let data = ObjectIdentifier(Data.self)
    let byteArray = ObjectIdentifier([UInt8].self)
    let stringArray = ObjectIdentifier([String].self)

    static let shared = HotTypeIDs()
}

extension EncoderState {
    /// Writes `value` if it is one of the hot types; false otherwise.
    @inline(__always)
    func encodeHot<T: Encodable>(_ value: T) -> Bool {
        let type = ObjectIdentifier(T.self)
        let hot = HotTypeIDs.shared
        if type == hot.floatArray {
            core.writer.packed(unsafeBitCast(value, to: [Float].self))
        } else if type == hot.string {
            core.writer.byte(Tag.string)
            core.writer.string(unsafeBitCast(value, to: String.self))
        } else if type == hot.doubleArray {
            core.writer.packed(unsafeBitCast(value, to: [Double].self))
        } else if type == hot.intArray {
            core.writer.packed(unsafeBitCast(value, to: [Int].self))
        } else if type == hot.int {
            core.writer.scalar(unsafeBitCast(value, to: Int.self))
        } else if type == hot.double {
            core.writer.scalar(unsafeBitCast(value, to: Double.self))
        } else if type == hot.float {
            core.writer.scalar(unsafeBitCast(value, to: Float.self))
        } else if type == hot.bool {
            core.writer.scalar(unsafeBitCast(value, to: Bool.self))
        } else if type == hot.data {
            core.writer.data(unsafeBitCast(value, to: Data.self))
        } else if type == hot.byteArray {
            core.writer.packed(unsafeBitCast(value, to: [UInt8].self))
        } else if type == hot.stringArray {
            core.writer.strings(unsafeBitCast(value, to: [String].self))
        } else {
            return false
        }
        return true
    }
}

extension DecoderState {
    /// Reads a `T` if it is one of the hot types; nil otherwise.
    @inline(__always)
    func decodeHot<T: Decodable>(_: T.Type, at offset: Int, limit: Int) throws -> T? {
        let type = ObjectIdentifier(T.self)
        let hot = HotTypeIDs.shared
        if type == hot.floatArray {
            return unsafeBitCast(try [Float].decodeDirectly(from: self, at: offset, limit: limit), to: T.self)
        } else if type == hot.string {
            return unsafeBitCast(try readString(at: offset, limit: limit).value, to: T.self)
        } else if type == hot.doubleArray {
            return unsafeBitCast(try [Double].decodeDirectly(from: self, at: offset, limit: limit), to: T.self)
        } else if type == hot.intArray {
            return unsafeBitCast(try [Int].decodeDirectly(from: self, at: offset, limit: limit), to: T.self)
        } else if type == hot.int {
            return unsafeBitCast(try readScalar(Int.self, at: offset, limit: limit).value, to: T.self)
        } else if type == hot.double {
            return unsafeBitCast(try readScalar(Double.self, at: offset, limit: limit).value, to: T.self)
        } else if type == hot.float {
            return unsafeBitCast(try readScalar(Float.self, at: offset, limit: limit).value, to: T.self)
        } else if type == hot.bool {
            return unsafeBitCast(try readScalar(Bool.self, at: offset, limit: limit).value, to: T.self)
        } else if type == hot.data {
            return unsafeBitCast(try Data.decodeDirectly(from: self, at: offset, limit: limit), to: T.self)
        } else if type == hot.byteArray {
            return unsafeBitCast(try [UInt8].decodeDirectly(from: self, at: offset, limit: limit), to: T.self)
        } else if type == hot.stringArray {
            return unsafeBitCast(try readStrings(at: offset, limit: limit), to: T.self)
        }
        return nil
    }
}

extension ByteWriter {
    /// `[String]` as the unkeyed container of strings its own Codable conformance writes.
    mutating func strings(_ strings: [String]) {
        let header = openContainer(Tag.unkeyed)
        for string in strings {
            byte(Tag.string)
            self.string(string)
        }
        _ = closeContainer(at: header, count: strings.count)
    }
}

extension DecoderState {
    /// `[String]` from an unkeyed container, without the generic `Array.init(from:)`.
    func readStrings(at offset: Int, limit: Int) throws -> [String] {
        // Note: a `catch <pattern> where` clause on a typed-throws `do` here sent the Swift 6.3
        // compiler's mandatory SIL passes into an endless loop; keep this plain.
        let header = try openContainer(Tag.unkeyed, at: offset, limit: limit)
        var strings: [String] = []
        strings.reserveCapacity(header.count)
        var position = header.start
        for index in 0..<header.count {
            do {
                let (string, end) = try readString(at: position, limit: header.end)
                strings.append(string)
                position = end
            } catch {
                throw describe(error, expected: "String", depth: path.count, key: IndexKey(index))
            }
        }
        return strings
    }
}
