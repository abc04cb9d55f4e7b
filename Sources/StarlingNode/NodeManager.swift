#if canImport(Glibc)
import Glibc
#endif
import Foundation
import StarlingCore
import StarlingLog
import StarlingWire

/// A node manager: owns this host's resources and worker pool and leases workers to owners.
///
/// An owner asks its node for a lease fitting a resource shape and a scheduling strategy. The
/// node decides with the cluster view it keeps from the head: grant a local worker once the
/// resources are free, or answer with another node to ask (spillback; that node grants or
/// queues, it never spills again). The owner then pushes tasks straight to the worker until it
/// returns the lease. A shape no node could ever fit fails at once (`INFEASIBLE`), or waits
/// with a logged warning when the request says so.
public actor NodeManager {
    public nonisolated let nodeID = UniqueID.random()
    public let settings: NodeSettings
    let token: ClusterToken
    var server: RPCServer?
    var available: ResourceSet
    /// Bundle reservations and releases applied so far (reported with `available`, so the head
    /// can tell a report taken before its latest change from one taken after).
    var bundleEpoch: UInt64 = 0
    var workers: [UniqueID: WorkerRecord] = [:]
    var idle: [UniqueID] = []
    var idleSince: [UniqueID: ContinuousClock.Instant] = [:]
    var starting: [UniqueID: CheckedContinuation<Void, Error>] = [:]
    var leases: [UniqueID: Lease] = [:]
    /// Connections of owners that went away (a lease granted to one is taken back at once).
    var goneOwners: Set<UInt32> = []
    var waiters: [CheckedContinuation<Void, Never>] = []
    var queuedLeases = 0
    var bundles: [BundleKey: Bundle] = [:]
    var store: ObjectStore
    /// Pulls of objects from other nodes in progress (one per object at a time).
    var pulls: [UniqueID: Task<ShmLocation, Error>] = [:]
    /// Readers of objects created here and not sealed yet (their writers seal without waiting
    /// for the answer): woken at each seal, free and departed writer, and at their deadline.
    var sealWaiters: [UniqueID: [CheckedContinuation<Void, Never>]] = [:]
    /// Objects created here that another node asked about or pulled: copies of them may lie
    /// elsewhere. Freeing any other object created here needs no word with the directory.
    var lentObjects: Set<UniqueID> = []
    /// Object locations not yet reported to the head's object directory.
    var unreportedLocations: [(location: ObjectLocation, held: Bool)] = []
    var directoryReport: Task<Void, Never>?
    /// Connections to other nodes (object pulls, frees).
    let peers: ConnectionPool
    /// Second connections to other nodes, for object chunks: two TCP streams carry more than
    /// one through NNG.
    let chunkPeers: ConnectionPool
    /// The connections workers registered on, with their pool (job): what they store is the job's.
    var workerConnections: [UInt32: [UInt8]] = [:]
    var reaper: Task<Void, Never>?
    var stopping = false
    /// What stopped the node on its own (the head declared it dead, or is gone).
    var failure: String?
    var failureWaiters: [CheckedContinuation<String, Never>] = []
    let executables: JobExecutables
    // The cluster as the head last described it (other nodes; this one is tracked exactly).
    var head: RPCClient?
    var clusterView: [UniqueID: NodeResources] = [:]
    var viewVersion: UInt64 = 0
    var heartbeats: Task<Void, Never>?
    /// Heartbeats per statistics report (about one a second).
    var statsEvery: UInt64 = 1
    var roundRobin = 0
    var hostStats = HostStats()
    let log = Logger(label: "node")

    struct WorkerRecord {
        let pid: pid_t
        let logPath: String
        /// The job whose executable it runs (empty: the node's own `workerExecutable`).
        let pool: [UInt8]
        var url: String?
        /// The CPUs its threads are kept on since its last lease (nil: all of the node's).
        var cpus: [Int]? = nil
    }

    struct Lease {
        let worker: UniqueID
        let demand: ResourceSet
        let owner: UInt32
        /// Set for a worker dedicated to an actor (the head owns such leases and ends them).
        var actor: [UInt8] = []
        /// The placement-group bundle its resources come from (nil: the node's own).
        var bundle: BundleKey?
        /// The task the lease was asked for (`starling list tasks`).
        var taskName = ""
    }

    /// A bundle of a placement group reserved on this node.
    struct BundleKey: Hashable {
        let group: [UInt8]
        let index: UInt32
    }

    struct Bundle {
        let total: ResourceSet
        var available: ResourceSet
    }

    /// The node's RPC address (valid after `start`).
    public var address: Address? { server?.address }

    /// The address other processes dial: the listener's, with a wildcard host replaced by
    /// `settings.advertiseHost`.
    public var advertisedAddress: Address? {
        guard let address = server?.address else { return nil }
        if address.isWildcard, let host = settings.advertiseHost { return address.withHost(host) }
        return address
    }

    /// The CPUs this node's workers may use: its process's, before a driver hosting the node
    /// kept its own threads on one of them.
    let workerCPUs = CPUAffinity.original

    public init(settings: NodeSettings, token: ClusterToken) {
        self.settings = settings
        self.token = token
        self.available = settings.resources
        self.executables = JobExecutables(directory: settings.sessionDir + "/job-executables")
        self.store = ObjectStore(capacity: settings.objectStoreCapacity, nodeID: nodeID,
                                 spillDirectory: settings.spillDirectory ?? settings.sessionDir + "/spill")
        self.peers = ConnectionPool(token: token, name: "node")
        self.chunkPeers = ConnectionPool(token: token, name: "node-chunks")
    }

    /// Starts serving, registers with the head (if any) and prestarts workers.
    public func start() async throws {
        var routes = RouteTable()
        routes.add(NodeManagerRPC.requestWorkerLease) { [self] request, context in try await requestLease(request, owner: context.connectionID) }
        routes.add(NodeManagerRPC.returnWorkerLease) { [self] request, _ in await returnLease(request) }
        routes.add(NodeManagerRPC.registerWorker) { [self] request, context in try await registerWorker(request, connection: context.connectionID) }
        routes.add(NodeManagerRPC.stopWorkers) { [self] request, _ in await stopWorkers(request) }
        routes.add(NodeManagerRPC.startWorkers) { [self] request, _ in await startWorkers(request) }
        routes.add(NodeManagerRPC.listWorkers) { [self] request, _ in await listWorkers(request) }
        routes.add(NodeManagerRPC.prepareBundles) { [self] request, _ in try await prepareBundles(request) }
        routes.add(NodeManagerRPC.commitBundles) { _, _ in CommitBundlesReply() }
        routes.add(NodeManagerRPC.releaseBundles) { [self] request, _ in await releaseBundles(request) }
        addObjectRoutes(to: &routes)
        addLogRoutes(to: &routes)
        let listen = try settings.listenAddress ?? Address("ipc://\(settings.sessionDir)/node-\(nodeID.short).sock")
        server = try RPCServer(listeningOn: listen, token: token, name: "node \(nodeID.short)", routes: routes,
                               onConnectionClosed: { [weak self] connection in
                                   Task { await self?.ownerGone(connection) }
                               })
        reaper = Task { [weak self] in
            while !Task.isCancelled {
                // Often while workers start (a failed start is noticed at once), rarely when
                // idle (an idle node should cost next to nothing).
                guard let interval = await self?.reapPeriod else { return }
                try? await Task.sleep(for: interval)
                await self?.reapWorkers()
                await self?.stopIdleWorkers()
                await self?.coolObjectStore()
            }
        }
        if let headAddress = settings.headAddress {
            do {
                try await joinCluster(at: headAddress)
            } catch {
                await stop()
                throw error
            }
        }
        if settings.workerExecutable != nil {
            for _ in 0..<max(0, min(settings.prestartWorkers, settings.maxWorkers)) {
                Task { [weak self] in await self?.prestartWorker(pool: []) }
            }
        }
    }

    /// Stops serving and kills every worker this node started.
    public func stop() async {
        guard !stopping else { return }
        stopping = true
        wakeSealWaiters()
        reaper?.cancel()
        heartbeats?.cancel()
        if let head {
            var request = UnregisterNodeRequest()
            request.nodeId = nodeID.bytes
            request.reason = "stopped"
            _ = try? await head.call(HeadRPC.unregisterNode, request, timeout: .seconds(1))
            head.close()
        }
        head = nil
        for (_, worker) in workers { Self.kill(worker.pid) }
        workers.removeAll()
        idle.removeAll()
        store.removeAll()
        for (_, pull) in pulls { pull.cancel() }
        directoryReport?.cancel()
        peers.closeAll()
        chunkPeers.closeAll()
        for (_, continuation) in starting { continuation.resume(throwing: RPCFailure(.unavailable, "node is stopping")) }
        starting.removeAll()
        wakeWaiters()
        await server?.close()
        server = nil
    }

    /// Returns when the node stopped working on its own (declared dead by the head, or the
    /// head is gone), with the reason; a process hosting a node exits then.
    public func failed() async -> String {
        if let failure { return failure }
        return await withCheckedContinuation { failureWaiters.append($0) }
    }

    func fail(_ reason: String) {
        // A heartbeat answered after `stop` unregistered the node is no failure.
        guard failure == nil, !stopping else { return }
        log.error("node \(nodeID.short) stops: \(reason)")
        failure = reason
        for waiter in failureWaiters { waiter.resume(returning: reason) }
        failureWaiters.removeAll()
    }

    // MARK: - Leases

    private func requestLease(_ request: RequestWorkerLeaseRequest, owner: UInt32) async throws -> RequestWorkerLeaseReply {
        let demand = ResourceSet(request.resources)
        let name = request.taskName.isEmpty ? "task" : request.taskName
        if !demand.negativeNames.isEmpty {
            throw RPCFailure(.invalidArgument, "\(name) asks for negative amounts of \(demand.negativeNames.joined(separator: ", "))")
        }
        if request.strategy?.kind == .placementGroup {
            return try await requestBundleLease(request, demand: demand, name: name, owner: owner)
        }
        let strategy = Self.strategy(request.strategy)
        var warnedAt: ContinuousClock.Instant?
        var askedHead = false
        queuedLeases += 1
        defer { queuedLeases -= 1 }
        while true {
            if stopping { throw RPCFailure(.unavailable, "node \(nodeID.short) is stopping") }
            switch decide(demand, strategy: strategy, taskName: name) {
            case let .infeasible(reason):
                // This node's view comes with heartbeats: a node that joined since (the one a
                // task is pinned to, or the only one it fits) is missing from it. Ask once.
                if !askedHead {
                    askedHead = true
                    if await refreshClusterView() { continue }
                }
                guard request.queueIfInfeasible else { throw RPCFailure(.infeasible, reason) }
                if warnedAt.map({ ContinuousClock.now - $0 > .seconds(10) }) ?? true {
                    log.warning("\(reason); waiting because the task asked to (a node that fits may join)")
                    warnedAt = .now
                }
            case let .place(id), let .wait(id):
                let target = UniqueID(hex: id) ?? nodeID
                if target != nodeID, !request.grantOrReject, let other = clusterView[target]?.address {
                    var reply = RequestWorkerLeaseReply()
                    reply.spillback = ProcessAddress(url: other.url, nodeId: target.bytes)
                    return reply
                }
                if !settings.resources.fits(demand) {
                    // Spilled here on a stale view: this node can never fit it; the owner starts over.
                    throw RPCFailure(.unavailable, "node \(nodeID.short) has \(settings.resources), less than the \(demand) \(name) needs")
                }
                if available.fits(demand) {
                    return try await grant(request, demand: demand, owner: owner)
                }
            }
            // Wait for resources to come back or the cluster view to change, then decide again.
            await withCheckedContinuation { waiters.append($0) }
        }
    }

    private func grant(_ request: RequestWorkerLeaseRequest, demand: ResourceSet, owner: UInt32,
                       bundle: BundleKey? = nil) async throws -> RequestWorkerLeaseReply {
        let pending = Lease(worker: UniqueID(bytes: []), demand: demand, owner: owner, actor: request.actorId, bundle: bundle)
        if let bundle, let reserved = bundles[bundle] {
            // Read first, then write: `bundles[k]?.x = bundles[k]!.x - d` overlaps two accesses.
            bundles[bundle]?.available = reserved.available - demand
        } else {
            available = available - demand
        }
        let workerID: UniqueID
        do {
            workerID = try await acquireWorker(pool: poolKey(request.jobId), job: request.jobId)
        } catch {
            release(pending)
            throw error
        }
        if goneOwners.contains(owner) {
            makeIdle(workerID)
            release(pending)
            throw RPCFailure(.unavailable, "the owner asking for this lease has gone")
        }
        if let bundle, bundles[bundle] == nil {
            // The group was removed while the worker started: its resources went back whole.
            makeIdle(workerID)
            throw RPCFailure(.notFound, "placement group \(UniqueID(bytes: bundle.group).short) was removed")
        }
        let leaseID = request.leaseId.isEmpty ? UniqueID.random() : UniqueID(bytes: request.leaseId)
        leases[leaseID] = Lease(worker: workerID, demand: demand, owner: owner, actor: request.actorId, bundle: bundle, taskName: request.taskName)
        placeWorker(workerID, demand: demand)
        var reply = RequestWorkerLeaseReply()
        reply.granted = true
        reply.workerAddress = ProcessAddress(url: workers[workerID]?.url ?? "", nodeId: nodeID.bytes, workerId: workerID.bytes)
        reply.grantedResources = demand.quantities
        reply.workerPid = workers[workerID]?.pid ?? 0
        return reply
    }

    /// The scheduling decision over this node (exact) and the others (as last reported).
    private func decide(_ demand: ResourceSet, strategy: StarlingCore.SchedulingStrategy, taskName: String) -> PlacementDecision {
        var views = [NodeView(id: nodeID.hex, total: settings.resources, available: available)]
        for (id, node) in clusterView where id != nodeID && !node.draining {
            views.append(NodeView(id: id.hex, total: ResourceSet(node.total), available: ResourceSet(node.available)))
        }
        if case .spread = strategy { roundRobin &+= 1 }
        return SchedulingPolicy().place(demand, strategy: strategy, nodes: views, localNodeID: nodeID.hex,
                                        roundRobin: roundRobin, taskName: taskName)
    }

    /// The scheduler's strategy for a strategy as it travels.
    public static func strategy(_ proto: StarlingWire.SchedulingStrategy?) -> StarlingCore.SchedulingStrategy {
        guard let proto else { return .hybrid }
        switch proto.kind {
        case .spread: return .spread
        case .nodeAffinity: return .nodeAffinity(nodeID: UniqueID(bytes: proto.nodeId).hex, soft: proto.soft)
        default: return .hybrid
        }
    }

    private func returnLease(_ request: ReturnWorkerLeaseRequest) -> ReturnWorkerLeaseReply {
        let leaseID = UniqueID(bytes: request.leaseId)
        guard let lease = leases.removeValue(forKey: leaseID) else { return ReturnWorkerLeaseReply() }
        if request.workerFailed || request.workerExiting {
            if let worker = workers.removeValue(forKey: lease.worker) { Self.kill(worker.pid) }
        } else if workers[lease.worker] != nil {
            makeIdle(lease.worker)
        }
        release(lease)
        return ReturnWorkerLeaseReply()
    }

    /// An owner's connection closed: its leases come back, and their workers (which may still
    /// run the dead owner's tasks, whose results have nowhere to go) are stopped.
    private func ownerGone(_ connection: UInt32) {
        goneOwners.insert(connection)
        store.freeAll(ownedBy: connection)
        store.unpinAll(for: connection)
        wakeSealWaiters()
        reportDropped()
        workerConnections[connection] = nil
        for (leaseID, lease) in leases where lease.owner == connection {
            leases[leaseID] = nil
            if let worker = workers.removeValue(forKey: lease.worker) {
                log.info("reclaiming lease \(leaseID.short) of a departed owner; stopping worker \(lease.worker.short)")
                Self.kill(worker.pid)
            }
            release(lease)
        }
    }

    /// A lease's resources go back to its bundle (if the bundle is still reserved) or the node.
    func release(_ lease: Lease) {
        if let bundle = lease.bundle {
            if let reserved = bundles[bundle] { bundles[bundle]?.available = reserved.available + lease.demand }
        } else {
            available = available + lease.demand
        }
        wakeWaiters()
    }

    // MARK: - Placement-group bundles

    /// A lease inside a bundle of a placement group reserved here: waits for room in the bundle.
    private func requestBundleLease(_ request: RequestWorkerLeaseRequest, demand: ResourceSet, name: String,
                                    owner: UInt32) async throws -> RequestWorkerLeaseReply {
        let group = request.strategy?.placementGroupId ?? []
        let wanted = request.strategy?.bundleIndex ?? -1
        let groupName = UniqueID(bytes: group).short
        while true {
            if stopping { throw RPCFailure(.unavailable, "node \(nodeID.short) is stopping") }
            let candidates = bundles.filter { $0.key.group == group && (wanted < 0 || Int64($0.key.index) == Int64(wanted)) }
                .sorted { $0.key.index < $1.key.index }
            guard !candidates.isEmpty else {
                throw RPCFailure(.notFound, "placement group \(groupName) has \(wanted < 0 ? "no bundle" : "no bundle \(wanted)") on node \(nodeID.short) (removed, or placed elsewhere)")
            }
            guard candidates.contains(where: { $0.value.total.fits(demand) }) else {
                throw RPCFailure(.infeasible, "\(name) needs \(demand) but bundle \(candidates[0].key.index) of placement group \(groupName) has \(candidates[0].value.total) in all")
            }
            if let (key, _) = candidates.first(where: { $0.value.available.fits(demand) }) {
                return try await grant(request, demand: demand, owner: owner, bundle: key)
            }
            await withCheckedContinuation { waiters.append($0) }
        }
    }

    private func prepareBundles(_ request: PrepareBundlesRequest) throws -> PrepareBundlesReply {
        for bundle in request.bundles where !ResourceSet(bundle.resources).negativeNames.isEmpty {
            throw RPCFailure(.invalidArgument, "bundle \(bundle.bundleIndex) asks for negative amounts")
        }
        let total = request.bundles.reduce(ResourceSet()) { $0 + ResourceSet($1.resources) }
        guard available.fits(total) else {
            throw RPCFailure(.resourceExhausted, "node \(nodeID.short) has \(available) free, less than the \(total) the bundles need")
        }
        for reservation in request.bundles {
            let key = BundleKey(group: reservation.placementGroupId, index: reservation.bundleIndex)
            guard bundles[key] == nil else { continue }
            let resources = ResourceSet(reservation.resources)
            bundles[key] = Bundle(total: resources, available: resources)
            available = available - resources
        }
        bundleEpoch += 1
        return PrepareBundlesReply(bundleEpoch: bundleEpoch)
    }

    /// Gives the bundles' resources back; workers leased inside them are stopped (their
    /// tasks and actors end with the group, as in Ray).
    private func releaseBundles(_ request: ReleaseBundlesRequest) -> ReleaseBundlesReply {
        let indexes = Set(request.bundleIndexes)
        for (key, bundle) in bundles where key.group == request.placementGroupId && (indexes.isEmpty || indexes.contains(key.index)) {
            for (leaseID, lease) in leases where lease.bundle == key {
                leases[leaseID] = nil
                if let worker = workers.removeValue(forKey: lease.worker) { Self.kill(worker.pid) }
            }
            bundles[key] = nil
            available = available + bundle.total
        }
        wakeWaiters()
        bundleEpoch += 1
        return ReleaseBundlesReply(bundleEpoch: bundleEpoch)
    }

    /// Lease requests waiting for resources decide again.
    func wakeWaiters() {
        let woken = waiters
        waiters.removeAll()
        for waiter in woken { waiter.resume() }
    }

    /// The workers of one job run its executable: they are pooled per job, except when the node
    /// runs one executable for all (embedded).
    func poolKey(_ job: [UInt8]) -> [UInt8] {
        settings.workerExecutable == nil ? job : []
    }

    static func kill(_ pid: pid_t) {
        Glibc.kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
    }
}
