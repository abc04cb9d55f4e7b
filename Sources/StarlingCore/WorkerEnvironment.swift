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
