import StarlingCore
import StarlingLog
import StarlingNode
import StarlingWire

/// The owner's side of the task path: lease workers by scheduling key (resource shape and
/// strategy) from the local node, follow spillbacks to other nodes, and push tasks straight to
/// the leased workers, reusing a lease while there is work of its key.
///
/// Batching adapts to the tasks: a lease takes up to `maxBatch` tasks at once when they run in
/// microseconds, one at a time when they run long (so long tasks spread over more leases).
actor TaskSubmitter {
    struct PendingTask: Sendable {
        var spec: TaskSpec
        let returnID: UniqueID
        let maxRetries: Int
        let retryUserErrors: Bool
        /// Refs of this process in the input: kept alive until the task finished.
        var heldRefs: [LocalReference] = []
    }

    /// Tasks share leases when they ask for the same resources under the same strategy.
    struct Key: Hashable, Sendable {
        let shape: ResourceSet
        let strategy: Scheduling
        let waitIfInfeasible: Bool
    }

    private struct KeyState {
        var queue: [PendingTask] = []
        /// Leases held: pushing, or parked waiting for work.
        var activeLeases = 0
        var requesting = false
        var parked: [HeldLease] = []
        /// Moving average of the tasks' run time (µs); nil until a result came back.
        var averageRunMicros: Double?
    }

    private let node: RPCClient
    private let jobID: UniqueID
    /// Asks the head where a placement group's bundles are now.
    private let actors: StarlingActorSystem
    /// Groups asked again after a lease into them failed (their bundles moved with a node's death).
    private var currentGroups: [String: PlacementGroup] = [:]
    private let objects: ObjectTable
    private var keys: [Key: KeyState] = [:]
    /// Lease drives in flight (shutdown waits for them), and the sweeper of parked leases.
    private var driving = 0
    private var drivesDone: [CheckedContinuation<Void, Never>] = []
    private var sweeper: Task<Void, Never>?
    private let workers: ConnectionPool
    /// Connections to other nodes that granted (or were asked for) leases after a spillback.
    private let nodes: ConnectionPool
    private var leaseTasks: [Int: Task<Void, Never>] = [:]
    private var nextLeaseTask = 0
    private var shuttingDown = false
    /// Tasks pushed and not yet answered: return id -> (worker url, task id, task name).
    private var pushed: [UniqueID: (url: String, taskID: [UInt8], name: String)] = [:]
    /// Finished, failed and retried tasks per name (pending and running are counted when the
    /// counts are reported); set from a change until the next report takes the counts.
    private var doneCounts: [String: TaskStateCounts] = [:]
    private var reportAsked = false
    /// How to make again each result that lives only in a node's store: its task and key.
    private var lineage: [UniqueID: (task: PendingTask, key: Key)] = [:]
    /// Results being made again after their loss (a second get waits for the same rerun).
    private var rebuilding: Set<UniqueID> = []
    private let log = Logger(label: "submitter")

    /// Most tasks pushed in one message to one worker.
    static let maxBatch = 64
    /// Bytes of arguments one batch may carry.
    static let batchArgumentBudget = 16 << 20
    /// Work one batch should hold, by the tasks' average run time.
    static let batchBudgetMicros = 2_000.0
    /// How long an idle lease is kept for more work of its key before it is returned.
    static let leaseLinger: Duration = .milliseconds(100)
    /// How long shutdown lets lease loops return their leases before cancelling them (a lease
    /// request the node cannot grant would otherwise hold shutdown forever).
    static let shutdownGrace: Duration = .milliseconds(300)

    init(node: RPCClient, jobID: UniqueID, objects: ObjectTable, token: ClusterToken, actors: StarlingActorSystem) {
        self.node = node
        self.jobID = jobID
        self.actors = actors
        self.objects = objects
        workers = ConnectionPool(token: token, name: "owner")
        // A node spilled to may have died since the view was made: give up on it quickly.
        var settings = TransportSettings()
        settings.connectTimeout = .seconds(1)
        nodes = ConnectionPool(token: token, name: "owner", settings: settings)
    }

    /// A granted lease: the worker to push to and the node to give it back to.
    struct HeldLease: Sendable {
        let worker: RPCClient
        let url: String
        let leaseID: UniqueID
        let node: RPCClient
        var parkedAt = ContinuousClock.now
    }

    /// Queues `task`; when a lease of its key is parked, pushes on it before this returns.
    nonisolated func submit(_ task: PendingTask, key: Key) async {
        guard let (lease, first) = await enqueue(task, key: key) else { return }
        // On this thread: the immediate task runs until the push is on the wire.
        Task.immediate { await self.drive(key, lease, first: first) }
    }

    /// Queues `task`; when a lease of its key is parked, takes it and its first push, for the
    /// caller to drive at once.
    private func enqueue(_ task: PendingTask, key: Key) -> (HeldLease, Push)? {
        keys[key, default: KeyState()].queue.append(task)
        countsChanged()
        defer { pump(key) }
        return takeParkedLease(key)
    }

    /// A parked lease of `key` and its first push, when the key has queued work and a parked
    /// lease; the caller drives it.
    private func takeParkedLease(_ key: Key) -> (HeldLease, Push)? {
        guard !keys[key]!.queue.isEmpty, let lease = keys[key]!.parked.popLast() else { return nil }
        driving += 1
        guard let first = nextPush(key, lease) else { return nil } // parked again
        return (lease, first)
    }

    /// Returns every lease and closes the worker connections; waits for the lease loops, so
    /// nothing is in flight on the node connection when the caller closes it.
    func shutdown() async {
        shuttingDown = true
        sweeper?.cancel()
        sweeper = nil
        for key in keys.keys {
            let parked = keys[key]!.parked
            keys[key]!.parked.removeAll()
            keys[key]!.activeLeases -= parked.count
            for lease in parked { await returnLease(lease.leaseID, to: lease.node, failed: false) }
        }
        // Closing the worker connections cancels pushes in flight: the driver is done. Lease
        // requests still waiting at a node are cancelled too; the node takes back whatever
        // this owner held when its connection closes.
        workers.closeAll()
        let stuck = Task { [leaseTasks] in
            try await Task.sleep(for: Self.shutdownGrace)
            for (_, task) in leaseTasks { task.cancel() }
        }
        while let (_, task) = leaseTasks.first {
            await task.value
        }
        while driving > 0 {
            await withCheckedContinuation { drivesDone.append($0) }
        }
        stuck.cancel()
        nodes.closeAll()
    }

    private func batchSize(_ averageRunMicros: Double?) -> Int {
        guard let average = averageRunMicros else { return 1 }
        return max(1, min(Self.maxBatch, Int(Self.batchBudgetMicros / max(average, 1))))
    }

    /// Asks for one more lease when the queue holds more than the ready leases will take.
    private func pump(_ key: Key) {
        guard let state = keys[key], !state.queue.isEmpty, !state.requesting, !shuttingDown else { return }
        guard state.activeLeases == 0 || state.queue.count > state.parked.count * batchSize(state.averageRunMicros) else { return }
        keys[key]!.requesting = true
        nextLeaseTask += 1
        let ticket = nextLeaseTask
        leaseTasks[ticket] = Task {
            await self.lease(key)
            self.leaseFinished(ticket)
        }
    }

    private func leaseFinished(_ ticket: Int) {
        leaseTasks[ticket] = nil
    }

    /// A scheduling option as it travels.
    static func wireStrategy(_ scheduling: Scheduling) -> StarlingWire.SchedulingStrategy {
        var strategy = StarlingWire.SchedulingStrategy()
        switch scheduling {
        case .default: strategy.kind = .unspecified
        case .spread: strategy.kind = .spread
        case let .node(id, soft):
            strategy.kind = .nodeAffinity
            strategy.nodeId = UniqueID(hex: id)?.bytes ?? Array(id.utf8)
            strategy.soft = soft
        case let .placementGroup(group, bundle):
            strategy.kind = .placementGroup
            strategy.placementGroupId = UniqueID(hex: group.id)?.bytes ?? []
            strategy.bundleIndex = Int32(bundle ?? -1)
        }
        return strategy
    }

    private func leaseRequest(_ key: Key) -> RequestWorkerLeaseRequest {
        var request = RequestWorkerLeaseRequest()
        request.leaseId = UniqueID.random().bytes
        request.jobId = jobID.bytes
        request.resources = key.shape.quantities
        request.queueIfInfeasible = key.waitIfInfeasible
        request.strategy = Self.wireStrategy(key.strategy)
        request.taskName = keys[key]?.queue.first?.spec.displayName ?? ""
        request.backlog = UInt32(keys[key]?.queue.count ?? 0)
        return request
    }

    private func acquireLease(_ request: RequestWorkerLeaseRequest, strategy: Scheduling) async throws -> (RequestWorkerLeaseReply, RPCClient) {
        guard case let .placementGroup(given, bundle) = strategy else {
            return try await LeaseRequester.acquire(request, at: node, connect: { try await self.nodeClient($0) },
                                                    forget: { await self.forgetNode($0) })
        }
        let known = currentGroups[given.id] ?? given
        do {
            return try await acquireLease(request, in: known, bundle: bundle)
        } catch let error as StarlingError {
            throw error
        } catch {
            // The bundle's node may have died, and the head placed the bundle again elsewhere:
            // ask it once where the group is now.
            guard let current = try? await actors.placementGroup(known, timeout: .seconds(60)), current.bundles != known.bundles else { throw error }
            currentGroups[given.id] = current
            return try await acquireLease(request, in: current, bundle: bundle)
        }
    }

    /// A lease inside a bundle: asked of the node holding the bundle.
    private func acquireLease(_ request: RequestWorkerLeaseRequest, in group: PlacementGroup, bundle: Int?) async throws -> (RequestWorkerLeaseReply, RPCClient) {
        guard group.isReady, let target = group.bundles.first(where: { $0.index == (bundle ?? group.bundles[0].index) }) else {
            throw StarlingError.placementGroupNotReady(group: group.id, reason: group.isReady ? "it has no bundle \(bundle ?? -1)"
                                                                                                 : "wait for it with Cluster.ready before scheduling into it")
        }
        return try await LeaseRequester.acquire(request, at: try await nodeClient(target.nodeURL), connect: { try await self.nodeClient($0) },
                                                forget: { await self.forgetNode($0) })
    }

    /// Gets a lease (following spillbacks), runs the key's tasks on it, returns it.
    private func lease(_ key: Key) async {
        let request = leaseRequest(key)
        let granted: RequestWorkerLeaseReply
        let target: RPCClient
        do {
            (granted, target) = try await acquireLease(request, strategy: key.strategy)
            keys[key]!.requesting = false
        } catch {
            keys[key]!.requesting = false
            if !shuttingDown { failQueue(key, error) }
            return
        }
        let url = granted.workerAddress!.url
        let leaseID = UniqueID(bytes: request.leaseId)
        let worker: RPCClient
        do {
            worker = try await client(for: url)
        } catch {
            await returnLease(leaseID, to: target, failed: true)
            pump(key)
            return
        }
        keys[key]!.activeLeases += 1
        pump(key)
        driving += 1
        await drive(key, HeldLease(worker: worker, url: url, leaseID: leaseID, node: target), first: nil)
    }

    /// A batch taken off a key's queue for one lease, and the request that pushes it.
    struct Push: Sendable {
        let batch: [PendingTask]
        let request: PushTaskBatchRequest
    }

    /// Pushes the key's work on `lease`, then parks it for more work (the sweeper returns it
    /// after `leaseLinger`), or returns it when its worker failed or the owner shuts down.
    ///
    /// Runs outside the actor, visiting it between pushes: a push that `submit` starts goes on
    /// the wire from the submitting thread (an immediate task cannot enter an actor, so an
    /// isolated drive would wait for another thread to be woken first).
    private nonisolated func drive(_ key: Key, _ lease: HeldLease, first: Push?) async {
        var next = first
        if next == nil { next = await nextPush(key, lease) }
        while let push = next {
            do {
                let reply = try await lease.worker.call(WorkerRPC.pushTaskBatch, push.request, timeout: .seconds(365 * 24 * 3600))
                next = await pushEnded(push, key: key, lease: lease, results: reply.results)
            } catch {
                await pushFailed(push, key: key, lease: lease, error: error)
                return
            }
        }
    }

    /// Takes the key's next batch for `lease` and counts it running; nil when there is none.
    private func nextPush(_ key: Key, _ lease: HeldLease) -> Push? {
        guard let batch = takeBatch(key) else {
            leaseIdle(key, lease)
            return nil
        }
        var request = PushTaskBatchRequest()
        request.tasks = batch.map(\.spec)
        request.leaseId = lease.leaseID.bytes
        for task in batch { pushed[task.returnID] = (lease.url, task.spec.taskId, task.spec.displayName) }
        countsChanged()
        return Push(batch: batch, request: request)
    }

    /// Delivers a push's results; returns the lease's next push, or nil once it is parked.
    private func pushEnded(_ push: Push, key: Key, lease: HeldLease, results: [TaskResult]) -> Push? {
        for task in push.batch { pushed[task.returnID] = nil }
        countsChanged()
        deliver(results, for: push.batch, key: key)
        return nextPush(key, lease)
    }

    /// The worker failed during a push: its tasks are retried (or fail), the lease goes back.
    private func pushFailed(_ push: Push, key: Key, lease: HeldLease, error: any Error) async {
        for task in push.batch { pushed[task.returnID] = nil }
        countsChanged()
        log.info("worker \(lease.url) failed during a batch of \(push.batch.count): \(error)")
        workers.drop(lease.url)
        retryOrFail(push.batch, key: key, detail: "\(error)")
        // Retried tasks are queued again: a lease of the key parked meanwhile takes them now
        // (`pump` asks for no lease while parked ones could take the queue).
        if let (parked, first) = takeParkedLease(key) {
            Task { await self.drive(key, parked, first: first) }
        }
        await leaseDone(key, lease, failed: true)
    }

    /// The key's queue is empty: park the lease for more work (in the same turn of the actor,
    /// so a task queued next finds it), or return it when the owner shuts down.
    private func leaseIdle(_ key: Key, _ lease: HeldLease) {
        guard !shuttingDown else {
            Task { await self.leaseDone(key, lease, failed: false) }
            return
        }
        var parked = lease
        parked.parkedAt = .now
        keys[key]!.parked.append(parked)
        startSweeper()
        driveEnded()
    }

    private func leaseDone(_ key: Key, _ lease: HeldLease, failed: Bool) async {
        defer { driveEnded() }
        keys[key]!.activeLeases -= 1
        await returnLease(lease.leaseID, to: lease.node, failed: failed)
        pump(key)
    }

    private func driveEnded() {
        driving -= 1
        if driving == 0 {
            for waiter in drivesDone { waiter.resume() }
            drivesDone.removeAll()
        }
    }

    private func startSweeper() {
        guard sweeper == nil else { return }
        sweeper = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: Self.leaseLinger / 2)
                guard await self.returnLingeringLeases() else { return }
            }
        }
    }

    /// Returns leases parked longer than `leaseLinger`; false (and the sweeper ends) once
    /// none is parked.
    private func returnLingeringLeases() async -> Bool {
        let now = ContinuousClock.now
        for key in keys.keys {
            let expired = keys[key]!.parked.filter { now - $0.parkedAt >= Self.leaseLinger }
            guard !expired.isEmpty else { continue }
            keys[key]!.parked.removeAll { now - $0.parkedAt >= Self.leaseLinger }
            keys[key]!.activeLeases -= expired.count
            for lease in expired { await returnLease(lease.leaseID, to: lease.node, failed: false) }
            pump(key)
        }
        if keys.values.allSatisfy({ $0.parked.isEmpty }) {
            sweeper = nil
            return false
        }
        return true
    }

    /// Takes the next batch off the key's queue: up to the batch size, a fair share when
    /// several leases push, and arguments under the batch budget.
    private func takeBatch(_ key: Key) -> [PendingTask]? {
        // No copy of the key's state is held while its queue is mutated (that would copy the
        // whole queue).
        guard let count = keys[key]?.queue.count, count > 0 else { return nil }
        let sharing = max(1, keys[key]!.activeLeases)
        let take = max(1, min(batchSize(keys[key]!.averageRunMicros), (count + sharing - 1) / sharing))
        var batch: [PendingTask] = []
        batch.reserveCapacity(take)
        var batchBytes = 0
        for task in keys[key]!.queue.prefix(take) {
            batchBytes += task.spec.encodedArgs.count
            if batchBytes > Self.batchArgumentBudget && !batch.isEmpty { break }
            batch.append(task)
        }
        keys[key]!.queue.removeFirst(batch.count)
        return batch
    }

    /// Cancels the task that makes `returnID`: a queued one is dropped, a running one is told
    /// to stop on its worker (its `get` then fails with `StarlingError.cancelled`).
    func cancel(_ returnID: UniqueID) async {
        for (key, state) in keys {
            if let index = state.queue.firstIndex(where: { $0.returnID == returnID }) {
                let task = keys[key]!.queue.remove(at: index)
                fail(task, .cancelled(task: task.spec.displayName))
                return
            }
        }
        guard let target = pushed[returnID], let worker = workers.existing(target.url) else { return }
        var request = CancelTaskRequest()
        request.taskId = target.taskID
        _ = try? await worker.call(WorkerRPC.cancelTask, request, timeout: .seconds(10))
    }

    private func deliver(_ results: [TaskResult], for batch: [PendingTask], key: Key) {
        var unrun: [PendingTask] = []
        defer { keys[key]!.queue.insert(contentsOf: unrun, at: 0) }
        for (index, task) in batch.enumerated() {
            guard index < results.count else {
                fail(task, .cluster("worker replied with \(results.count) results for \(batch.count) tasks"))
                continue
            }
            let result = results[index]
            let run = Double(result.runMicros)
            let average = keys[key]!.averageRunMicros.map { $0 * 0.8 + run * 0.2 } ?? run
            keys[key]!.averageRunMicros = average
            let name = task.spec.displayName
            if !result.borrowedIds.isEmpty {
                // The task kept refs from its input: their values stay for the job.
                objects.lend(result.borrowedIds.filter { $0.count == 16 }.map { UniqueID(bytes: $0) })
            }
            switch result.status?.code ?? .ok {
            case .ok:
                // A rerun is over, whether its result came back stored or inline.
                rebuilding.remove(task.returnID)
                if let stored = result.returns.first, !stored.isInline {
                    if objects.fulfillStored(task.returnID, node: stored.nodeId) {
                        lineage[task.returnID] = (task, key)
                    } else {
                        ReferenceCounter.free([task.returnID], holder: stored.nodeId, via: node)
                    }
                } else {
                    objects.fulfill(task.returnID, result.returns.first?.inlineValue ?? [])
                }
                count(name) { $0.finished += 1 }
            case .userError where task.retryUserErrors && Int(task.spec.attempt) < task.maxRetries:
                var again = task
                again.spec.attempt += 1
                keys[key]!.queue.append(again)
                count(name) { $0.retried += 1 }
            case .cancelled:
                fail(task, .cancelled(task: name))
            case .resourceExhausted:
                // Sent back unrun (the batch's reply was full): queue again, same attempt.
                unrun.append(task)
            case .objectStoreFull:
                let parts = (result.error?.message ?? "").split(separator: " ", maxSplits: 1)
                fail(task, .objectStoreFull(bytes: Int(parts.first ?? "") ?? 0, detail: parts.count > 1 ? String(parts[1]) : ""))
            case .tooLarge:
                fail(task, .objectTooLarge(task: name, what: "result", bytes: Int(result.error?.message ?? "") ?? 0,
                                                            limit: TaskExecutor.inlineLimit))
            case .unknownFunction:
                fail(task, .unknownFunction(task: name, detail: result.error?.message ?? ""))
            case .typeMismatch:
                fail(task, .typeMismatch(task: name, detail: result.error?.message ?? ""))
            default:
                let log = result.error?.workerLog ?? ""
                fail(task, .taskFailed(task: name, errorType: result.error?.typeName ?? "Error",
                                       message: (result.error?.message ?? result.status?.message ?? "")
                                           + (log.isEmpty ? "" : " (worker log: \(log))")),
                     labels: log.isEmpty ? [:] : ["worker_log": log])
            }
        }
    }

    enum Reconstruction { case resubmitted, retriesUsed(task: String, attempts: Int), unknown }

    /// Runs again the task whose stored result was lost (its node died), when its retries allow.
    func reconstruct(_ returnID: UniqueID) -> Reconstruction {
        if rebuilding.contains(returnID) { return .resubmitted }
        guard let (task, key) = lineage[returnID] else { return .unknown }
        guard task.maxRetries < 0 || Int(task.spec.attempt) < task.maxRetries else {
            return .retriesUsed(task: task.spec.displayName, attempts: Int(task.spec.attempt) + 1)
        }
        lineage[returnID] = nil
        rebuilding.insert(returnID)
        var again = task
        again.spec.attempt += 1
        log.info("object \(returnID.short) was lost with its node; running \(task.spec.displayName) again (attempt \(again.spec.attempt + 1))")
        objects.reset(returnID)
        // Its result is gone: it counts as finished again once the rerun finishes.
        count(task.spec.displayName) {
            $0.retried += 1
            $0.finished -= min($0.finished, 1)
        }
        if let (lease, first) = enqueue(again, key: key) {
            Task { await self.drive(key, lease, first: first) }
        }
        return .resubmitted
    }

    /// The result's refs are all gone: it will not be rebuilt.
    func forgetLineage(_ returnID: UniqueID) {
        lineage[returnID] = nil
        rebuilding.remove(returnID)
    }

    private func retryOrFail(_ batch: [PendingTask], key: Key, detail: String) {
        for task in batch.reversed() {
            if task.maxRetries < 0 || Int(task.spec.attempt) < task.maxRetries {
                var again = task
                again.spec.attempt += 1
                keys[key]!.queue.insert(again, at: 0)
                count(task.spec.displayName) { $0.retried += 1 }
            } else {
                fail(task, .workerDied(task: task.spec.displayName, attempts: Int(task.spec.attempt) + 1, detail: detail))
            }
        }
    }

    private func failQueue(_ key: Key, _ error: Error) {
        let failed = keys[key]?.queue ?? []
        keys[key]?.queue.removeAll()
        for task in failed {
            let name = task.spec.displayName
            if case let WireError.remote(_, _, code, message) = error, code == .infeasible {
                fail(task, .infeasible(task: name, reason: message))
            } else if let error = error as? StarlingError {
                fail(task, error)
            } else {
                fail(task, .cluster("task \(name) could not get a worker: \(error)"))
            }
        }
    }

    // MARK: - Task counts and failures, for the head's health service

    /// Fails the task's refs with `error`, counts it, and reports it as a task-failed event
    /// (a cancellation is counted, not reported).
    private func fail(_ task: PendingTask, _ error: StarlingError, labels: [String: String] = [:]) {
        // A rerun that failed is over: its lineage is not asked for again.
        rebuilding.remove(task.returnID)
        objects.fail(task.returnID, error)
        let name = task.spec.displayName
        count(name) { $0.failed += 1 }
        if case .cancelled = error { return }
        HealthReporter.shared.failed(Event(kind: .taskFailed, severity: .error, message: "\(error)", source: "owner of job \(jobID.short)",
                                           jobId: jobID.bytes, taskId: task.spec.taskId,
                                           labels: labels.merging(["function": name, "attempts": String(task.spec.attempt + 1)]) { $1 }))
    }

    private func count(_ name: String, _ change: (inout TaskStateCounts) -> Void) {
        change(&doneCounts[name, default: TaskStateCounts(functionName: name)])
        countsChanged()
    }

    private func countsChanged() {
        guard !reportAsked else { return }
        reportAsked = true
        HealthReporter.shared.activityChanged()
    }

    /// This owner's tasks per name and state, for the head.
    func stateReport() -> [TaskStateCounts] {
        reportAsked = false
        var counts = doneCounts
        for state in keys.values {
            for task in state.queue { counts[task.spec.displayName, default: TaskStateCounts(functionName: task.spec.displayName)].pending += 1 }
        }
        for entry in pushed.values { counts[entry.name, default: TaskStateCounts(functionName: entry.name)].running += 1 }
        return counts.values.sorted { $0.functionName < $1.functionName }
    }

    private func returnLease(_ leaseID: UniqueID, to target: RPCClient, failed: Bool) async {
        var request = ReturnWorkerLeaseRequest()
        request.leaseId = leaseID.bytes
        request.workerFailed = failed
        _ = try? await target.call(NodeManagerRPC.returnWorkerLease, request, timeout: .seconds(5))
    }

    private func client(for url: String) async throws -> RPCClient {
        try await workers.client(url)
    }

    private func nodeClient(_ url: String) async throws -> RPCClient {
        if url == node.peer.description { return node }
        return try await nodes.client(url)
    }

    private func forgetNode(_ client: RPCClient) {
        nodes.drop(client)
    }
}
