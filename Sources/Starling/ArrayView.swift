import StarlingCodec
import StarlingCore
import StarlingNode
import StarlingWire

/// A read-only view of an array in the object store, in place: the elements are read from the
/// node's shared memory without a copy (`Cluster.view`). The view holds its ref, so the object
/// stays while the view lives, and the node keeps it in memory (never spilled) until then.
///
/// ```swift
/// let weights = try await cluster.view(weightsRef)     // 1M Float, no copy
/// let norm = weights.reduce(0) { $0 + $1 * $1 }
/// weights.withUnsafeBufferPointer { vDSP_like($0) }
/// ```
public final class ArrayView<Element: BitwiseCopyable & Codable & Sendable>: RandomAccessCollection, Sendable {
    public let startIndex = 0
    public let endIndex: Int
    /// The first element in this process's mapping of the node's arena (an address, not a
    /// pointer: the memory must not be written); or the elements in `copy` (small values, or
    /// objects not laid out in place).
    private let address: UInt
    private let inPlace: Bool
    private let copy: [Element]
    private let unpin: (@Sendable () -> Void)?
    /// Keeps the object referenced while the view lives.
    public let ref: ObjectRef<[Element]>

    init(ref: ObjectRef<[Element]>, copy: [Element]) {
        self.ref = ref
        self.copy = copy
        endIndex = copy.count
        address = 0
        inPlace = false
        unpin = nil
    }

    init(ref: ObjectRef<[Element]>, count: Int, address: UInt, unpin: @escaping @Sendable () -> Void) {
        self.ref = ref
        self.copy = []
        endIndex = count
        self.address = address
        inPlace = true
        self.unpin = unpin
    }

    public subscript(position: Int) -> Element {
        precondition(position >= 0 && position < endIndex, "index \(position) out of range 0..<\(endIndex)")
        guard inPlace else { return copy[position] }
        return UnsafeRawPointer(bitPattern: address)!.load(fromByteOffset: position * MemoryLayout<Element>.stride, as: Element.self)
    }

    /// The elements as a buffer, valid during `body`.
    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Element>) throws -> R) rethrows -> R {
        guard inPlace else { return try copy.withUnsafeBufferPointer(body) }
        return try body(UnsafeBufferPointer(start: UnsafePointer<Element>(bitPattern: address), count: endIndex))
    }

    /// True when the elements are read in place from shared memory (false: a small value,
    /// copied into this process).
    public var isInPlace: Bool { inPlace }

    // The pin keeps the object's range in place; the arena's mapping lasts as long as the process.
    deinit { unpin?() }
}

extension Cluster {
    /// Stores an array of numbers: like `put`, but the elements are copied once, straight into
    /// the node's shared memory (no encoding first), 64-byte aligned (so `view` reads them in
    /// place).
    public func put<E: BitwiseCopyable & Codable & Sendable>(_ array: [E]) async throws -> ObjectRef<[E]> {
        let payload = array.count * MemoryLayout<E>.stride
        guard payload >= StoredObjects.threshold, let header = PackedLayout.header(E.self, count: array.count) else {
            return try await putEncoded(array)
        }
        let id = UniqueID.random()
        let location = try await StoredObjects.put(size: header.count + payload, padding: (64 - header.count % 64) % 64,
                                                   id: id, owner: ownerURL, node: node) { location in
            try header.withUnsafeBytes { header in
                try array.withUnsafeBytes { elements in try SharedSegment.write(location, [header, elements]) }
            }
        }
        stored.add(id, location)
        return ObjectRef(id: id, owner: ownerURL, reference: references.reference(id))
    }

    /// A view of the array behind `ref`, read in place from the object store of this node (the
    /// node pulls it from another node first when needed). Small arrays, kept in their owner's
    /// memory, are copied into the view.
    public func view<E: BitwiseCopyable & Codable & Sendable>(_ ref: ObjectRef<[E]>) async throws -> ArrayView<E> {
        let holders: [[UInt8]]
        if stored.location(ref.id) != nil {
            holders = []
        } else if objects.knows(ref.id) || ref.owner == ownerURL {
            let bytes = try await objects.value(ref.id, timeout: nil)
            guard let holder = objects.storeNode(ref.id) else { return ArrayView(ref: ref, copy: try decode(bytes, ref)) }
            holders = [holder]
        } else {
            switch try await ObjectOwnership.whereIs(ref.id, owner: ref.owner, pool: owners, timeout: nil) {
            case let .inline(bytes): return ArrayView(ref: ref, copy: try decode(bytes, ref))
            case let .stored(nodes): holders = nodes
            }
        }
        let pinned: StoredObjects.PinnedValue
        do {
            pinned = try await StoredObjects.pin(ref.id, holders: holders, node: node)
        } catch StarlingError.objectLost {
            // Lost with its node: `get` rebuilds an owned task result by lineage.
            return ArrayView(ref: ref, copy: try await get(ref))
        }
        let value = pinned.bytes
        guard let start = value.baseAddress, let (count, first) = PackedLayout.elements(E.self, in: value),
              UInt(bitPattern: start + first) % UInt(MemoryLayout<E>.alignment) == 0 else {
            // Not a packed array of E (or not aligned): decode a copy.
            defer { pinned.release() }
            return ArrayView(ref: ref, copy: try decode([UInt8](value), ref))
        }
        return ArrayView(ref: ref, count: count, address: UInt(bitPattern: start + first), unpin: pinned.release)
    }

    private func decode<E: Codable>(_ bytes: [UInt8], _ ref: ObjectRef<[E]>) throws -> [E] {
        do {
            return try BinaryDecoder().decode([E].self, from: bytes)
        } catch {
            throw StarlingError.typeMismatch(task: ref.description, detail: "the value does not decode as [\(E.self)]: \(error)")
        }
    }
}
