// Re-exported: `distributed actor` types in user code need the module, and `import Starling`
// should be all they import.
@_exported import Distributed
import StarlingCore

/// A stateful worker on the cluster: a Swift `distributed actor` whose actor system is
/// Starling's. Calls to its `distributed` methods are type-checked by the compiler, travel as
/// binary-encoded invocations and run on the worker hosting it, one at a time and in the order
/// each caller made them.
///
/// ```swift
/// distributed actor Counter: RemoteActor {
///     typealias ActorSystem = StarlingActorSystem
///     var total: Int
///     init(actorSystem: ActorSystem, config start: Int) { self.actorSystem = actorSystem; total = start }
///     distributed func add(_ n: Int) -> Int { total += n; return total }
/// }
/// let counter = try await cluster.spawn(Counter.self, config: 10)
/// print(try await counter.add(5))   // 15
/// ```
/// The type must be `internal` or `public` (it is found on the worker by its mangled name).
public protocol RemoteActor: DistributedActor where ActorSystem == StarlingActorSystem {
    /// What `spawn` passes to the actor's initialiser on its worker.
    associatedtype Config: Codable & Sendable
    init(actorSystem: StarlingActorSystem, config: Config)
}

/// Options of one spawned actor.
public struct ActorOptions: Sendable {
    /// Resources the actor holds for its lifetime (default none, as an actor in Ray holds no
    /// CPU once created). Give `["CPU": 1]` to keep a core for it.
    public var resources: [String: Double] = [:]
    /// Where it may run.
    public var scheduling: Scheduling = .default
    /// A name for logs and errors (defaults to the type name).
    public var name: String?

    public init(resources: [String: Double] = [:], scheduling: Scheduling = .default, name: String? = nil) {
        self.resources = resources
        self.scheduling = scheduling
        self.name = name
    }
}

/// The identity of an actor on the cluster: its id and the worker hosting it. Codable, so
/// actor handles pass through tasks and other actors' calls.
public struct ActorIdentity: Hashable, Codable, Sendable, CustomStringConvertible {
    /// Hex id.
    public let id: String
    /// The hosting worker's RPC address.
    let url: String
    /// For errors: the actor's name or type.
    let name: String

    public static func == (a: ActorIdentity, b: ActorIdentity) -> Bool { a.id == b.id }
    public func hash(into hasher: inout Hasher) { hasher.combine(id) }
    public var description: String { "actor \(name) (\(id.prefix(8)))" }
}
