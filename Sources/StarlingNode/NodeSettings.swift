import Foundation
import StarlingCore
import StarlingWire

/// Settings of one node manager, with defaults.
public struct NodeSettings: Sendable {
    /// Resources this node offers; by default CPU is the number of cores and memory (bytes)
    /// 70% of physical memory, as in Ray. Custom resources ("GPU", "tpu-slice") by flag.
    public var resources: ResourceSet = NodeSettings.detectedResources

    /// What this host has: its cores and 70% of its memory.
    public static var detectedResources: ResourceSet {
        ["CPU": Double(ProcessInfo.processInfo.activeProcessorCount),
         "memory": (Double(ProcessInfo.processInfo.physicalMemory) * 0.7).rounded(.down)]
    }
    /// Labels for display and affinity ("zone": "a").
    public var labels: [String: String] = [:]
    /// Directory for sockets, worker logs and fetched executables (must exist).
    public var sessionDir: String
    /// The token file workers read.
    public var tokenFile: String
    /// Where the node serves: nil for an ipc socket in the session directory (a single-host
    /// cluster); a `tcp://HOST:PORT` address to be reachable from other hosts. Workers then
    /// listen on the same host, on ports the system picks.
    public var listenAddress: Address?
    /// The host other hosts reach this node at, when `listenAddress` is a wildcard (0.0.0.0):
    /// its registered address and its workers' use it.
    public var advertiseHost: String?
    /// The head to register with; nil for a node alone (no spillback, no cluster view).
    public var headAddress: Address?
    /// True for the node inside the head's process.
    public var isHead = false
    /// The executable every worker runs (the embedded cluster: the driver's own binary). nil:
    /// each job's executable, fetched from the head by its content hash.
    public var workerExecutable: String?
    /// Most worker processes alive at once (task workers and actors' workers together).
    public var maxWorkers: Int = 128
    /// How long a new worker may take to register before it counts as failed.
    public var workerStartTimeout: Duration = .seconds(30)
    /// Workers started with the node, before any lease asks for one (first tasks start faster);
    /// only with a `workerExecutable`, as no job is known yet otherwise.
    public var prestartWorkers: Int = 1
    /// An idle worker beyond the prestarted ones is stopped after this long without a lease.
    public var idleWorkerTimeout: Duration = .seconds(60)
    /// Bytes of shared memory for large objects (default 30% of physical memory).
    public var objectStoreCapacity: UInt64 = UInt64(Double(ProcessInfo.processInfo.physicalMemory) * 0.3)
    /// Where objects spill when the store is full (nil: `spill` in the session directory).
    public var spillDirectory: String?
    /// How often the reaper checks for exited and long-idle workers.
    public var reapInterval: Duration = .milliseconds(50)
    /// How often it checks when no worker is starting.
    public var idleReapInterval: Duration = .milliseconds(500)

    /// This process's executable (workers of an embedded cluster run the driver's binary).
    public static var currentExecutable: String { WorkerProcess.currentExecutable }

    public init(sessionDir: String, tokenFile: String, workerExecutable: String? = NodeSettings.currentExecutable) {
        self.sessionDir = sessionDir
        self.tokenFile = tokenFile
        self.workerExecutable = workerExecutable
    }
}
