import StarlingCore
import StarlingLog
import StarlingWire

/// The owner's side of the task path: lease workers from the node by resource shape and push
/// tasks straight to them in batches, reusing a lease while there is work of its shape.
actor TaskSubmitter {
    struct PendingTask: Sendable {
        var spec: TaskSpec
        let returnID: UniqueID
        let maxRetries: Int
        let retryUserErrors: Bool
    }

    private let node: RPCClient
    private let objects: ObjectTable
    private let token: ClusterToken
    private var queues: [ResourceSet: [PendingTask]] = [:]
    private var activeLeases: [ResourceSet: Int] = [:]
    private var requesting: Set<ResourceSet> = []
    private var idleLeases: [ResourceSet: [Int: CheckedContinuation<Bool, Never>]] = [:]
    private var nextIdle = 0
    private var workerClients: [String: RPCClient] = [:]
    private var leaseTasks: [Int: Task<Void, Never>] = [:]
    private var nextLeaseTask = 0
    private var shuttingDown = false
    /// Tasks pushed and not yet answered: return id -> (worker url, task id).
    private var pushed: [UniqueID: (url: String, taskID: [UInt8])] = [:]
    private let log = Logger(label: "submitter")

    /// Most tasks pushed in one message to one worker.
    static let maxBatch = 64
    /// How long an idle lease is kept for more work of its shape before it is returned.
    static let leaseLinger: Duration = .milliseconds(100)
    /// How long shutdown lets lease loops return their leases before cancelling them (a lease
    /// request the node cannot grant would otherwise hold shutdown forever).
    static let shutdownGrace: Duration = .milliseconds(300)

    init(node: RPCClient, objects: ObjectTable, token: ClusterToken) {
        self.node = node
        self.objects = objects
        self.token = token
    }

    func submit(_ task: PendingTask, shape: ResourceSet) {
        queues[shape, default: []].append(task)
        if let (key, waiter) = idleLeases[shape]?.first {
            idleLeases[shape]?[key] = nil
            waiter.resume(returning: true)
        }
        pump(shape)
    }

    /// Returns every lease and closes the worker connections; waits for the lease loops, so
    /// nothing is in flight on the node connection when the caller closes it.
    func shutdown() async {
        shuttingDown = true
        for (_, waiters) in idleLeases { for (_, waiter) in waiters { waiter.resume(returning: false) } }
        idleLeases.removeAll()
        // Closing the worker connections cancels pushes in flight: the driver is done. Lease
        // requests still waiting at the node are cancelled too; the node takes back whatever
        // this owner held when its connection closes.
        for (_, client) in workerClients { client.close() }
        let stuck = Task { [leaseTasks] in
            try await Task.sleep(for: Self.shutdownGrace)
            for (_, task) in leaseTasks { task.cancel() }
        }
        while let (_, task) = leaseTasks.first {
            await task.value
        }
        stuck.cancel()
        workerClients.removeAll()
    }

    private func pump(_ shape: ResourceSet) {
        guard let queue = queues[shape], !queue.isEmpty, !requesting.contains(shape) else { return }
        let capacity = (activeLeases[shape] ?? 0) * Self.maxBatch
        guard queue.count > capacity || activeLeases[shape, default: 0] == 0 else { return }
        guard !shuttingDown else { return }
        requesting.insert(shape)
        nextLeaseTask += 1
        let key = nextLeaseTask
        leaseTasks[key] = Task {
            await self.lease(shape)
            self.leaseFinished(key)
        }
    }

    private func leaseFinished(_ key: Int) {
        leaseTasks[key] = nil
    }

    private func lease(_ shape: ResourceSet) async {
        var request = RequestWorkerLeaseRequest()
        let leaseID = UniqueID.random()
        request.leaseId = leaseID.bytes
        request.resources = shape.quantities
        request.taskName = queues[shape]?.first?.spec.displayName ?? ""
        request.backlog = UInt32(queues[shape]?.count ?? 0)
        let reply: RequestWorkerLeaseReply
        do {
            reply = try await node.call(NodeManagerRPC.requestWorkerLease, request, timeout: .seconds(3600))
        } catch {
            requesting.remove(shape)
            failQueue(shape, error)
            return
        }
        requesting.remove(shape)
        guard let url = reply.workerAddress?.url else { return }
        let worker: RPCClient
        do {
            worker = try await client(for: url)
        } catch {
            await returnLease(leaseID, failed: true)
            pump(shape)
            return
        }
        activeLeases[shape, default: 0] += 1
        pump(shape)
        await run(shape, worker: worker, url: url, leaseID: leaseID)
        activeLeases[shape, default: 1] -= 1
        pump(shape)
    }

    /// Pushes batches on one lease until there is no work for `leaseLinger`, or the worker dies.
    private func run(_ shape: ResourceSet, worker: RPCClient, url: String, leaseID: UniqueID) async {
        while true {
            if queues[shape]?.isEmpty ?? true {
                guard await waitForWork(shape) else { break }
                continue
            }
            let sharing = max(1, activeLeases[shape] ?? 1)
            let take = max(1, min(Self.maxBatch, (queues[shape]!.count + sharing - 1) / sharing))
            let batch = Array(queues[shape]!.prefix(take))
            queues[shape]!.removeFirst(batch.count)
            var push = PushTaskBatchRequest()
            push.tasks = batch.map(\.spec)
            push.leaseId = leaseID.bytes
            for task in batch { pushed[task.returnID] = (url, task.spec.taskId) }
            defer { for task in batch { pushed[task.returnID] = nil } }
            do {
                let reply = try await worker.call(WorkerRPC.pushTaskBatch, push, timeout: .seconds(365 * 24 * 3600))
                deliver(reply.results, for: batch, shape: shape)
            } catch {
                log.info("worker \(url) failed during a batch of \(batch.count): \(error)")
                workerClients.removeValue(forKey: url)?.close()
                retryOrFail(batch, shape: shape, detail: "\(error)")
                await returnLease(leaseID, failed: true)
                return
            }
        }
        await returnLease(leaseID, failed: false)
    }

    /// Cancels the task that makes `returnID`: a queued one is dropped, a running one is told
    /// to stop on its worker (its `get` then fails with `StarlingError.cancelled`).
    func cancel(_ returnID: UniqueID) async {
        for (shape, queue) in queues {
            if let index = queue.firstIndex(where: { $0.returnID == returnID }) {
                let task = queues[shape]!.remove(at: index)
                objects.fail(returnID, .cancelled(task: task.spec.displayName))
                return
            }
        }
        guard let target = pushed[returnID], let worker = workerClients[target.url] else { return }
        var request = CancelTaskRequest()
        request.taskId = target.taskID
        _ = try? await worker.call(WorkerRPC.cancelTask, request, timeout: .seconds(10))
    }

    private func waitForWork(_ shape: ResourceSet) async -> Bool {
        if shuttingDown { return false }
        nextIdle += 1
        let key = nextIdle
        let timer = Task { [linger = Self.leaseLinger] in
            try await Task.sleep(for: linger)
            self.expireIdle(shape, key)
        }
        defer { timer.cancel() }
        return await withCheckedContinuation { idleLeases[shape, default: [:]][key] = $0 }
    }

    private func expireIdle(_ shape: ResourceSet, _ key: Int) {
        idleLeases[shape]?.removeValue(forKey: key)?.resume(returning: false)
    }

    private func deliver(_ results: [TaskResult], for batch: [PendingTask], shape: ResourceSet) {
        for (index, task) in batch.enumerated() {
            guard index < results.count else {
                objects.fail(task.returnID, .cluster("worker replied with \(results.count) results for \(batch.count) tasks"))
                continue
            }
            let result = results[index]
            let name = task.spec.displayName
            switch result.status?.code ?? .ok {
            case .ok:
                objects.fulfill(task.returnID, result.returns.first?.inlineValue ?? [])
            case .userError where task.retryUserErrors && Int(task.spec.attempt) < task.maxRetries:
                var again = task
                again.spec.attempt += 1
                queues[shape, default: []].append(again)
            case .cancelled:
                objects.fail(task.returnID, .cancelled(task: name))
            case .unknownFunction:
                objects.fail(task.returnID, .unknownFunction(task: name, detail: result.error?.message ?? ""))
            case .typeMismatch:
                objects.fail(task.returnID, .typeMismatch(task: name, detail: result.error?.message ?? ""))
            default:
                objects.fail(task.returnID, .taskFailed(task: name, errorType: result.error?.typeName ?? "Error",
                                                        message: result.error?.message ?? result.status?.message ?? ""))
            }
        }
    }

    private func retryOrFail(_ batch: [PendingTask], shape: ResourceSet, detail: String) {
        for task in batch {
            if task.maxRetries < 0 || Int(task.spec.attempt) < task.maxRetries {
                var again = task
                again.spec.attempt += 1
                queues[shape, default: []].insert(again, at: 0)
            } else {
                objects.fail(task.returnID, .workerDied(task: task.spec.displayName, attempts: Int(task.spec.attempt) + 1, detail: detail))
            }
        }
    }

    private func failQueue(_ shape: ResourceSet, _ error: Error) {
        let failed = queues.removeValue(forKey: shape) ?? []
        for task in failed {
            let name = task.spec.displayName
            if case let WireError.remote(_, _, code, message) = error, code == .infeasible {
                objects.fail(task.returnID, .infeasible(task: name, reason: message))
            } else {
                objects.fail(task.returnID, .cluster("task \(name) could not get a worker: \(error)"))
            }
        }
    }

    private func returnLease(_ leaseID: UniqueID, failed: Bool) async {
        var request = ReturnWorkerLeaseRequest()
        request.leaseId = leaseID.bytes
        request.workerFailed = failed
        _ = try? await node.call(NodeManagerRPC.returnWorkerLease, request)
    }

    private func client(for url: String) async throws -> RPCClient {
        if let existing = workerClients[url] { return existing }
        let client = try await RPCClient.connect(to: Address(url), token: token, name: "owner")
        workerClients[url] = client
        return client
    }
}
