#if canImport(Glibc)
import Glibc
#endif
import Foundation
import StarlingCore
import StarlingLog
import StarlingWire

/// Settings of a head, with defaults.
public struct HeadSettings: Sendable {
    /// Where the head serves: `tcp://0.0.0.0:6379` for a cluster, an ipc address when embedded.
    public var listenAddress: Address
    /// Directory for the head's files (uploaded executables); must exist.
    public var sessionDir: String
    /// How often nodes must send a heartbeat (each carries the node's free resources, and about
    /// once a second its statistics), and the silence after which a node is dead.
    public var heartbeatInterval: Duration = .milliseconds(500)
    public var nodeTimeout: Duration = .seconds(5)
    /// Where the HTTP endpoint (metrics, health, JSON API, dashboard) listens; nil: none.
    /// Port 0 picks a free port (`Head.dashboardURL` tells which).
    public var httpHost = "127.0.0.1"
    public var httpPort: Int?
    /// Where events are published (PUB/SUB, signed frames); nil: not published.
    public var eventsAddress: Address?
    /// The host other hosts reach the head at, when it listens on a wildcard host (0.0.0.0).
    public var advertiseHost: String?

    public init(listenAddress: Address, sessionDir: String) {
        self.listenAddress = listenAddress
        self.sessionDir = sessionDir
    }
}

/// The head: the cluster's control store. One manager per domain, each plain state owned here:
/// `NodeDirectory` (registration, liveness, the cluster view nodes schedule and spill with),
/// `JobDirectory` (drivers' runs), `ExecutableStore` (jobs' binaries by SHA-256). Actors,
/// placement groups and the object directory join as their issues land.
///
/// A node is declared dead when its registration connection closes (a killed process) or its
/// heartbeats stop for `nodeTimeout`; a job ends when its driver's connection closes, and every
/// node is told to stop the job's workers.
public actor Head {
    public nonisolated let clusterID = UniqueID.random()
    public let settings: HeadSettings
    let token: ClusterToken
    var server: RPCServer?
    var nodes = NodeDirectory()
    var jobs = JobDirectory()
    /// Jobs started by `starling submit`, by submission id.
    var submissions: [String: Submission] = [:]
    var actors = ActorDirectory()
    var groups = PlacementGroupDirectory()
    var objectDirectory = ObjectDirectory()
    var events = EventLog()
    var eventWaiters: [CheckedContinuation<Void, Never>] = []
    var userMetrics = MetricsAggregator()
    var activity = TaskActivity()
    var nodeStats = NodeStatsHistory()
    var publisher: EventPublisher?
    var http: HTTPServer?
    var executables: ExecutableStore
    private var failures: [WorkerFailure] = []
    /// Connections to nodes and to actors' workers.
    let peers: ConnectionPool
    var actorRoundRobin = 0
    private var monitor: Task<Void, Never>?
    let startTime = Head.unixMs()
    let log = Logger(label: "head")

    /// The head's RPC address (valid after `start`).
    public var address: Address? { server?.address }

    public init(settings: HeadSettings, token: ClusterToken) {
        self.settings = settings
        self.token = token
        self.executables = ExecutableStore(directory: settings.sessionDir + "/executables")
        self.peers = ConnectionPool(token: token, name: "head")
    }

    public func start() throws {
        var routes = RouteTable()
        routes.add(HeadRPC.registerNode) { [self] request, context in try await registerNode(request, connection: context.connectionID) }
        routes.add(HeadRPC.unregisterNode) { [self] request, _ in await unregisterNode(request) }
        routes.add(HeadRPC.listNodes) { [self] request, _ in await listNodes(request) }
        routes.add(HeadRPC.getClusterView) { [self] request, _ in await clusterView(request) }
        routes.add(HeadRPC.getClusterInfo) { [self] _, _ in await clusterInfo() }
        routes.add(HeadRPC.registerJob) { [self] request, context in try await registerJob(request, connection: context.connectionID) }
        routes.add(HeadRPC.markJobFinished) { [self] request, _ in await markJobFinished(request) }
        routes.add(HeadRPC.uploadExecutable) { [self] request, _ in try await upload(request) }
        routes.add(HeadRPC.fetchExecutable) { [self] request, _ in try await fetch(request) }
        routes.add(HeadRPC.getJob) { [self] request, _ in try await job(request) }
        routes.add(HeadRPC.listJobs) { [self] request, _ in await listJobs(request) }
        routes.add(HeadRPC.submitJob) { [self] request, _ in try await submitJob(request) }
        routes.add(HeadRPC.stopJob) { [self] request, _ in try await stopJob(request) }
        routes.add(HeadRPC.getJobLogs) { [self] request, _ in try await jobLogs(request) }
        routes.add(HeadRPC.reportWorkerFailure) { [self] request, _ in await reportWorkerFailure(request) }
        routes.add(HealthMetricsRPC.heartbeat) { [self] request, _ in await heartbeat(request) }
        routes.add(HeadRPC.createActor) { [self] request, _ in try await createActor(request) }
        routes.add(HeadRPC.getActor) { [self] request, _ in try await getActor(request) }
        routes.add(HeadRPC.listActors) { [self] request, _ in await listActors(request) }
        routes.add(HeadRPC.killActor) { [self] request, _ in try await killActor(request) }
        routes.add(HeadRPC.createPlacementGroup) { [self] request, _ in try await createPlacementGroup(request) }
        routes.add(HeadRPC.getPlacementGroup) { [self] request, _ in try await getPlacementGroup(request) }
        routes.add(HeadRPC.removePlacementGroup) { [self] request, _ in await removePlacementGroup(request) }
        addHealthRoutes(to: &routes)
        routes.add(ObjectDirectoryRPC.addObjectLocations) { [self] request, _ in await addObjectLocations(request) }
        routes.add(ObjectDirectoryRPC.removeObjectLocations) { [self] request, _ in await removeObjectLocations(request) }
        routes.add(ObjectDirectoryRPC.getObjectLocations) { [self] request, _ in await objectLocations(request) }
        server = try RPCServer(listeningOn: settings.listenAddress, token: token, name: "head", routes: routes,
                               onConnectionClosed: { [weak self] connection in
                                   Task { await self?.connectionClosed(connection) }
                               })
        if let address = settings.eventsAddress { publisher = try EventPublisher(listeningOn: address, token: token) }
        if let port = settings.httpPort {
            http = try HTTPServer(host: settings.httpHost, port: port) { [weak self] request in
                guard let self else { return HTTPResponse(status: 503, text: "the head is stopping\n") }
                return await self.serveHTTP(request)
            }
        }
        let period = settings.heartbeatInterval
        monitor = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: period)
                await self?.declareSilentNodesDead()
            }
        }
    }

    /// The HTTP endpoint's URL (dashboard, `/metrics`), when it runs.
    public var dashboardURL: String? { http?.url }

    public func stop() async {
        await stopSubmissions()
        monitor?.cancel()
        http?.close()
        http = nil
        publisher?.close()
        publisher = nil
        wakeAllEventWaiters()
        peers.closeAll()
        await server?.close()
        server = nil
    }

    // MARK: - Nodes

    private func registerNode(_ request: RegisterNodeRequest, connection: UInt32) throws -> RegisterNodeReply {
        guard let info = request.node else { throw RPCFailure(.invalidArgument, "RegisterNode without a node") }
        try nodes.register(info, connection: connection, now: .now)
        log.info("node \(UniqueID(bytes: info.nodeId).short) joined at \(info.address?.url ?? "?") with \(ResourceSet(info.totalResources))")
        record(.nodeAdded, .info, "node \(UniqueID(bytes: info.nodeId).short) joined at \(info.address?.url ?? "?") with \(ResourceSet(info.totalResources))",
               node: UniqueID(bytes: info.nodeId))
        var reply = RegisterNodeReply()
        reply.clusterId = clusterID.bytes
        reply.heartbeatIntervalMs = UInt32(settings.heartbeatInterval.milliseconds)
        reply.nodeTimeoutMs = UInt32(settings.nodeTimeout.milliseconds)
        reply.clusterViewVersion = nodes.version
        reply.clusterView = nodes.alive.map(\.resources)
        return reply
    }

    private func unregisterNode(_ request: UnregisterNodeRequest) -> UnregisterNodeReply {
        let id = UniqueID(bytes: request.nodeId)
        if nodes.markDead(id, reason: request.reason.isEmpty ? "left the cluster" : request.reason, nowUnixMs: Self.unixMs()) {
            log.info("node \(id.short) left: \(request.reason)")
            record(.nodeRemoved, .info, "node \(id.short) left: \(request.reason.isEmpty ? "stopped" : request.reason)", node: id)
        }
        return UnregisterNodeReply()
    }

    private func listNodes(_ request: ListNodesRequest) -> ListNodesReply {
        var reply = ListNodesReply()
        reply.nodes = nodes.entries.values.map(\.info)
            .filter { request.includeDead || $0.state != .dead }
            .sorted { $0.startTimeUnixMs < $1.startTimeUnixMs }
        return reply
    }

    private func clusterView(_ request: GetClusterViewRequest) async -> GetClusterViewReply {
        // Long poll: wait (in short naps, bounded) for a version newer than the caller's.
        let deadline = ContinuousClock.now + .milliseconds(Int(min(request.waitMs, 30_000)))
        while nodes.version <= request.knownVersion, ContinuousClock.now < deadline, !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(20))
        }
        var reply = GetClusterViewReply()
        reply.version = nodes.version
        reply.nodes = nodes.alive.map(\.resources)
        return reply
    }

    private func clusterInfo() -> GetClusterInfoReply {
        var reply = GetClusterInfoReply()
        reply.clusterId = clusterID.bytes
        reply.headAddress = ProcessAddress(url: server?.address.description ?? "")
        reply.protocolVersion = starlingProtocolVersion
        reply.startTimeUnixMs = startTime
        reply.headNodeId = nodes.entries.values.first { $0.info.isHead && $0.info.state != .dead }?.info.nodeId ?? []
        reply.dashboardUrl = http?.url ?? ""
        if let address = publisher?.address {
            reply.pubsubUrl = (address.isWildcard ? settings.advertiseHost.map(address.withHost) : nil)?.description ?? address.description
        }
        return reply
    }

    private func heartbeat(_ request: HeartbeatRequest) -> HeartbeatReply {
        var reply = HeartbeatReply()
        let id = UniqueID(bytes: request.nodeId)
        if let stats = request.stats { recordStats(stats) }
        if !nodes.heartbeat(id, sequence: request.sequence, resources: request.resources, now: .now) {
            let reason = nodes.info(id)?.deathReason ?? "it is not registered"
            reply.status = Status(code: .nodeDied, message: "node \(id.short) is not alive in this cluster (\(reason)); register again with a new id")
        }
        reply.clusterViewVersion = nodes.version
        return reply
    }

    private func declareSilentNodesDead() async {
        for id in nodes.silent(longerThan: settings.nodeTimeout, now: .now) {
            await nodeDied(id, reason: "no heartbeat for \(settings.nodeTimeout)")
        }
    }

    private func nodeDied(_ id: UniqueID, reason: String) async {
        let url = nodes.info(id)?.address?.url ?? ""
        guard nodes.markDead(id, reason: reason, nowUnixMs: Self.unixMs()) else { return }
        log.warning("node \(id.short) is dead: \(reason)")
        record(.nodeDied, .error, "node \(id.short) died: \(reason)", node: id)
        peers.drop(url)
        objectDirectory.removeNode(id)
        activity.nodeDied(id.bytes)
        groupsLost(onNode: id, reason: reason)
        await actorsLost(onNode: id, reason: reason)
    }

    private func connectionClosed(_ connection: UInt32) async {
        for id in nodes.nodes(registeredOn: connection) {
            await nodeDied(id, reason: "its connection to the head closed (process exited or was killed)")
        }
        for id in jobs.jobs(drivenOver: connection) {
            guard jobs.finish(id, state: .stopped, exitCode: -1, message: "the driver disconnected", nowUnixMs: Self.unixMs()) else { continue }
            log.info("job \(id.short) ended: its driver disconnected")
            await jobEnded(id, reason: "job \(id.short)'s driver disconnected")
        }
    }

    private func jobEnded(_ id: UniqueID, reason: String) async {
        record(.jobFinished, .info, "\(reason) (\(jobs.info(id).map { "\($0.state)" } ?? "ended"))", job: id.bytes)
        activity.jobEnded(id.bytes)
        await endActors(ofJob: id)
        await endGroups(ofJob: id)
        await stopWorkers(of: id, reason: reason)
    }

    // MARK: - Jobs

    private func registerJob(_ request: RegisterJobRequest, connection: UInt32) throws -> RegisterJobReply {
        guard var job = request.job else { throw RPCFailure(.invalidArgument, "RegisterJob without a job") }
        // A submission id links a driver to `starling submit` only for the submission's own
        // driver: the first to register while it runs (programs it starts inherit the variable).
        if !job.submissionId.isEmpty {
            let running = submissions[job.submissionId].map { !$0.isFinished } ?? false
            let linked = jobs.all.contains { $0.submissionId == job.submissionId }
            if !running || linked { job.submissionId = "" }
        }
        let id = try jobs.register(job, connection: connection, nowUnixMs: Self.unixMs())
        log.info("job \(id.short) (\(job.name)) registered")
        record(.jobStarted, .info, "job \(id.short) (\(job.name)) started", job: id.bytes)
        var reply = RegisterJobReply()
        reply.jobId = id.bytes
        reply.executableNeeded = !job.executableHash.isEmpty && !executables.has(job.executableHash)
        return reply
    }

    private func markJobFinished(_ request: MarkJobFinishedRequest) async -> MarkJobFinishedReply {
        let id = UniqueID(bytes: request.jobId)
        let state: JobState = request.exitCode == 0 && request.message.isEmpty ? .succeeded : .failed
        if jobs.finish(id, state: state, exitCode: request.exitCode, message: request.message, nowUnixMs: Self.unixMs()) {
            await jobEnded(id, reason: "job \(id.short) finished")
        }
        return MarkJobFinishedReply()
    }

    private func job(_ request: GetJobRequest) throws -> GetJobReply {
        var reply = GetJobReply()
        if !request.submissionId.isEmpty {
            guard let info = submittedJob(request.submissionId) else {
                throw RPCFailure(.notFound, "no submitted job \(request.submissionId) on this cluster")
            }
            reply.job = info
            return reply
        }
        let id = UniqueID(bytes: request.jobId)
        guard let info = jobs.info(id) else { throw RPCFailure(.notFound, "no job \(id.short) on this cluster") }
        reply.job = info.submissionId.isEmpty ? info : (submittedJob(info.submissionId) ?? info)
        return reply
    }

    private func listJobs(_ request: ListJobsRequest) -> ListJobsReply {
        var reply = ListJobsReply()
        // Submitted jobs as their submission describes them (also before or without a driver).
        let listed = jobs.all.filter { $0.submissionId.isEmpty } + submissions.keys.compactMap(submittedJob)
        reply.jobs = listed.filter { request.includeFinished || $0.state == .running || $0.state == .pending }
            .sorted { $0.startTimeUnixMs < $1.startTimeUnixMs }
        return reply
    }

    private func upload(_ request: UploadExecutableRequest) throws -> UploadExecutableReply {
        let (received, complete) = try executables.append(request)
        var reply = UploadExecutableReply()
        reply.received = received
        reply.complete = complete
        return reply
    }

    private func fetch(_ request: FetchExecutableRequest) throws -> FetchExecutableReply {
        let chunk = try executables.read(request.executableHash, offset: request.offset,
                                         maxBytes: request.maxBytes == 0 ? ExecutableStore.maxChunk : Int(request.maxBytes))
        var reply = FetchExecutableReply()
        reply.data = chunk.data
        reply.totalSize = chunk.size
        reply.executableName = chunk.name
        return reply
    }

    /// Tells every live node to stop the job's workers (a finished job leaves nothing behind).
    private func stopWorkers(of job: UniqueID, reason: String) async {
        var request = StopWorkersRequest()
        request.jobId = job.bytes
        request.force = true
        request.reason = reason
        for entry in nodes.alive {
            let id = UniqueID(bytes: entry.info.nodeId)
            guard let client = try? await nodeClient(url: entry.info.address?.url ?? "") else { continue }
            do {
                _ = try await client.call(NodeManagerRPC.stopWorkers, request, timeout: .seconds(5))
            } catch {
                log.info("node \(id.short) did not stop job \(job.short)'s workers: \(error)")
            }
        }
    }

    func nodeClient(url: String) async throws -> RPCClient {
        try await peers.client(url)
    }

    // MARK: - Workers

    private func reportWorkerFailure(_ request: ReportWorkerFailureRequest) async -> ReportWorkerFailureReply {
        if let failure = request.failure {
            if !failure.intentional {
                let how = failure.signal != 0 ? "killed by signal \(failure.signal)" : "exited with code \(failure.exitCode)"
                var labels = ["log_path": failure.logPath, "log_tail": failure.logTail, "pid": String(failure.pid)]
                if failure.signal != 0 { labels["signal"] = String(failure.signal) } else { labels["exit_code"] = String(failure.exitCode) }
                record(.workerDied, .warning, "worker \(UniqueID(bytes: failure.workerId).short) (pid \(failure.pid)) on node \(UniqueID(bytes: failure.nodeId).short) \(how)"
                       + (failure.reason.isEmpty ? "" : ": \(failure.reason)") + " (log: \(failure.logPath))",
                       node: UniqueID(bytes: failure.nodeId), job: failure.jobId, labels: labels)
            }
            activity.reporterDied(failure.workerId)
            failures.append(failure)
            if failures.count > 1000 { failures.removeFirst(failures.count - 1000) }
            await actorWorkerDied(failure)
        }
        return ReportWorkerFailureReply()
    }

    static func unixMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
}

extension Duration {
    /// Whole milliseconds (rounded down).
    var milliseconds: Int64 { components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000 }
}
