#if canImport(Glibc)
import Glibc
#endif
import Foundation
import StarlingCore
import StarlingLog
import StarlingWire

/// Settings of one node manager, with defaults.
public struct NodeSettings: Sendable {
    /// Resources this node offers; CPU defaults to the number of cores.
    public var resources: ResourceSet = ["CPU": Double(ProcessInfo.processInfo.activeProcessorCount)]
    /// Directory for sockets and worker logs (must exist).
    public var sessionDir: String
    /// The token file workers read.
    public var tokenFile: String
    /// The executable workers run (the job's binary).
    public var workerExecutable: String
    /// Most worker processes alive at once.
    public var maxWorkers: Int = 32
    /// How long a new worker may take to register before it counts as failed.
    public var workerStartTimeout: Duration = .seconds(30)
    /// Workers started with the node, before any lease asks for one (first tasks start faster).
    public var prestartWorkers: Int = 1
    /// An idle worker beyond the prestarted ones is stopped after this long without a lease.
    public var idleWorkerTimeout: Duration = .seconds(60)

    /// This process's executable (workers of an embedded cluster run the driver's binary).
    public static var currentExecutable: String { WorkerProcess.currentExecutable }

    public init(sessionDir: String, tokenFile: String, workerExecutable: String = NodeSettings.currentExecutable) {
        self.sessionDir = sessionDir
        self.tokenFile = tokenFile
        self.workerExecutable = workerExecutable
    }
}

/// A node manager: owns this host's resources and worker pool and leases workers to owners.
///
/// An owner asks for a lease fitting a resource shape; the node grants an idle (or new) worker
/// once the resources are free, and the owner pushes tasks straight to that worker until it
/// returns the lease. A shape no node resource could ever fit fails at once (`INFEASIBLE`).
public actor NodeManager {
    public let nodeID = UniqueID.random()
    public let settings: NodeSettings
    private let token: ClusterToken
    private var server: RPCServer?
    private var available: ResourceSet
    private var workers: [UniqueID: WorkerRecord] = [:]
    private var idle: [UniqueID] = []
    private var idleSince: [UniqueID: ContinuousClock.Instant] = [:]
    private var starting: [UniqueID: CheckedContinuation<Void, Error>] = [:]
    private var leases: [UniqueID: (worker: UniqueID, demand: ResourceSet, owner: UInt32)] = [:]
    /// Connections of owners that went away (a lease granted to one is taken back at once).
    private var goneOwners: Set<UInt32> = []
    private var waiters: [CheckedContinuation<Void, Never>] = []
    private var reaper: Task<Void, Never>?
    private var stopping = false
    private let log = Logger(label: "node")

    struct WorkerRecord {
        let pid: pid_t
        let logPath: String
        var url: String?
    }

    /// The node's RPC address (valid after `start`).
    public var address: Address? { server?.address }

    public init(settings: NodeSettings, token: ClusterToken) {
        self.settings = settings
        self.token = token
        self.available = settings.resources
    }

    /// Starts serving on an ipc socket in the session directory.
    public func start() throws {
        var routes = RouteTable()
        routes.add(NodeManagerRPC.requestWorkerLease) { [self] request, context in try await requestLease(request, owner: context.connectionID) }
        routes.add(NodeManagerRPC.returnWorkerLease) { [self] request, _ in await returnLease(request) }
        routes.add(NodeManagerRPC.registerWorker) { [self] request, _ in try await registerWorker(request) }
        server = try RPCServer(listeningOn: Address("ipc://\(settings.sessionDir)/node-\(nodeID.short).sock"),
                               token: token, name: "node \(nodeID.short)", routes: routes,
                               onConnectionClosed: { [weak self] connection in
                                   Task { await self?.ownerGone(connection) }
                               })
        reaper = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(50))
                await self?.reapWorkers()
                await self?.stopIdleWorkers()
            }
        }
        for _ in 0..<max(0, min(settings.prestartWorkers, settings.maxWorkers)) {
            Task { [weak self] in await self?.prestartWorker() }
        }
    }

    private func prestartWorker() async {
        guard let id = try? await startWorker() else { return }
        makeIdle(id)
    }

    private func makeIdle(_ id: UniqueID) {
        idle.append(id)
        idleSince[id] = .now
    }

    private func stopIdleWorkers() {
        let now = ContinuousClock.now
        while idle.count > settings.prestartWorkers, let oldest = idle.first,
              let since = idleSince[oldest], now - since > settings.idleWorkerTimeout {
            idle.removeFirst()
            idleSince[oldest] = nil
            if let worker = workers.removeValue(forKey: oldest) {
                log.debug("stopping worker \(oldest.short): idle for \(settings.idleWorkerTimeout)")
                kill(worker.pid, SIGKILL)
                var status: Int32 = 0
                waitpid(worker.pid, &status, 0)
            }
        }
    }

    /// Stops serving and kills every worker this node started.
    public func stop() async {
        stopping = true
        reaper?.cancel()
        for (_, worker) in workers {
            kill(worker.pid, SIGKILL)
            var status: Int32 = 0
            waitpid(worker.pid, &status, 0)
        }
        workers.removeAll()
        idle.removeAll()
        for (_, continuation) in starting { continuation.resume(throwing: RPCFailure(.unavailable, "node is stopping")) }
        starting.removeAll()
        for waiter in waiters { waiter.resume() }
        waiters.removeAll()
        await server?.close()
        server = nil
    }


    // MARK: - Leases

    private func requestLease(_ request: RequestWorkerLeaseRequest, owner: UInt32) async throws -> RequestWorkerLeaseReply {
        let demand = ResourceSet(request.resources)
        if !demand.negativeNames.isEmpty {
            throw RPCFailure(.invalidArgument, "\(request.taskName) asks for negative amounts of \(demand.negativeNames.joined(separator: ", "))")
        }
        let view = NodeView(id: nodeID.hex, total: settings.resources, available: available)
        if case let .infeasible(reason) = SchedulingPolicy().place(demand, strategy: .hybrid, nodes: [view],
                                                                 localNodeID: nodeID.hex, taskName: request.taskName.isEmpty ? "task" : request.taskName) {
            throw RPCFailure(.infeasible, reason)
        }
        while !available.fits(demand) {
            if stopping { throw RPCFailure(.unavailable, "node \(nodeID.short) is stopping") }
            await withCheckedContinuation { waiters.append($0) }
        }
        available = available - demand
        let workerID: UniqueID
        do {
            workerID = try await acquireWorker()
        } catch {
            release(demand)
            throw error
        }
        if goneOwners.contains(owner) {
            makeIdle(workerID)
            release(demand)
            throw RPCFailure(.unavailable, "the owner asking for this lease has gone")
        }
        let leaseID = request.leaseId.isEmpty ? UniqueID.random() : UniqueID(bytes: request.leaseId)
        leases[leaseID] = (workerID, demand, owner)
        var reply = RequestWorkerLeaseReply()
        reply.granted = true
        reply.workerAddress = ProcessAddress(url: workers[workerID]?.url ?? "", nodeId: nodeID.bytes, workerId: workerID.bytes)
        reply.grantedResources = demand.quantities
        reply.workerPid = workers[workerID]?.pid ?? 0
        return reply
    }

    private func returnLease(_ request: ReturnWorkerLeaseRequest) -> ReturnWorkerLeaseReply {
        let leaseID = UniqueID(bytes: request.leaseId)
        guard let lease = leases.removeValue(forKey: leaseID) else { return ReturnWorkerLeaseReply() }
        if request.workerFailed || request.workerExiting {
            if let worker = workers.removeValue(forKey: lease.worker) { kill(worker.pid, SIGKILL) }
        } else if workers[lease.worker] != nil {
            makeIdle(lease.worker)
        }
        release(lease.demand)
        return ReturnWorkerLeaseReply()
    }

    /// An owner's connection closed: its leases come back, and their workers (which may still
    /// run the dead owner's tasks, whose results have nowhere to go) are stopped.
    private func ownerGone(_ connection: UInt32) {
        goneOwners.insert(connection)
        for (leaseID, lease) in leases where lease.owner == connection {
            leases[leaseID] = nil
            if let worker = workers.removeValue(forKey: lease.worker) {
                log.info("reclaiming lease \(leaseID.short) of a departed owner; stopping worker \(lease.worker.short)")
                kill(worker.pid, SIGKILL)
                var status: Int32 = 0
                waitpid(worker.pid, &status, 0)
            }
            release(lease.demand)
        }
    }

    private func release(_ demand: ResourceSet) {
        available = available + demand
        let woken = waiters
        waiters.removeAll()
        for waiter in woken { waiter.resume() }
    }

    // MARK: - Worker pool

    private func acquireWorker() async throws -> UniqueID {
        if let id = idle.popLast() {
            idleSince[id] = nil
            return id
        }
        return try await startWorker()
    }

    /// Starts a worker process and waits until it registered.
    private func startWorker() async throws -> UniqueID {
        if stopping { throw RPCFailure(.unavailable, "node \(nodeID.short) is stopping") }
        guard workers.count < settings.maxWorkers else {
            throw RPCFailure(.resourceExhausted, "node \(nodeID.short) already runs its maximum of \(settings.maxWorkers) workers")
        }
        let id = UniqueID.random()
        let logDir = settings.sessionDir + "/logs"
        try? FileManager.default.createDirectory(atPath: logDir, withIntermediateDirectories: true)
        let spawned = try WorkerProcess.spawn(
            executable: settings.workerExecutable,
            environment: ProcessInfo.processInfo.environment.merging([
                WorkerEnvironment.workerID: id.hex,
                WorkerEnvironment.nodeURL: server?.address.description ?? "",
                WorkerEnvironment.tokenFile: settings.tokenFile,
                WorkerEnvironment.sessionDir: settings.sessionDir,
            ]) { _, new in new },
            logPath: "\(logDir)/worker-\(id.short).log")
        workers[id] = WorkerRecord(pid: spawned.pid, logPath: spawned.logPath, url: nil)
        log.debug("started worker \(id.short) (pid \(spawned.pid))")
        let timeout = settings.workerStartTimeout
        let watchdog = Task { [weak self] in
            try await Task.sleep(for: timeout)
            await self?.failStart(id, "did not register within \(timeout)")
        }
        defer { watchdog.cancel() }
        try await withCheckedThrowingContinuation { starting[id] = $0 }
        return id
    }

    private func registerWorker(_ request: RegisterWorkerRequest) throws -> RegisterWorkerReply {
        let id = UniqueID(bytes: request.workerId)
        guard workers[id] != nil, let url = request.address?.url else {
            throw RPCFailure(.notFound, "worker \(id.short) was not started by node \(nodeID.short)")
        }
        workers[id]?.url = url
        starting.removeValue(forKey: id)?.resume()
        var reply = RegisterWorkerReply()
        reply.nodeId = nodeID.bytes
        reply.sessionDir = settings.sessionDir
        return reply
    }

    private func failStart(_ id: UniqueID, _ reason: String) {
        guard let continuation = starting.removeValue(forKey: id) else { return }
        let logPath = workers[id]?.logPath ?? "?"
        if let worker = workers.removeValue(forKey: id) { kill(worker.pid, SIGKILL) }
        continuation.resume(throwing: RPCFailure(.workerDied, "worker \(id.short) \(reason); see its log \(logPath)"))
    }

    private func reapWorkers() {
        for (id, worker) in workers {
            var status: Int32 = 0
            guard waitpid(worker.pid, &status, WNOHANG) == worker.pid else { continue }
            let how = WorkerProcess.describe(status)
            log.info("worker \(id.short) (pid \(worker.pid)) \(how)")
            if starting[id] != nil {
                failStart(id, "\(how) while starting")
                continue
            }
            workers[id] = nil
            idle.removeAll { $0 == id }
            idleSince[id] = nil
            // A leased worker's resources come back now; its owner sees the lost connection
            // and returns the lease (ignored then) before retrying elsewhere.
            for (leaseID, lease) in leases where lease.worker == id {
                leases[leaseID] = nil
                release(lease.demand)
            }
        }
    }
}
