/// A remote function: a plain Swift type whose `run` executes on a worker of the cluster.
///
/// Swift cannot ship closures, so every process of a job runs the same executable and finds
/// the function by its type's mangled name: there is no registration step. The type must be
/// `internal` or `public` (private and fileprivate types cannot be looked up by name).
/// ```swift
/// struct Square: RemoteFunction {
///     static func run(_ x: Int) async throws -> Int { x * x }
/// }
/// let ref = try await cluster.submit(Square.self, 7)
/// let result = try await cluster.get(ref)   // 49
/// ```
public protocol RemoteFunction {
    associatedtype Input: Codable & Sendable
    associatedtype Output: Codable & Sendable
    static func run(_ input: Input) async throws -> Output
}

/// Where a task may run.
public enum Scheduling: Sendable, Hashable {
    /// Pack the submitting node until half its resources are in use, then spread (Ray's default).
    case `default`
    /// Round-robin over the nodes with room.
    case spread
    /// On the node with this id (`Cluster.nodeID`, `Cluster.nodes()`); with `soft`, elsewhere
    /// when that node is gone or can never fit the task.
    case node(String, soft: Bool = false)
    /// In a bundle of a placement group that is ready (`Cluster.ready`): bundle `bundle`, or
    /// any bundle with room when nil.
    case placementGroup(PlacementGroup, bundle: Int? = nil)
}

/// Options for one submitted task.
public struct TaskOptions: Sendable {
    /// Resources the task holds while it runs (default one CPU).
    public var resources: [String: Double] = ["CPU": 1]
    /// Retries after the worker (or node) running it dies; not after user errors unless
    /// `retryUserErrors`. -1 retries forever.
    public var maxRetries: Int = 3
    /// Also retry when the function throws.
    public var retryUserErrors: Bool = false
    /// A name for logs and errors (defaults to the type name).
    public var name: String?
    /// Where it may run.
    public var scheduling: Scheduling = .default
    /// When no node of the cluster can ever fit `resources`: false (the default) fails the
    /// task at once with `StarlingError.infeasible`; true waits for such a node to join,
    /// logging a warning while it waits.
    public var waitIfInfeasible: Bool = false

    public init(resources: [String: Double] = ["CPU": 1], maxRetries: Int = 3, retryUserErrors: Bool = false,
                name: String? = nil, scheduling: Scheduling = .default, waitIfInfeasible: Bool = false) {
        self.resources = resources
        self.maxRetries = maxRetries
        self.retryUserErrors = retryUserErrors
        self.name = name
        self.scheduling = scheduling
        self.waitIfInfeasible = waitIfInfeasible
    }
}
