/// Settings shared by every container of one encoding or decoding.
struct CoderOptions {
    var userInfo: [CodingUserInfoKey: Any]
    var maxDepth: Int
}

/// A container (or a value slot not yet written) that is still open in the output.
struct Frame {
    /// Kind of a value slot: an `Encoder` handed to `encode(to:)` that has written nothing yet.
    static let slot: UInt8 = 0xFF

    var id: Int
    /// `Tag.keyed`, `Tag.unkeyed` or `Frame.slot`.
    var kind: UInt8
    /// Offset of the container header in the output.
    var header: Int
    var count: Int
}

/// The part of the encoder state written on every value, kept in one struct so each container
/// call is one access to the state object.
///
/// Containers write straight into one output buffer. Open containers form a stack; a container
/// is closed (its count and length filled in) when its parent writes again or the value ends.
/// Writing to a container that was closed already (two sibling containers used alternately)
/// cannot be done in place: `activate` reports it and the value is encoded again by
/// `TreeEncoding`, which buffers containers. Synthesized `Codable` never does that.
struct EncoderCore {
    var writer: ByteWriter
    var frames: [Frame] = []
    var nextID = 0
    /// A container counted more elements than the format's u32 allows.
    var overflowed = false

    init(bytes: consuming [UInt8]) {
        writer = ByteWriter(bytes)
    }

    /// Makes frame `id` the innermost open one, closing the frames opened after it.
    /// False when the frame was closed already.
    @inline(__always)
    mutating func activate(_ id: Int) -> Bool {
        if let last = frames.last, last.id == id { return true }
        return activateSlow(id)
    }

    mutating func activateSlow(_ id: Int) -> Bool {
        guard id >= 0, let index = frames.lastIndex(where: { $0.id == id }) else { return false }
        while frames.count > index + 1 { closeTop() }
        return true
    }

    /// Index of the open frame `id`, if any.
    func index(of id: Int) -> Int? {
        guard id >= 0 else { return nil }
        return frames.lastIndex(where: { $0.id == id })
    }

    mutating func closeTop() {
        let frame = frames.removeLast()
        if frame.kind == Frame.slot {
            writer.emptyContainer()
        } else if !writer.closeContainer(at: frame.header, count: frame.count) {
            overflowed = true
        }
    }

    /// Closes frame `id` and everything opened after it (frame ids only grow up the stack).
    @inline(__always)
    mutating func finish(_ id: Int) {
        while let last = frames.last, last.id >= id { closeTop() }
    }

    @inline(__always)
    mutating func pushSlot() -> Int {
        if frames.capacity == 0 { frames.reserveCapacity(8) }
        let id = nextID
        nextID += 1
        frames.append(Frame(id: id, kind: Frame.slot, header: -1, count: 0))
        return id
    }

    @inline(__always)
    mutating func pushContainer(_ kind: UInt8) -> Int {
        let id = nextID
        nextID += 1
        frames.append(Frame(id: id, kind: kind, header: writer.openContainer(kind), count: 0))
        return id
    }

    /// Turns the open slot at `index` (the top) into a container of `kind`.
    mutating func convertSlot(at index: Int, to kind: UInt8) {
        frames[index].kind = kind
        frames[index].header = writer.openContainer(kind)
    }

    /// Starts an entry of the innermost (keyed) container: its key.
    @inline(__always)
    mutating func beginEntry(_ key: String) {
        writer.string(key)
        frames[frames.count - 1].count += 1
    }

    /// Starts an element of the innermost (unkeyed) container.
    @inline(__always)
    mutating func beginElement() {
        frames[frames.count - 1].count += 1
    }

    // One-call writes for the hot container methods.

    @inline(__always)
    mutating func keyedScalar<S: BinaryScalar>(_ id: Int, _ key: String, _ value: S) -> Bool {
        guard activate(id) else { return false }
        beginEntry(key)
        writer.scalar(value)
        return true
    }

    @inline(__always)
    mutating func keyedString(_ id: Int, _ key: String, _ value: String) -> Bool {
        guard activate(id) else { return false }
        beginEntry(key)
        writer.byte(Tag.string)
        writer.string(value)
        return true
    }

    @inline(__always)
    mutating func keyedNil(_ id: Int, _ key: String) -> Bool {
        guard activate(id) else { return false }
        beginEntry(key)
        writer.byte(Tag.null)
        return true
    }

    @inline(__always)
    mutating func beginKeyed(_ id: Int, _ key: String) -> Bool {
        guard activate(id) else { return false }
        beginEntry(key)
        return true
    }

    @inline(__always)
    mutating func elementScalar<S: BinaryScalar>(_ id: Int, _ value: S) -> Bool {
        guard activate(id) else { return false }
        beginElement()
        writer.scalar(value)
        return true
    }

    @inline(__always)
    mutating func elementString(_ id: Int, _ value: String) -> Bool {
        guard activate(id) else { return false }
        beginElement()
        writer.byte(Tag.string)
        writer.string(value)
        return true
    }

    @inline(__always)
    mutating func elementNil(_ id: Int) -> Bool {
        guard activate(id) else { return false }
        beginElement()
        writer.byte(Tag.null)
        return true
    }

    @inline(__always)
    mutating func beginUnkeyed(_ id: Int) -> Bool {
        guard activate(id) else { return false }
        beginElement()
        return true
    }

    /// Claims the open slot `id` for a single value: pops it so the value is written in its place.
    mutating func fillSlot(_ id: Int) -> SlotState {
        guard let index = index(of: id) else { return .closed }
        guard frames[index].kind == Frame.slot else { return .used }
        while frames.count > index + 1 { closeTop() }
        frames.removeLast()
        return .open
    }

    /// Removes the slot on top of the stack after a value was written in its place.
    mutating func dropTopSlot() {
        frames.removeLast()
    }

    /// Checks that `id` is an open, unwritten slot, and makes it the innermost frame.
    mutating func checkSlot(_ id: Int) -> SlotState {
        guard let index = index(of: id) else { return .closed }
        guard frames[index].kind == Frame.slot else { return .used }
        while frames.count > index + 1 { closeTop() }
        return .open
    }

    enum SlotState { case open, used, closed }
}

/// Thrown through a type's `encode(to:)` when it writes to a container that was closed already;
/// the encoding is then redone by `TreeEncoding`.
struct NeedsTreeEncoding: Error {}

/// Everything one streaming encoding shares: the output, the open containers, the coding path.
///
/// One state lives for one `encode` call on one thread, and no method that mutates it calls out
/// to other code while mutating (user `encode(to:)` runs between accesses, never inside one), so
/// the hot properties skip Swift's dynamic exclusivity checks, which cost more than the writes.
final class EncoderState {
    @exclusivity(unchecked) var core: EncoderCore
    /// Keys from the top-level value down to the value being encoded (truncated and pushed by
    /// containers, so it is right for the container in use).
    @exclusivity(unchecked) var path: [any CodingKey] = []
    /// The path of this encoding's root inside an enclosing value (tree encoding encodes parts).
    let basePath: [any CodingKey]
    let options: CoderOptions
    @exclusivity(unchecked) var nesting: Int
    /// The last two types found not to be `EncodesDirectly`: arrays of structs skip the cast.
    @exclusivity(unchecked) var knownComposite: (ObjectIdentifier?, ObjectIdentifier?) = (nil, nil)
    /// Set when a container write cannot be done in place; see `EncoderCore`.
    var needsTreeEncoding = false
    /// A misuse found in a non-throwing call (such as asking one encoder for two kinds of
    /// container); thrown at the next write and at the end.
    var deferredError: (any Error)?

    init(bytes: consuming [UInt8], options: CoderOptions, basePath: [any CodingKey] = []) {
        core = EncoderCore(bytes: bytes)
        self.options = options
        self.basePath = basePath
        nesting = basePath.count
    }

    var userInfo: [CodingUserInfoKey: Any] { options.userInfo }

    func codingPath(depth: Int) -> [any CodingKey] {
        basePath + path.prefix(depth)
    }

    /// Sets the path to the first `depth` keys plus `key`.
    @inline(__always)
    func setPath(depth: Int, _ key: some CodingKey) {
        if path.count > depth { path.removeLast(path.count - depth) }
        if path.capacity == 0 { path.reserveCapacity(8) }
        path.append(key)
    }

    /// Called when a container write could not be done in place.
    func cannotWriteInPlace() throws -> Never {
        if let deferredError { throw deferredError }
        needsTreeEncoding = true
        throw NeedsTreeEncoding()
    }

    func deferError(_ error: CodecError) {
        if deferredError == nil { deferredError = error }
    }

    /// Encodes one value at the current output position; `key` (the value's key or index in its
    /// container, at `depth`) goes on the coding path while a composite value encodes itself.
    @inline(__always)
    func encodeValue<T: Encodable, K: CodingKey>(_ value: T, key: K, depth: Int) throws {
        if encodeHot(value) { return }
        setPath(depth: depth, key)
        try encodeSlow(value)
        path.removeLast()
    }

    /// Encodes one value with no key of its own (the top level, an optional's payload).
    func encodeValue<T: Encodable>(_ value: T) throws {
        if encodeHot(value) { return }
        try encodeSlow(value)
    }

    func encodeSlow<T: Encodable>(_ value: T) throws {
        if try encodeDirectly(value) { return }
        try encodeComposite(value, into: nil)
    }

    /// Writes `value` if its type is `EncodesDirectly`; false otherwise. The answer "no" is
    /// remembered for the last two types, so arrays of structs skip the 60-90 ns cast.
    @inline(__always)
    func encodeDirectly<T: Encodable>(_ value: T) throws -> Bool {
        let type = ObjectIdentifier(T.self)
        guard type != knownComposite.0, type != knownComposite.1 else { return false }
        if let direct = value as? any EncodesDirectly {
            try direct.encodeDirectly(to: self)
            return true
        }
        knownComposite = (type, knownComposite.0)
        return false
    }

    /// Lets `value` encode itself into the open slot `slot`, or into a new one (nil).
    func encodeComposite<T: Encodable>(_ value: T, into slot: Int?) throws {
        guard nesting < options.maxDepth else {
            throw CodecError.nestingTooDeep(limit: options.maxDepth, path: CodingPath.render(basePath + path))
        }
        nesting += 1
        defer { nesting -= 1 }
        if let slot {
            try value.encode(to: _Encoder(state: self, frame: slot))
        } else {
            let slot = core.pushSlot()
            try value.encode(to: _Encoder(state: self, frame: slot))
            core.finish(slot)
        }
    }

    /// Opens (or reopens, for a class encoding its superclass into the same encoder) the
    /// container of `kind` for the value slot `frame`. Returns the frame to write to, or -1.
    func openContainer(_ frame: Int, kind: UInt8) -> Int {
        guard let index = core.index(of: frame) else {
            needsTreeEncoding = true
            return -1
        }
        let existing = core.frames[index].kind
        if existing == kind {
            _ = core.activateSlow(frame)
            return frame
        }
        if existing == Frame.slot {
            _ = core.activateSlow(frame)
            core.convertSlot(at: core.frames.count - 1, to: kind)
            return frame
        }
        let asked = kind == Tag.keyed ? "a keyed" : "an unkeyed"
        let used = existing == Tag.keyed ? "a keyed" : "an unkeyed"
        self.deferError(CodecError.invalidValue("asked one encoder for \(asked) container after \(used) one",
                                                path: CodingPath.render(basePath + path)))
        return -1
    }

    /// Opens a nested container as the next entry (`key` non-nil) or element of `frame`.
    func nestedContainer(_ frame: Int, key: (any CodingKey)?, elementIndex: Int, depth: Int, kind: UInt8) -> Int {
        guard core.activate(frame) else {
            if deferredError == nil { needsTreeEncoding = true }
            return -1
        }
        if let key {
            core.beginEntry(key.stringValue)
            setPath(depth: depth, key)
        } else {
            core.beginElement()
            setPath(depth: depth, IndexKey(elementIndex))
        }
        return core.pushContainer(kind)
    }

    /// Opens a value slot as the next entry or element of `frame`, for `superEncoder`.
    func superEncoder(_ frame: Int, key: (any CodingKey)?, elementIndex: Int, depth: Int) -> any Encoder {
        guard core.activate(frame) else {
            if deferredError == nil { needsTreeEncoding = true }
            return _Encoder(state: self, frame: -1)
        }
        if let key {
            core.beginEntry(key.stringValue)
            setPath(depth: depth, key)
        } else {
            core.beginElement()
            setPath(depth: depth, IndexKey(elementIndex))
        }
        return _Encoder(state: self, frame: core.pushSlot())
    }

    func singleValueUsedTwice() -> CodecError {
        CodecError.invalidValue("a single value container holds one value; it was written twice",
                                path: CodingPath.render(basePath + path))
    }
}

// MARK: - Top level

extension EncoderState {
    /// Encodes `value` and appends it to `bytes`, falling back to tree encoding when the value
    /// uses its containers out of order. On error `bytes` is left as it was.
    static func encode<T: Encodable>(_ value: T, appendingTo bytes: inout [UInt8], options: CoderOptions) throws {
        _ = try encode(value, appendingTo: &bytes, gatherAtLeast: .max, options: options)
    }

    /// `encode(_:appendingTo:options:)`, leaving packed arrays of at least `gatherAtLeast` bytes
    /// out of `bytes`: returns them, placed by index into `bytes`, with what keeps them alive.
    static func encode<T: Encodable>(_ value: T, appendingTo bytes: inout [UInt8], gatherAtLeast: Int,
                                     options: CoderOptions) throws -> (blocks: [GatheredBlock], owners: [any KeepsStorageAlive]) {
        let start = bytes.count
        var taken: [UInt8] = []
        swap(&taken, &bytes)
        // Moved, not copied: the writer must own the buffer uniquely, or its first write would
        // copy it and a reused buffer would lose its capacity.
        let state = EncoderState(bytes: consume taken, options: options)
        state.core.writer.gatherAtLeast = gatherAtLeast
        var thrown: (any Error)?
        do {
            try state.encodeValue(value)
        } catch {
            thrown = error
        }
        state.core.finish(0)
        bytes = state.core.writer.take()
        let gathered = state.core.writer.takeGathered()

        if state.core.overflowed, state.deferredError == nil {
            state.deferError(CodecError.invalidValue("a container holds more than \(UInt32.max) elements", path: ""))
        }
        let failure: (any Error)?
        if let deferred = state.deferredError {
            failure = deferred
        } else if state.needsTreeEncoding {
            bytes.removeSubrange(start...)
            do {
                let encoded = try TreeEncoding.encode(value, path: [], context: TreeContext(options: options),
                                                      tryStreamingFirst: false)
                bytes.append(contentsOf: encoded)
                return ([], [])
            } catch {
                failure = error
            }
        } else {
            failure = thrown
        }
        if let failure {
            bytes.removeSubrange(start...)
            throw CodingPath.convert(failure)
        }
        return gathered
    }
}
