import StarlingCore

/// A typed reference to an immutable value in the cluster: a task's result or a `put` value.
///
/// Refs are cheap, `Codable` and `Sendable`; pass them around and `get` the value when needed.
public struct ObjectRef<Value: Codable & Sendable>: Sendable, Hashable, Codable, CustomStringConvertible {
    /// The object's id.
    public let id: UniqueID
    /// The RPC address of the process that owns it (the submitter).
    public let owner: String

    init(id: UniqueID, owner: String) {
        self.id = id
        self.owner = owner
    }

    public var description: String { "ObjectRef<\(Value.self)>(\(id.short))" }
}
