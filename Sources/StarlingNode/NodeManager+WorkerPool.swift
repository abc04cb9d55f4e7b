#if canImport(Glibc)
import Glibc
#endif
import Foundation
import StarlingCore
import StarlingWire

/// The worker pool: processes started from a job's executable, reused while idle, stopped
/// after `idleWorkerTimeout` beyond the prestarted ones, capped at `maxWorkers`.
extension NodeManager {
    func prestartWorker(pool: [UInt8]) async {
        guard let id = try? await startWorker(pool: pool, job: pool) else { return }
        makeIdle(id)
    }

    func makeIdle(_ id: UniqueID) {
        idle.append(id)
        idleSince[id] = .now
    }

    func acquireWorker(pool: [UInt8], job: [UInt8]) async throws -> UniqueID {
        if let index = idle.lastIndex(where: { workers[$0]?.pool == pool }) {
            let id = idle.remove(at: index)
            idleSince[id] = nil
            return id
        }
        return try await startWorker(pool: pool, job: job)
    }

    /// Keeps a leased worker's threads on CPUs of their own: as many as the lease has CPUs (at
    /// least one), the least loaded by other leases, the node's own CPU first among equals (an
    /// embedded node shares its driver's CPU, and a driver waiting on each task answers twice
    /// as fast from there; see `CPUAffinity`).
    func placeWorker(_ workerID: UniqueID, demand: ResourceSet) {
        guard !workerCPUs.isEmpty, let record = workers[workerID] else { return }
        let wanted = min(workerCPUs.count, max(1, Int(demand["CPU"].rounded(.up))))
        var cpuLoad: [Int: Double] = [:]
        var leaseCount: [Int: Int] = [:]
        for lease in leases.values where lease.worker != workerID {
            guard let cpus = workers[lease.worker]?.cpus, !cpus.isEmpty else { continue }
            for cpu in cpus {
                cpuLoad[cpu, default: 0] += lease.demand["CPU"] / Double(cpus.count)
                leaseCount[cpu, default: 0] += 1
            }
        }
        let here = CPUAffinity.current()
        let ranked = workerCPUs.sorted { a, b in
            if cpuLoad[a, default: 0] != cpuLoad[b, default: 0] { return cpuLoad[a, default: 0] < cpuLoad[b, default: 0] }
            if leaseCount[a, default: 0] != leaseCount[b, default: 0] { return leaseCount[a, default: 0] < leaseCount[b, default: 0] }
            if (a == here) != (b == here) { return a == here }
            return a < b
        }
        let chosen = Array(ranked.prefix(wanted)).sorted()
        guard record.cpus != chosen else { return }
        if !CPUAffinity.restrict(process: record.pid, to: chosen) {
            log.debug("worker \(workerID.short): could not keep every thread on CPUs \(CPUAffinity.format(chosen))")
        }
        workers[workerID]?.cpus = chosen
    }

    /// Starts a worker process and waits until it registered.
    func startWorker(pool: [UInt8], job: [UInt8]) async throws -> UniqueID {
        if stopping { throw RPCFailure(.unavailable, "node \(nodeID.short) is stopping") }
        guard workers.count < settings.maxWorkers else {
            throw RPCFailure(.resourceExhausted, "node \(nodeID.short) already runs its maximum of \(settings.maxWorkers) workers")
        }
        let executable: String
        if let own = settings.workerExecutable {
            executable = own
        } else {
            guard let head, job.count == 16 else {
                throw RPCFailure(.invalidArgument, "a lease on node \(nodeID.short) needs a registered job (its executable comes from the head)")
            }
            executable = try await executables.path(for: UniqueID(bytes: job), head: head)
        }
        let id = UniqueID.random()
        var environment = ProcessInfo.processInfo.environment
        environment[WorkerEnvironment.workerID] = id.hex
        environment[WorkerEnvironment.nodeURL] = server?.address.description ?? ""
        environment[WorkerEnvironment.nodeID] = nodeID.hex
        environment[WorkerEnvironment.jobID] = UniqueID(bytes: job).hex
        environment[WorkerEnvironment.tokenFile] = settings.tokenFile
        environment[WorkerEnvironment.sessionDir] = settings.sessionDir
        environment[WorkerEnvironment.headURL] = settings.headAddress?.description
        if let listen = settings.listenAddress, listen.scheme != .ipc {
            environment[WorkerEnvironment.listenHost] = listen.isWildcard ? (settings.advertiseHost ?? "127.0.0.1") : (listen.host ?? "127.0.0.1")
        } else {
            environment[WorkerEnvironment.listenHost] = nil
        }
        let logPath = "\(settings.sessionDir)/logs/worker-\(id.short).log"
        environment[WorkerEnvironment.workerLog] = logPath
        // All of the node's CPUs until a lease places it.
        environment[WorkerEnvironment.cpus] = workerCPUs.isEmpty ? nil : CPUAffinity.format(workerCPUs)
        let spawned = try WorkerProcess.spawn(executable: executable, environment: environment, logPath: logPath)
        workers[id] = WorkerRecord(pid: spawned.pid, logPath: spawned.logPath, pool: pool, url: nil)
        log.debug("started worker \(id.short) (pid \(spawned.pid)) from \(executable)")
        let timeout = settings.workerStartTimeout
        let watchdog = Task { [weak self] in
            try await Task.sleep(for: timeout)
            await self?.failStart(id, "did not register within \(timeout)")
        }
        defer { watchdog.cancel() }
        try await withCheckedThrowingContinuation { starting[id] = $0 }
        return id
    }

    func registerWorker(_ request: RegisterWorkerRequest, connection: UInt32) throws -> RegisterWorkerReply {
        let id = UniqueID(bytes: request.workerId)
        guard let worker = workers[id], let url = request.address?.url else {
            throw RPCFailure(.notFound, "worker \(id.short) was not started by node \(nodeID.short)")
        }
        workerConnections[connection] = worker.pool
        workers[id]?.url = url
        starting.removeValue(forKey: id)?.resume()
        var reply = RegisterWorkerReply()
        reply.nodeId = nodeID.bytes
        reply.sessionDir = settings.sessionDir
        return reply
    }

    func failStart(_ id: UniqueID, _ reason: String) {
        guard let continuation = starting.removeValue(forKey: id) else { return }
        let logPath = workers[id]?.logPath ?? "?"
        if let worker = workers.removeValue(forKey: id) { Self.kill(worker.pid) }
        continuation.resume(throwing: RPCFailure(.workerDied, "worker \(id.short) \(reason); see its log \(logPath)"))
    }

    func stopIdleWorkers() {
        let now = ContinuousClock.now
        let keep = settings.workerExecutable == nil ? 0 : settings.prestartWorkers
        while idle.count > keep, let oldest = idle.first,
              let since = idleSince[oldest], now - since > settings.idleWorkerTimeout {
            idle.removeFirst()
            idleSince[oldest] = nil
            if let worker = workers.removeValue(forKey: oldest) {
                log.debug("stopping worker \(oldest.short): idle for \(settings.idleWorkerTimeout)")
                Self.kill(worker.pid)
            }
        }
    }

    var reapPeriod: Duration { starting.isEmpty ? settings.idleReapInterval : settings.reapInterval }

    func reapWorkers() {
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
            reportFailure(id, worker, status: status, how: how)
            // A leased worker's resources come back now; its owner sees the lost connection
            // and returns the lease (ignored then) before retrying elsewhere.
            for (leaseID, lease) in leases where lease.worker == id {
                leases[leaseID] = nil
                release(lease)
            }
        }
    }

    /// Stops a job's workers (its driver finished) or the ones named.
    func stopWorkers(_ request: StopWorkersRequest) -> StopWorkersReply {
        let named = Set(request.workerIds.map { UniqueID(bytes: $0) })
        // A job's end leaves actor workers alone: the head ends the job's actors itself and
        // keeps detached ones.
        let actorWorkers = Set(leases.values.filter { !$0.actor.isEmpty }.map(\.worker))
        var stopped: UInt32 = 0
        for (id, worker) in workers where named.contains(id)
            || (named.isEmpty && !request.jobId.isEmpty && worker.pool == request.jobId && !actorWorkers.contains(id)) {
            workers[id] = nil
            idle.removeAll { $0 == id }
            idleSince[id] = nil
            if let continuation = starting.removeValue(forKey: id) {
                continuation.resume(throwing: RPCFailure(.cancelled, "worker \(id.short) stopped: \(request.reason)"))
            }
            Self.kill(worker.pid)
            stopped += 1
            for (leaseID, lease) in leases where lease.worker == id {
                leases[leaseID] = nil
                release(lease)
            }
        }
        if stopped > 0 { log.info("stopped \(stopped) workers: \(request.reason)") }
        if named.isEmpty && !request.jobId.isEmpty {
            store.freeAll(job: request.jobId)
            reportDropped()
        }
        var reply = StopWorkersReply()
        reply.stopped = stopped
        return reply
    }

    /// Starts workers for a job ahead of its first lease (the head asks when a job registers).
    func startWorkers(_ request: StartWorkersRequest) -> StartWorkersReply {
        let pool = poolKey(request.jobId)
        let present = workers.values.filter { $0.pool == pool }.count
        let count = max(0, min(Int(request.count) - present, settings.maxWorkers - workers.count))
        for _ in 0..<count {
            Task { [weak self] in
                guard let self, let id = try? await self.startWorker(pool: pool, job: request.jobId) else { return }
                await self.makeIdle(id)
            }
        }
        var reply = StartWorkersReply()
        reply.started = UInt32(count)
        return reply
    }

    func listWorkers(_ request: ListWorkersRequest) -> ListWorkersReply {
        let leased = Set(leases.values.map(\.worker))
        let leaseOf = Dictionary(leases.values.map { ($0.worker, $0) }, uniquingKeysWith: { first, _ in first })
        var reply = ListWorkersReply()
        reply.workers = workers.compactMap { id, worker in
            guard request.jobId.isEmpty || worker.pool == request.jobId else { return nil }
            var info = WorkerInfo()
            info.workerId = id.bytes
            info.jobId = worker.pool
            info.pid = worker.pid
            info.logPath = worker.logPath
            info.address = ProcessAddress(url: worker.url ?? "", nodeId: nodeID.bytes, workerId: id.bytes)
            info.state = starting[id] != nil ? .starting : leased.contains(id) ? .leased : .idle
            info.rssBytes = ProcessTable.residentBytes(worker.pid)
            if let lease = leaseOf[id] {
                info.taskName = lease.taskName
                info.actorId = lease.actor
            }
            return info
        }
        return reply
    }

    /// Tells the head a worker died on its own (kept for `starling status` and post-mortems).
    func reportFailure(_ id: UniqueID, _ worker: WorkerRecord, status: Int32, how: String) {
        guard let head else { return }
        var failure = WorkerFailure()
        failure.workerId = id.bytes
        failure.nodeId = nodeID.bytes
        failure.jobId = worker.pool
        failure.address = ProcessAddress(url: worker.url ?? "", nodeId: nodeID.bytes, workerId: id.bytes)
        failure.pid = worker.pid
        failure.exitCode = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 0
        failure.signal = status & 0x7f
        failure.reason = how
        failure.logPath = worker.logPath
        let log = ProcessTable.read(worker.logPath)
        failure.logTail = String(decoding: log.suffix(2048), as: UTF8.self)
        failure.timeUnixMs = Int64(Date().timeIntervalSince1970 * 1000)
        var request = ReportWorkerFailureRequest()
        request.failure = failure
        Task { _ = try? await head.call(HeadRPC.reportWorkerFailure, request, timeout: .seconds(5)) }
    }
}
