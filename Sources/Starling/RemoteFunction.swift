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

/// Options for one submitted task.
public struct TaskOptions: Sendable {
    /// Resources the task holds while it runs (default one CPU).
    public var resources: [String: Double] = ["CPU": 1]
    /// Retries after the worker running it dies (not after user errors unless `retryUserErrors`).
    public var maxRetries: Int = 3
    /// Also retry when the function throws.
    public var retryUserErrors: Bool = false
    /// A name for logs and errors (defaults to the type name).
    public var name: String?

    public init(resources: [String: Double] = ["CPU": 1], maxRetries: Int = 3, retryUserErrors: Bool = false, name: String? = nil) {
        self.resources = resources
        self.maxRetries = maxRetries
        self.retryUserErrors = retryUserErrors
        self.name = name
    }
}
