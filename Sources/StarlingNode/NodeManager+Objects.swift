import Foundation
import StarlingCore
import StarlingWire

/// The node's object store as its processes and the other nodes see it: create and seal
/// (local processes), get (pulling from other nodes when the object is not here), chunks for
/// other nodes' pulls, frees from owners, listings; and the reports that keep the head's object
/// directory current.
extension NodeManager {
    /// Bytes per pulled chunk, and chunks in flight per pull. Measured on loopback TCP with a
    /// 100 MB object: 4 MiB × 4 gave 1.00–1.03 GB/s, 4 MiB × 8 1.12–1.16, 4 MiB × 16
    /// 1.03–1.06, 2 MiB × 8 1.24–1.35, 1 MiB × 16 1.07–1.31 (smaller chunks stay in cache
    /// between the socket and shared memory).
    static let pullChunkSize: UInt32 = 2 << 20
    static let pullWindow = 8

    func addObjectRoutes(to routes: inout RouteTable) {
        routes.add(ObjectStoreRPC.createObject) { [self] request, context in try await createObject(request, owner: context.connectionID) }
        routes.add(ObjectStoreRPC.sealObject) { [self] request, _ in try await sealObject(request) }
        routes.add(ObjectStoreRPC.getStoredObjects) { [self] request, context in await storedObjects(request, reader: context.connectionID) }
        routes.add(ObjectStoreRPC.releaseObjects) { [self] request, context in await releaseObjects(request, reader: context.connectionID) }
        routes.add(ObjectManagerRPC.freeObjects) { [self] request, _ in await freeObjects(request) }
        routes.add(ObjectManagerRPC.getObjectInfo) { [self] request, _ in try await objectInfo(request) }
        routes.addBulk(ObjectManagerRPC.pullObjectChunk) { [self] request, _ in try await objectChunk(request) }
        routes.add(ObjectManagerRPC.listStoredObjects) { [self] request, _ in await listStoredObjects(request) }
    }

    /// Bytes of the object store in use (tests, metrics).
    public var objectStoreUsed: UInt64 { store.used }

    /// Freed store memory kept for new objects goes back to the system after a second idle.
    func coolObjectStore() { store.coolIfIdle() }

    // MARK: - Local processes

    private func createObject(_ request: CreateObjectRequest, owner: UInt32) throws -> CreateObjectReply {
        guard request.objectId.count == 16 else { throw RPCFailure(.invalidArgument, "object_id must be 16 bytes") }
        let job = workerConnections[owner]
        var reply = CreateObjectReply()
        reply.location = try store.create(UniqueID(bytes: request.objectId), size: request.dataSize,
                                          .init(owner: owner, job: job, ownerURL: request.owner?.url ?? "", jobID: job ?? [],
                                                offset: UInt64(request.dataOffset)))
        reportDropped()
        return reply
    }

    private func sealObject(_ request: SealObjectRequest) throws -> SealObjectReply {
        let id = UniqueID(bytes: request.objectId)
        defer { wakeSealWaiters(id) }
        try store.seal(id, abort: request.abort)
        if !request.abort, let entry = store.entries[id] { reportHeld(id, size: entry.size, ownerURL: entry.ownerURL) }
        return SealObjectReply()
    }

    /// How long a reader waits for the seal of an object created here. A writer seals as soon
    /// as it has written, before it tells anyone of the object: the seal is normally here
    /// first, or a moment later.
    static let sealWait: Duration = .seconds(5)
    /// Most readers held at once waiting for seals (each holds one of the node's RPC contexts,
    /// which seals need too); more are answered UNAVAILABLE, and ask again.
    static let maxSealWaiters = 16

    /// Waits while `id` was created here and is not sealed yet (its seal is on its way), until
    /// it is sealed, aborted or freed. False when it is still unsealed: `sealWait` passed, too
    /// many readers wait already, or the node is stopping. (A copy being pulled here is
    /// awaited through its pull instead.)
    func untilSealed(_ id: UniqueID) async -> Bool {
        let deadline = ContinuousClock.now + Self.sealWait
        // One timer for the whole wait, gone as soon as the wait ends.
        var timer: Task<Void, Never>?
        defer { timer?.cancel() }
        while let entry = store.entries[id], entry.primary, !entry.sealed {
            guard !stopping, ContinuousClock.now < deadline,
                  sealWaiters.values.reduce(0, { $0 + $1.count }) < Self.maxSealWaiters else { return false }
            if timer == nil {
                timer = Task { [weak self] in
                    guard (try? await Task.sleep(until: deadline)) != nil else { return }
                    await self?.wakeSealWaiters(id)
                }
            }
            await withCheckedContinuation { sealWaiters[id, default: []].append($0) }
        }
        return true
    }

    static func notSealed(_ id: UniqueID) -> RPCFailure {
        RPCFailure(.unavailable, "object \(id.short) is not sealed yet (its writer has not finished): ask again")
    }

    /// Wakes the readers waiting for `id`'s seal (all of them with no id); they look again.
    func wakeSealWaiters(_ id: UniqueID? = nil) {
        guard !sealWaiters.isEmpty else { return }
        let woken: [CheckedContinuation<Void, Never>]
        if let id {
            woken = sealWaiters.removeValue(forKey: id) ?? []
        } else {
            woken = sealWaiters.values.flatMap { $0 }
            sealWaiters.removeAll()
        }
        for waiter in woken { waiter.resume() }
    }

    /// Where the objects lie here; one not here is pulled from a node holding it first.
    private func storedObjects(_ request: GetStoredObjectsRequest, reader: UInt32) async -> GetStoredObjectsReply {
        var reply = GetStoredObjectsReply()
        let hints = request.holderNodeIds.filter { $0.count == 16 }.map { UniqueID(bytes: $0) }
        for bytes in request.objectIds {
            var object = StoredObject()
            object.objectId = bytes
            guard bytes.count == 16 else {
                object.status = Status(code: .invalidArgument, message: "object_id must be 16 bytes")
                reply.objects.append(object)
                continue
            }
            let id = UniqueID(bytes: bytes)
            do {
                guard await untilSealed(id) else { throw Self.notSealed(id) }
                // A copy pulled here can be evicted again before this resumes: look once more.
                var location = try store.location(id)
                for _ in 0..<3 where location == nil {
                    _ = try await pull(id, hints: hints)
                    location = try store.location(id)
                }
                guard let location else { throw RPCFailure(.objectStoreFull, "object \(id.short) was evicted as soon as it was pulled: the store is too full") }
                object.location = location
                object.found = true
                if request.pin { store.pin(id, for: reader) }
            } catch let failure as RPCFailure {
                object.status = Status(code: failure.code, message: failure.message)
            } catch {
                object.status = Status(code: .objectLost, message: "\(error)")
            }
            reportDropped()
            reply.objects.append(object)
        }
        return reply
    }

    /// Drops reader pins taken by GetStoredObjects.
    private func releaseObjects(_ request: ReleaseObjectsRequest, reader: UInt32) -> ReleaseObjectsReply {
        for id in request.objectIds where id.count == 16 { store.unpin(UniqueID(bytes: id), for: reader) }
        return ReleaseObjectsReply()
    }

    /// Frees objects here; unless `local_only`, also on every other node the directory names.
    private func freeObjects(_ request: FreeObjectsRequest) async -> FreeObjectsReply {
        var reply = FreeObjectsReply()
        let all = request.objectIds.filter { $0.count == 16 }.map { UniqueID(bytes: $0) }
        // Created here and never lent to another node: this was the only copy.
        let onlyHere = Set(all.filter { store.entries[$0]?.primary == true && !lentObjects.contains($0) })
        reply.freed = UInt32(all.filter { store.free($0) }.count)
        for id in all {
            wakeSealWaiters(id)
            lentObjects.remove(id)
        }
        if lentObjects.count > 100_000 { lentObjects = lentObjects.filter { store.entries[$0] != nil } }
        reportDropped()
        let ids = all.filter { !onlyHere.contains($0) }
        if !request.localOnly, !ids.isEmpty, let head {
            let (peers, view, me) = (self.peers, clusterView, nodeID)
            // Holders the owner named (the directory may not have heard of them yet), and
            // those the directory knows.
            let named = request.holderNodeIds.filter { $0.count == 16 }.map { UniqueID(bytes: $0) }.filter { $0 != me }
            Task {
                var byNode: [UniqueID: [[UInt8]]] = [:]
                for node in named { byNode[node] = ids.map(\.bytes) }
                var lookup = GetObjectLocationsRequest()
                lookup.objectIds = ids.map(\.bytes)
                let found = try? await head.call(ObjectDirectoryRPC.getObjectLocations, lookup, timeout: .seconds(5))
                for object in found?.objects ?? [] {
                    for node in object.nodeIds where node.count == 16 && UniqueID(bytes: node) != me && !named.contains(UniqueID(bytes: node)) {
                        byNode[UniqueID(bytes: node), default: []].append(object.objectId)
                    }
                }
                for (node, objects) in byNode {
                    guard let url = view[node]?.address?.url, let client = try? await peers.client(url) else { continue }
                    var free = FreeObjectsRequest()
                    free.objectIds = objects
                    free.localOnly = true
                    _ = try? await client.call(ObjectManagerRPC.freeObjects, free, timeout: .seconds(5))
                }
            }
        }
        return reply
    }

    // MARK: - Pulls between nodes

    /// Copies an object from a node that holds it into this store (one pull per object at a
    /// time; concurrent asks wait for the same pull). Holders named by the owner are tried
    /// first, then those the head's directory names.
    func pull(_ id: UniqueID, hints: [UniqueID]) async throws -> ShmLocation {
        if let running = pulls[id] { return try await running.value }
        let task = Task { try await self.pullFromHolders(id, hints: hints) }
        pulls[id] = task
        defer { pulls[id] = nil }
        return try await task.value
    }

    private func pullFromHolders(_ id: UniqueID, hints: [UniqueID]) async throws -> ShmLocation {
        var tried: Set<UniqueID> = [nodeID]
        var failures: [String] = []
        var candidates = hints
        var askedDirectory = false
        while true {
            for holder in candidates where !tried.contains(holder) {
                tried.insert(holder)
                guard let url = clusterView[holder]?.address?.url else {
                    failures.append("node \(holder.short) is not alive")
                    continue
                }
                do {
                    return try await pull(id, from: url)
                } catch let failure as RPCFailure where failure.code == .objectStoreFull {
                    throw failure
                } catch {
                    failures.append("node \(holder.short): \(error)")
                }
            }
            guard !askedDirectory, let head else { break }
            askedDirectory = true
            var lookup = GetObjectLocationsRequest()
            lookup.objectIds = [id.bytes]
            let found = try? await head.call(ObjectDirectoryRPC.getObjectLocations, lookup, timeout: .seconds(5))
            candidates = (found?.objects.first?.nodeIds ?? []).filter { $0.count == 16 }.map { UniqueID(bytes: $0) }
        }
        throw RPCFailure(.objectLost, "no live node holds it"
                         + (failures.isEmpty ? "" : " (\(failures.joined(separator: "; ")))"))
    }

    private func pull(_ id: UniqueID, from url: String) async throws -> ShmLocation {
        let holder = try await peers.client(url)
        var ask = GetObjectInfoRequest()
        ask.objectId = id.bytes
        var described = GetObjectInfoReply()
        // UNAVAILABLE: the holder's copy is not sealed yet, and it holds no more readers.
        for attempt in 1... {
            do {
                described = try await holder.call(ObjectManagerRPC.getObjectInfo, ask, timeout: .seconds(10))
                break
            } catch let error as WireError {
                guard case let .remote(_, _, code, _) = error, code == .unavailable,
                      let delay = RPCClient.delayBeforeAskingAgain(after: attempt) else { throw error }
                try await Task.sleep(for: delay)
            }
        }
        guard let info = described.info else { throw RPCFailure(.objectLost, "the holder described nothing") }
        let size = info.dataSize
        let location = try store.create(id, size: size, .init(owner: UInt32.max, job: nil, ownerURL: info.owner?.url ?? "",
                                                               jobID: info.jobId, primary: false, offset: UInt64(info.dataOffset)))
        let generation = store.entries[id]?.generation
        reportDropped()
        do {
            let second = try? await chunkPeers.client(url)
            try await Self.copyChunks(of: id, size: size, chunk: max(described.chunkSize, 1 << 16), from: [holder] + (second.map { [$0] } ?? []),
                                      into: location)
        } catch {
            if store.entries[id]?.generation == generation {
                _ = try? store.seal(id, abort: true)
            } else if let generation {
                store.writeEnded(generation: generation)
            }
            wakeSealWaiters(id)
            throw error
        }
        // Freed (and perhaps made again) while the chunks travelled: this copy is not wanted.
        guard store.entries[id]?.generation == generation else {
            if let generation { store.writeEnded(generation: generation) }
            throw RPCFailure(.objectLost, "object \(id.short) was freed while it was being pulled")
        }
        defer { wakeSealWaiters(id) }
        try store.seal(id, abort: false)
        reportHeld(id, size: size, ownerURL: info.owner?.url ?? "")
        return location
    }

    /// Fetches the chunks with `pullWindow` of them in flight, spread over the connections to
    /// the holder, each written into the new object's range as it arrives (through this
    /// process's mapping of the arena when the range's pages are in memory already).
    private nonisolated static func copyChunks(of id: UniqueID, size: UInt64, chunk: UInt32, from connections: [RPCClient],
                                               into location: ShmLocation) async throws {
        let offsets = Array(stride(from: UInt64(0), to: size, by: Int(chunk)))
        try await withThrowingTaskGroup(of: Void.self) { group in
            var next = 0
            func fetch(_ offset: UInt64) {
                let holder = connections[Int(offset / UInt64(chunk)) % connections.count]
                group.addTask {
                    var request = PullObjectChunkRequest()
                    request.objectId = id.bytes
                    request.offset = offset
                    request.length = UInt32(min(UInt64(chunk), size - offset))
                    // The holder answers UNAVAILABLE when it spilled or moved the object while
                    // reading the chunk: asked again, it reads the object where it is now.
                    for attempt in 1... {
                        do {
                            return try await copyChunk(request, from: holder, into: location, objectSize: size)
                        } catch let WireError.remote(_, _, code, _) where code == .unavailable && attempt < 3 {
                            continue
                        }
                    }
                }
            }
            while next < min(pullWindow, offsets.count) { fetch(offsets[next]); next += 1 }
            while try await group.next() != nil {
                if next < offsets.count { fetch(offsets[next]); next += 1 }
            }
        }
    }

    private nonisolated static func copyChunk(_ request: PullObjectChunkRequest, from holder: RPCClient, into location: ShmLocation,
                                              objectSize: UInt64) async throws {
        try await holder.callBulk(ObjectManagerRPC.pullObjectChunk, request, field: chunkDataField, bytes: \.data,
                                  timeout: .seconds(60)) { bytes in
            guard bytes.count == Int(request.length) else {
                throw RPCFailure(.objectLost, "chunk at \(request.offset) came back with \(bytes.count) of \(request.length) bytes")
            }
            var part = location
            part.offset += request.offset
            part.dataSize = UInt64(bytes.count)
            do {
                try SharedSegment.write(part, [bytes])
            } catch let SharedSegment.Failure.cannotWrite(_, reason, full) where full {
                throw RPCFailure(.objectStoreFull, "the object store cannot fit \(objectSize) bytes: shared memory (/dev/shm) is full (\(reason))")
            }
        }
    }

    private func objectInfo(_ request: GetObjectInfoRequest) async throws -> GetObjectInfoReply {
        let id = UniqueID(bytes: request.objectId)
        guard await untilSealed(id) else { throw Self.notSealed(id) }
        guard let entry = store.entries[id], entry.sealed else {
            throw RPCFailure(.notFound, "object \(id.short) is not in node \(nodeID.short)'s store")
        }
        if entry.primary { lentObjects.insert(id) }
        var reply = GetObjectInfoReply()
        reply.info = store.info(id, entry: entry, node: nodeID, now: .now)
        reply.chunkSize = Self.pullChunkSize
        return reply
    }

    /// A chunk goes out as a bulk frame: read from shared memory (or the spill file) straight
    /// into the reply, outside this actor.
    private func objectChunk(_ request: PullObjectChunkRequest) throws -> BulkReply {
        let id = UniqueID(bytes: request.objectId)
        if store.entries[id]?.primary == true { lentObjects.insert(id) }
        let source = try store.chunk(id, offset: request.offset, length: min(request.length, 64 << 20))
        return BulkReply(field: Self.chunkDataField, count: source.count) { buffer in
            if let base = buffer.baseAddress { try source.read(into: base) }
        }
    }

    /// `PullObjectChunkReply.data`'s field number.
    static let chunkDataField: UInt32 = 2

    private func listStoredObjects(_ request: ListStoredObjectsRequest) -> ListStoredObjectsReply {
        var reply = ListStoredObjectsReply()
        reply.stats = store.stats(node: nodeID)
        let now = ContinuousClock.now
        var objects = store.entries.filter { $0.value.sealed }
            .filter { request.jobId.isEmpty || ($0.value.job ?? $0.value.jobID) == request.jobId }
            .map { store.info($0.key, entry: $0.value, node: nodeID, now: now) }
            .sorted { $0.dataSize > $1.dataSize }
        if request.limit > 0, objects.count > Int(request.limit) {
            objects = Array(objects.prefix(Int(request.limit)))
            reply.truncated = true
        }
        reply.objects = objects
        return reply
    }

    // MARK: - The head's object directory

    private func reportHeld(_ id: UniqueID, size: UInt64, ownerURL: String) {
        var location = ObjectLocation()
        location.objectId = id.bytes
        location.nodeId = nodeID.bytes
        location.size = size
        if !ownerURL.isEmpty { location.owner = ProcessAddress(url: ownerURL, nodeId: []) }
        unreportedLocations.append((location, held: true))
        scheduleDirectoryReport()
    }

    /// Copies the store dropped (freed, evicted, aborted) leave the directory; spills become
    /// events on the head.
    func reportDropped() {
        let spills = store.takeSpills()
        if !spills.isEmpty, let head {
            var request = ReportEventsRequest()
            request.events = spills.map { spill in
                var event = Event()
                event.kind = .objectSpilled
                event.severity = .info
                event.message = "object \(spill.id.short) (\(spill.size) bytes) spilled to \(spill.path): the object store of node \(nodeID.short) was full"
                event.source = "node \(nodeID.short)"
                event.nodeId = nodeID.bytes
                event.objectId = spill.id.bytes
                event.labels = ["size": String(spill.size), "spill_url": "file://" + spill.path]
                return event
            }
            Task { _ = try? await head.call(HealthMetricsRPC.reportEvents, request, timeout: .seconds(5)) }
        }
        let dropped = store.takeDropped()
        guard !dropped.isEmpty else { return }
        for id in dropped {
            var location = ObjectLocation()
            location.objectId = id.bytes
            location.nodeId = nodeID.bytes
            unreportedLocations.append((location, held: false))
        }
        scheduleDirectoryReport()
    }

    /// Reports travel in batches, a few milliseconds after the first (puts are not slowed by
    /// a round trip to the head).
    private func scheduleDirectoryReport() {
        guard directoryReport == nil, head != nil else {
            if head == nil { unreportedLocations.removeAll() }
            return
        }
        directoryReport = Task {
            try? await Task.sleep(for: .milliseconds(10))
            await self.sendDirectoryReport()
        }
    }

    private func sendDirectoryReport() async {
        // One report task at a time (directoryReport stays set), so an add and a later
        // removal of the same copy reach the head in order.
        defer { directoryReport = nil }
        while !unreportedLocations.isEmpty {
            let batch = unreportedLocations
            unreportedLocations.removeAll()
            await sendDirectoryBatch(batch)
        }
    }

    private func sendDirectoryBatch(_ batch: [(location: ObjectLocation, held: Bool)]) async {
        guard let head, !batch.isEmpty else { return }
        // In order: an add and a later removal of the same copy must arrive in that order.
        var index = 0
        while index < batch.count {
            let held = batch[index].held
            var run: [ObjectLocation] = []
            while index < batch.count, batch[index].held == held {
                run.append(batch[index].location)
                index += 1
            }
            if !held {
                var request = RemoveObjectLocationsRequest()
                request.locations = run
                _ = try? await head.call(ObjectDirectoryRPC.removeObjectLocations, request, timeout: .seconds(5))
            } else {
                var request = AddObjectLocationsRequest()
                request.locations = run
                _ = try? await head.call(ObjectDirectoryRPC.addObjectLocations, request, timeout: .seconds(5))
            }
        }
    }
}
