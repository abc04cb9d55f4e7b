import StarlingCore
import Synchronization

/// A typed reference to an immutable value in the cluster: a task's result or a `put` value.
///
/// Refs are cheap, `Codable` and `Sendable`; pass them around and `get` the value when needed.
/// The owner (the process that submitted the task or put the value) keeps the value while any
/// copy of a ref it made lives; when the last one goes, the value is freed, in the object store
/// too. A ref encoded into an argument, an actor call or a result is lent: its value then stays
/// until the job ends.
public struct ObjectRef<Value: Codable & Sendable>: Sendable, Hashable, Codable, CustomStringConvertible {
    /// The object's id.
    public let id: UniqueID
    /// The RPC address of the process that owns it (the submitter).
    public let owner: String
    /// Counts this ref at its owner, or tracks it in a borrower running a task (nil in other
    /// copies decoded from a message).
    let reference: LocalReference?

    init(id: UniqueID, owner: String, reference: LocalReference?) {
        self.id = id
        self.owner = owner
        self.reference = reference
    }

    public var description: String { "ObjectRef<\(Value.self)>(\(id.short))" }

    public static func == (lhs: ObjectRef, rhs: ObjectRef) -> Bool { lhs.id == rhs.id && lhs.owner == rhs.owner }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(id)
        hasher.combine(owner)
    }

    private enum CodingKeys: String, CodingKey { case id, owner }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        id = try container.decode(UniqueID.self, forKey: .id)
        owner = try container.decode(String.self, forKey: .owner)
        reference = (decoder.userInfo[.borrowScope] as? BorrowScope)?.track(id)
    }

    public func encode(to encoder: Encoder) throws {
        if let reference {
            if let scope = encoder.userInfo[.submitScope] as? SubmitScope { scope.hold(reference) } else { reference.lend() }
        }
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(owner, forKey: .owner)
    }
}

/// One object's refs in its owner (alive while any copy of the refs made for it lives), or
/// in a worker that borrowed it for a task (`counter` nil).
final class LocalReference: Sendable {
    let id: UniqueID
    let counter: ReferenceCounter?
    /// For a borrowed ref: the task run that decoded it (told when the ref is passed on).
    private let borrowedBy: BorrowScope?

    init(_ id: UniqueID, counter: ReferenceCounter?, borrowedBy: BorrowScope? = nil) {
        self.id = id
        self.counter = counter
        self.borrowedBy = borrowedBy
    }

    /// The ref leaves this process (in a result, an actor call, a nested task's input).
    func lend() {
        if let counter { counter.lend(id) } else { borrowedBy?.forwarded(id) }
    }

    deinit { counter?.release(id) }
}

extension CodingUserInfoKey {
    /// A `SubmitScope` while a task's input is encoded.
    static let submitScope = CodingUserInfoKey(rawValue: "starling.submitScope")!
    /// A `BorrowScope` while a worker decodes a task's input.
    static let borrowScope = CodingUserInfoKey(rawValue: "starling.borrowScope")!
}

/// The refs of this process found in a task's input: held with the task until it finished.
final class SubmitScope: Sendable {
    private let held = Mutex<[LocalReference]>([])
    func hold(_ reference: LocalReference) { held.withLock { $0.append(reference) } }
    var references: [LocalReference] { held.withLock { $0 } }
}

/// The refs a worker decoded from a task's input; after the run, those still alive somewhere
/// in the worker, or passed on (in the result, to an actor, to another task), are reported to
/// the submitter, which then keeps their values for the job.
final class BorrowScope: Sendable {
    private struct Weak { weak var reference: LocalReference? }
    private let tracked = Mutex<(alive: [Weak], forwarded: Set<UniqueID>)>(([], []))

    func track(_ id: UniqueID) -> LocalReference {
        let reference = LocalReference(id, counter: nil, borrowedBy: self)
        tracked.withLock { $0.alive.append(Weak(reference: reference)) }
        return reference
    }

    func forwarded(_ id: UniqueID) {
        tracked.withLock { _ = $0.forwarded.insert(id) }
    }

    var stillHeld: [UniqueID] {
        tracked.withLock { state in Array(Set(state.alive.compactMap { $0.reference?.id }).union(state.forwarded)) }
    }
}
