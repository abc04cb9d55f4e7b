import StarlingCodec
import StarlingCore
import StarlingWire

/// Refs that cross processes: the owner of an object (the process that submitted its task or
/// put it) answers `GetObjectStatus` for it; any other process holding the ref (a borrower: a
/// task or actor it was passed to) asks the owner. Small values travel inline; for large ones
/// the owner names the nodes holding them and the borrower reads them through its own node.
enum ObjectOwnership {
    /// Serves this process's objects to borrowers.
    static func addRoutes(to routes: inout RouteTable, objects: ObjectTable, stored: StoredObjects, nodeID: UniqueID) {
        routes.add(WorkerRPC.getObjectStatus) { request, _ in
            let id = UniqueID(bytes: request.objectId)
            var reply = GetObjectStatusReply()
            if let location = stored.location(id) {
                // In this node's store: the borrower reads it there.
                reply.state = .ready
                reply.isInline = false
                reply.size = location.dataSize
                reply.nodeIds = [nodeID.bytes]
                return reply
            }
            guard objects.knows(id) else {
                throw RPCFailure(.notFound, "this process does not own object \(id.short)")
            }
            let wait: Duration? = request.waitMs == 0 ? .milliseconds(1) : .milliseconds(Int(min(request.waitMs, 30_000)))
            do {
                reply.inlineValue = try await objects.value(id, timeout: wait)
                if let node = objects.storeNode(id) {
                    // A result a worker put in its node's store: the borrower reads it there.
                    reply.inlineValue = []
                    reply.isInline = false
                    reply.nodeIds = [node]
                    reply.state = .ready
                    return reply
                }
                reply.isInline = true
                reply.size = UInt64(reply.inlineValue.count)
                reply.state = .ready
            } catch StarlingError.getTimedOut {
                reply.state = .pending
            } catch {
                reply.state = .failed
                var remote = RemoteError()
                remote.code = .userError
                remote.typeName = String(reflecting: type(of: error))
                remote.message = "\(error)"
                remote.encodedError = RemoteErrorCoding.encode(error)
                reply.error = remote
            }
            return reply
        }
    }

    /// The value of an object another process owns, asked of its owner (long polls until it is
    /// ready, failed, or `timeout` passes).
    static func borrow(_ id: UniqueID, from owner: String, pool: ConnectionPool, node: RPCClient, timeout: Duration?) async throws -> [UInt8] {
        switch try await whereIs(id, owner: owner, pool: pool, timeout: timeout) {
        case let .inline(bytes): return bytes
        case let .stored(holders): return try await StoredObjects.get(id, holders: holders, node: node)
        }
    }

    enum Whereabouts {
        case inline([UInt8])
        /// In the stores of these nodes.
        case stored([[UInt8]])
    }

    /// Where the value of an object another process owns is: asked of its owner, waiting until
    /// it is ready (or failed, or `timeout` passes).
    static func whereIs(_ id: UniqueID, owner: String, pool: ConnectionPool, timeout: Duration?) async throws -> Whereabouts {
        let deadline = timeout.map { ContinuousClock.now + $0 }
        let client: RPCClient
        do {
            client = try await pool.client(owner)
        } catch {
            throw StarlingError.ownerDied(object: id.short, detail: "its owner at \(owner) cannot be reached: \(error)")
        }
        while true {
            var request = GetObjectStatusRequest()
            request.objectId = id.bytes
            let remaining = deadline.map { max(.milliseconds(1), $0 - .now) } ?? .seconds(10)
            request.waitMs = UInt32(min(10_000, max(1, remaining.components.seconds * 1000 + remaining.components.attoseconds / 1_000_000_000_000_000)))
            let reply: GetObjectStatusReply
            do {
                reply = try await client.call(WorkerRPC.getObjectStatus, request, timeout: .seconds(40))
            } catch let WireError.remote(_, _, code, message) where code == .notFound {
                throw StarlingError.ownerDied(object: id.short, detail: message)
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                pool.drop(owner)
                throw StarlingError.ownerDied(object: id.short, detail: "asking its owner at \(owner) failed: \(error)")
            }
            switch reply.state {
            case .ready where reply.isInline:
                return .inline(reply.inlineValue)
            case .ready:
                // In a node's store: read through this process's node, which pulls it there.
                return .stored(reply.nodeIds)
            case .failed:
                if let remote = reply.error, let rebuilt = RemoteErrorCoding.decode(remote.encodedError) { throw rebuilt }
                throw StarlingError.cluster(reply.error?.message ?? "object \(id.short) failed at its owner")
            default:
                if let deadline, ContinuousClock.now >= deadline {
                    let seconds = Double(timeout!.components.seconds) + Double(timeout!.components.attoseconds) / 1e18
                    throw StarlingError.getTimedOut(object: id.short, seconds: seconds)
                }
                try Task.checkCancellation()
            }
        }
    }
}
