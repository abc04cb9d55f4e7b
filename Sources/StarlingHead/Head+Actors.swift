import StarlingCore
import StarlingNode
import StarlingWire

/// The head as actor manager: creates actors on leased workers, restarts them when their
/// worker or node dies (up to `max_restarts`), answers where an actor is (or why it is dead),
/// kills them, and ends a job's actors with the job.
extension Head {
    func createActor(_ request: CreateActorRequest) async throws -> CreateActorReply {
        guard let spec = request.spec else { throw RPCFailure(.invalidArgument, "CreateActor without a spec") }
        var reply = CreateActorReply()
        if !spec.name.isEmpty, let existing = actors.named(spec.name, namespace: spec.namespace) {
            reply.actor = actors[existing]?.info
            if request.getIfExists {
                reply.actor = await waitUntilSettled(existing, upTo: .seconds(60))
                return reply
            }
            reply.status = Status(code: .alreadyExists, message: "an actor named \"\(spec.name)\" already exists in namespace \"\(spec.namespace)\"")
            return reply
        }
        let id = try actors.register(spec, nowUnixMs: Head.unixMs())
        log.info("actor \(id.short) (\(spec.displayName)) registered")
        record(.actorCreated, .info, "actor \(id.short) (\(spec.displayName)) created", job: spec.jobId, actor: id.bytes)
        await place(id)
        let info = actors[id]?.info ?? ActorInfo()
        reply.actor = info
        if info.state == .dead {
            let code = info.deathError?.code ?? .actorDied
            reply.status = Status(code: code == .ok ? .actorDied : code, message: info.reason)
        }
        return reply
    }

    func getActor(_ request: GetActorRequest) async throws -> GetActorReply {
        let id: UniqueID
        if !request.actorId.isEmpty {
            id = UniqueID(bytes: request.actorId)
        } else if let named = actors.named(request.name, namespace: request.namespace) {
            id = named
        } else {
            throw RPCFailure(.notFound, "no live actor named \"\(request.name)\" in namespace \"\(request.namespace)\"")
        }
        guard actors[id] != nil else { throw RPCFailure(.notFound, "no actor \(id.short) in this cluster") }
        var reply = GetActorReply()
        reply.actor = request.waitMs > 0 ? await waitUntilSettled(id, upTo: .milliseconds(Int(min(request.waitMs, 60_000))))
                                          : actors[id]?.info
        return reply
    }

    func listActors(_ request: ListActorsRequest) -> ListActorsReply {
        var reply = ListActorsReply()
        reply.actors = actors.all.filter { info in
            (request.includeDead || info.state != .dead)
                && (request.jobId.isEmpty || info.spec?.jobId == request.jobId)
                && (request.namespace.isEmpty || info.spec?.namespace == request.namespace)
        }
        return reply
    }

    func killActor(_ request: KillActorRequest) async throws -> KillActorReply {
        let id = UniqueID(bytes: request.actorId)
        guard let entry = actors[id] else { throw RPCFailure(.notFound, "no actor \(id.short) in this cluster") }
        guard entry.info.state != .dead else { return KillActorReply() }
        let reason = request.fromActor ? "exited from inside" : (request.reason.isEmpty ? "killed" : request.reason)
        await stopIncarnation(id)
        if !request.noRestart && !request.fromActor && restartsLeft(id) {
            await restart(id, cause: reason)
        } else {
            log.info("actor \(id.short) is dead: \(reason)")
            record(.actorDied, .info, "actor \(id.short) ended: \(reason)", actor: id.bytes)
            actors.markDead(id, reason: reason, error: nil, nowUnixMs: Head.unixMs())
        }
        return KillActorReply()
    }

    /// A worker died (reported by its node): restart or bury the actor it hosted.
    func actorWorkerDied(_ failure: WorkerFailure) async {
        for id in actors.hosted(byWorker: failure.workerId) {
            actors[id]?.workerID = []
            actors[id]?.leaseID = []
            await actorIncarnationLost(id, cause: "its worker (pid \(failure.pid)) \(failure.reason)")
        }
    }

    /// A node died: restart or bury the actors it hosted.
    func actorsLost(onNode node: UniqueID, reason: String) async {
        for id in actors.hosted(onNode: node.bytes) {
            actors[id]?.workerID = []
            actors[id]?.leaseID = []
            await actorIncarnationLost(id, cause: "its node \(node.short) died (\(reason))")
        }
    }

    /// A job ended: its actors (all but detached ones) end with it.
    func endActors(ofJob job: UniqueID) async {
        for id in actors.owned(byJob: job.bytes) {
            await stopIncarnation(id)
            actors.markDead(id, reason: "its job \(job.short) ended", error: nil, nowUnixMs: Head.unixMs())
        }
    }

    /// A placement group was removed: its actors end with it.
    func endActors(inGroup group: UniqueID) async {
        for (id, entry) in actors.entries where entry.info.state != .dead
            && entry.info.spec?.strategy?.kind == .placementGroup && entry.info.spec?.strategy?.placementGroupId == group.bytes {
            await stopIncarnation(id)
            actors.markDead(id, reason: "its placement group \(group.short) was removed", error: nil, nowUnixMs: Head.unixMs())
        }
    }

    private func actorIncarnationLost(_ id: UniqueID, cause: String) async {
        if restartsLeft(id) {
            await restart(id, cause: cause)
        } else {
            let restarts = actors[id]?.info.numRestarts ?? 0
            let node = UniqueID(bytes: actors[id]?.info.lastNodeId ?? []).short
            let reason = "\(cause) on node \(node); restarts used: \(restarts) of \(actors[id]?.info.spec?.maxRestarts ?? 0)"
            log.warning("actor \(id.short) (\(actors[id]?.info.spec?.displayName ?? "?")) is dead: \(reason)")
            record(.actorDied, .error, "actor \(id.short) (\(actors[id]?.info.spec?.displayName ?? "?")) died: \(reason)", actor: id.bytes)
            actors.markDead(id, reason: reason, error: nil, nowUnixMs: Head.unixMs())
        }
    }

    private func restartsLeft(_ id: UniqueID) -> Bool {
        guard let entry = actors[id], let spec = entry.info.spec else { return false }
        return spec.maxRestarts < 0 || Int(entry.info.numRestarts) < Int(spec.maxRestarts)
    }

    private func restart(_ id: UniqueID, cause: String) async {
        actors[id]?.info.numRestarts += 1
        actors[id]?.info.state = .restarting
        actors[id]?.info.reason = "restarting: \(cause)"
        log.info("restarting actor \(id.short) (\(cause))")
        record(.actorRestarted, .warning, "actor \(id.short) (\(actors[id]?.info.spec?.displayName ?? "?")) restarting: \(cause)", actor: id.bytes)
        if actors[id]?.info.spec?.strategy?.kind == .placementGroup {
            // Its bundle may be waiting for a node: that must not hold up the caller (a node's
            // death, which goes on to the next actor and the next silent node).
            Task { [weak self] in await self?.place(id) }
        } else {
            await place(id)
        }
    }

    /// Gives the current incarnation's worker back to its node, which stops it.
    private func stopIncarnation(_ id: UniqueID) async {
        // Taken off the entry before any await, so a newer incarnation set meanwhile is kept.
        guard let entry = actors[id], !entry.leaseID.isEmpty else { return }
        actors[id]?.workerID = []
        actors[id]?.leaseID = []
        // Its worker stops: nothing it reported is pending or running any more.
        activity.reporterDied(entry.workerID)
        await returnActorLease(entry.leaseID, worker: entry.workerID, nodeURL: entry.nodeURL, actor: id)
    }

    /// Gives an actor's worker back to its node, which stops it.
    private func returnActorLease(_ leaseID: [UInt8], worker: [UInt8], nodeURL: String, actor id: UniqueID) async {
        guard let node = try? await nodeClient(url: nodeURL) else { return }
        var request = ReturnWorkerLeaseRequest()
        request.leaseId = leaseID
        request.workerId = worker
        request.workerExiting = true
        request.reason = "actor \(id.short) stopped"
        _ = try? await node.call(NodeManagerRPC.returnWorkerLease, request, timeout: .seconds(5))
    }

    /// Leases a worker for the actor and starts it there; the entry ends ALIVE or DEAD.
    private func place(_ id: UniqueID) async {
        guard let spec = actors[id]?.info.spec else { return }
        let ticket = (actors[id]?.placement ?? 0) + 1
        actors[id]?.placement = ticket
        // After each await: still the placement in charge (not killed or re-placed meanwhile)?
        let current = { [self] in actors[id]?.placement == ticket && (actors[id]?.info.state == .creating || actors[id]?.info.state == .restarting) }
        actors[id]?.info.state = .creating
        let demand = ResourceSet(spec.resources)
        let views = nodes.alive.map { NodeView(id: UniqueID(bytes: $0.info.nodeId).hex, total: ResourceSet($0.resources.total),
                                              available: ResourceSet($0.resources.available)) }
        let strategy = NodeManager.strategy(spec.strategy)
        actorRoundRobin &+= 1
        let owner = spec.owner?.nodeId.isEmpty == false ? UniqueID(bytes: spec.owner!.nodeId).hex : nil
        let nodeID: String
        if spec.strategy?.kind == .placementGroup {
            // Into a bundle: on the node holding it, which grants from the bundle's reservation
            // (once placed again, if the group lost it with a node).
            let bundleNode = await awaitBundleNode(spec.strategy?.placementGroupId ?? [], index: spec.strategy?.bundleIndex ?? -1, upTo: .seconds(300))
            guard current() else { return }
            guard let node = bundleNode else {
                var error = RemoteError()
                error.code = .notFound
                error.message = "placement group \(UniqueID(bytes: spec.strategy?.placementGroupId ?? []).short) is not placed (pending, removed or unknown), or has no bundle \(spec.strategy?.bundleIndex ?? -1)"
                actors.markDead(id, reason: error.message, error: error, nowUnixMs: Head.unixMs())
                return
            }
            nodeID = node.hex
        } else {
            switch SchedulingPolicy().place(demand, strategy: strategy, nodes: views, localNodeID: owner, roundRobin: actorRoundRobin,
                                            taskName: spec.displayName) {
            case let .infeasible(reason):
                var error = RemoteError()
                error.code = .infeasible
                error.message = reason
                actors.markDead(id, reason: reason, error: error, nowUnixMs: Head.unixMs())
                return
            case let .place(chosen), let .wait(chosen):
                nodeID = chosen
            }
        }
        guard let chosen = UniqueID(hex: nodeID), let url = nodes.info(chosen)?.address?.url else {
            actors.markDead(id, reason: "node \(nodeID) chosen for it vanished", error: nil, nowUnixMs: Head.unixMs())
            return
        }
        var lease = RequestWorkerLeaseRequest()
        lease.leaseId = UniqueID.random().bytes
        lease.jobId = spec.jobId
        lease.resources = spec.resources
        lease.actorId = spec.actorId
        lease.taskName = spec.displayName
        if spec.strategy?.kind == .placementGroup { lease.strategy = spec.strategy }
        do {
            let first = try await nodeClient(url: url)
            let (granted, grantor) = try await LeaseRequester.acquire(lease, at: first, connect: { try await self.nodeClient(url: $0) })
            guard let worker = granted.workerAddress else { throw RPCFailure(.internal, "lease granted without a worker") }
            guard current() else {
                await returnActorLease(lease.leaseId, worker: worker.workerId, nodeURL: grantor.peer.description, actor: id)
                return
            }
            actors[id]?.leaseID = lease.leaseId
            actors[id]?.workerID = worker.workerId
            actors[id]?.nodeURL = grantor.peer.description
            actors[id]?.info.lastNodeId = worker.nodeId
            actors[id]?.info.pid = granted.workerPid
            var start = StartActorRequest()
            start.spec = spec
            start.restartCount = actors[id]?.info.numRestarts ?? 0
            start.leaseId = lease.leaseId
            let client = try await peers.client(worker.url)
            let reply: StartActorReply
            do {
                reply = try await client.call(WorkerRPC.startActor, start, timeout: .seconds(60), returningFailures: true)
            } catch {
                peers.drop(worker.url)
                throw error
            }
            // The head needs no standing connection to the worker (kills go through its node):
            // a dialer left to a worker that exits would redial it for as long as the head runs.
            peers.drop(worker.url)
            guard current() else {
                // Killed or re-placed while it started: this worker is no longer its home.
                if actors[id]?.leaseID == lease.leaseId { await stopIncarnation(id) } else {
                    await returnActorLease(lease.leaseId, worker: worker.workerId, nodeURL: grantor.peer.description, actor: id)
                }
                return
            }
            if let status = reply.status, status.code != .ok {
                let message = reply.error?.message ?? status.message
                await stopIncarnation(id)
                actors.markDead(id, reason: "its initialiser failed: \(message)", error: reply.error, nowUnixMs: Head.unixMs())
                return
            }
            actors[id]?.info.state = .alive
            actors[id]?.info.address = ProcessAddress(url: worker.url, nodeId: worker.nodeId, workerId: worker.workerId)
            actors[id]?.info.reason = ""
        } catch {
            guard current() else { return }
            await stopIncarnation(id)
            var remote = RemoteError()
            if case let WireError.remote(_, _, code, message) = error { remote.code = code; remote.message = message } else { remote.code = .actorDied; remote.message = "\(error)" }
            actors.markDead(id, reason: "it could not be created: \(remote.message)", error: remote, nowUnixMs: Head.unixMs())
        }
    }

    /// The actor's info once it is ALIVE or DEAD (or after `limit`).
    private func waitUntilSettled(_ id: UniqueID, upTo limit: Duration) async -> ActorInfo? {
        let deadline = ContinuousClock.now + limit
        while let state = actors[id]?.info.state, state != .alive, state != .dead, ContinuousClock.now < deadline, !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(10))
        }
        return actors[id]?.info
    }
}
