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
    /// How long an actor lives.
    public enum Lifetime: Sendable {
        /// Until the job that spawned it ends (or `kill`).
        case job
        /// Until `kill`: it outlives its job, and other drivers find it by name.
        case detached
    }

    /// Resources the actor holds for its lifetime (default none, as an actor in Ray holds no
    /// CPU once created). Give `["CPU": 1]` to keep a core for it.
    public var resources: [String: Double] = [:]
    /// Where it may run.
    public var scheduling: Scheduling = .default
    /// A unique name in `namespace`: `Cluster.actor(named:)` finds it, from any driver.
    public var name: String?
    public var namespace: String = "default"
    public var lifetime: Lifetime = .job
    /// Restarts (with its original config) after its worker or node dies; -1: no limit.
    public var maxRestarts: Int = 0
    /// Retries of a call whose actor died during it (on the restarted actor); -1: no limit.
    public var maxTaskRetries: Int = 0
    /// Calls that may run at once (reentrant async methods); 1 runs them one at a time.
    public var maxConcurrency: Int = 1
    /// With a name that is taken: return the existing actor instead of failing.
    public var getIfExists: Bool = false

    public init(resources: [String: Double] = [:], scheduling: Scheduling = .default, name: String? = nil,
                namespace: String = "default", lifetime: Lifetime = .job, maxRestarts: Int = 0, maxTaskRetries: Int = 0,
                maxConcurrency: Int = 1, getIfExists: Bool = false) {
        self.resources = resources
        self.scheduling = scheduling
        self.name = name
        self.namespace = namespace
        self.lifetime = lifetime
        self.maxRestarts = maxRestarts
        self.maxTaskRetries = maxTaskRetries
        self.maxConcurrency = maxConcurrency
        self.getIfExists = getIfExists
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
