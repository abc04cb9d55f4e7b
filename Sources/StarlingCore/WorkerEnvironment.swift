/// The environment a node manager gives the worker processes it starts (one place for the names).
public enum WorkerEnvironment {
    /// Set in every worker: its id (hex). `Starling.run` serves as a worker when it is present.
    public static let workerID = "STARLING_WORKER_ID"
    /// The node manager's RPC address.
    public static let nodeURL = "STARLING_NODE_URL"
    /// The cluster token file.
    public static let tokenFile = "STARLING_TOKEN_FILE"
    /// The session directory (sockets, logs).
    public static let sessionDir = "STARLING_SESSION_DIR"
}

extension WorkerEnvironment {
    /// The node that started the worker (hex id).
    public static let nodeID = "STARLING_NODE_ID"
    /// The job whose executable the worker runs (hex id).
    public static let jobID = "STARLING_JOB_ID"
    /// The head's RPC address (actors spawned or looked up from inside a task).
    public static let headURL = "STARLING_HEAD_URL"
    /// The host a worker listens on with tcp (unset: an ipc socket in the session directory).
    public static let listenHost = "STARLING_WORKER_HOST"
    /// The worker's log file (its stdout and stderr), named in its tasks' errors.
    public static let workerLog = "STARLING_WORKER_LOG"
    /// The CPUs the worker's threads may use (a list like `0-3`): its node's, not the CPU a
    /// driver that hosts the node keeps its own threads on.
    public static let cpus = "STARLING_WORKER_CPUS"
}
