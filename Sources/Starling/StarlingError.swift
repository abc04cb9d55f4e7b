/// Errors of the Starling API, each naming what failed and what to do.
public enum StarlingError: Error, CustomStringConvertible, Equatable, Codable {
    /// The task's function threw: the remote error's type and message, and the task's name.
    case taskFailed(task: String, errorType: String, message: String)
    /// No node of the cluster can ever fit the task's resources.
    case infeasible(task: String, reason: String)
    /// The worker running the task died and retries are used up.
    case workerDied(task: String, attempts: Int, detail: String)
    /// The function type is not known to the worker's executable.
    case unknownFunction(task: String, detail: String)
    /// The argument or result did not decode as the function's declared type.
    case typeMismatch(task: String, detail: String)
    /// `get` waited longer than its timeout.
    case getTimedOut(object: String, seconds: Double)
    /// The task was cancelled.
    case cancelled(task: String)
    /// An argument or config is larger than values may be while they travel inline (put
    /// large values with `Cluster.put` and pass their refs).
    case objectTooLarge(task: String, what: String, bytes: Int, limit: Int)
    /// A placement group is not placed (yet): why it is still pending, or that it was removed.
    case placementGroupNotReady(group: String, reason: String)
    /// The node's object store cannot hold the object (its message states the sizes).
    case objectStoreFull(bytes: Int, detail: String)
    /// The process that owns the object (submitted its task or put it) is gone, or does not know it.
    case ownerDied(object: String, detail: String)
    /// The object's only copies were on nodes that died (or its spill file is gone), and it
    /// cannot be rebuilt: the detail says why (made by `put`, or its task's retries are used up).
    case objectLost(object: String, detail: String)
    /// The actor's worker died, the actor was killed, or it cannot be reached.
    case actorDied(actor: String, detail: String)
    /// The cluster could not be reached or refused the request.
    case cluster(String)

    public var description: String {
        switch self {
        case let .taskFailed(task, type, message):
            return "task \(task) failed with \(type): \(message)"
        case let .infeasible(task, reason):
            return "task \(task) cannot be scheduled: \(reason)"
        case let .workerDied(task, attempts, detail):
            return "task \(task) failed: its worker died on each of \(attempts) attempt(s) (\(detail))"
        case let .unknownFunction(task, detail):
            return "task \(task): \(detail)"
        case let .typeMismatch(task, detail):
            return "task \(task): \(detail)"
        case let .getTimedOut(object, seconds):
            return "get of \(object) timed out after \(seconds) s"
        case let .cancelled(task):
            return "task \(task) was cancelled"
        case let .objectTooLarge(task, what, bytes, limit):
            return "task \(task): its \(what) is \(bytes) bytes, over the inline limit of \(limit) bytes; put large values with cluster.put and pass the ref"
        case let .placementGroupNotReady(group, reason):
            return "placement group \(group.prefix(8)) is not ready: \(reason)"
        case let .objectStoreFull(bytes, detail):
            return "an object of \(bytes) bytes does not fit: \(detail)"
        case let .ownerDied(object, detail):
            return "object \(object) cannot be had: \(detail)"
        case let .objectLost(object, detail):
            return "object \(object) is lost: \(detail)"
        case let .actorDied(actor, detail):
            return "\(actor) is dead: \(detail)"
        case let .cluster(detail):
            return detail
        }
    }
}
