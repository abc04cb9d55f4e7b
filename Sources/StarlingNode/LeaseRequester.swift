import StarlingCore
import StarlingLog
import StarlingWire

/// Asks a node for a worker lease and follows spillbacks: the owner side of step 2 of the
/// task path, shared by task owners and the head (which leases workers for actors).
public enum LeaseRequester {
    /// Lease requests after spillbacks to unreachable nodes before giving up.
    public static let maxHops = 50

    /// Returns the grant and the node that granted it (give the lease back there). A failure at
    /// the first node is thrown; a node spilled to that fails or cannot be reached sends the
    /// request back to the first node, whose view of the cluster catches up within a heartbeat.
    public static func acquire(_ initial: RequestWorkerLeaseRequest, at first: RPCClient,
                               connect: @Sendable (String) async throws -> RPCClient,
                               forget: @Sendable (RPCClient) async -> Void = { _ in }) async throws -> (RequestWorkerLeaseReply, RPCClient) {
        let log = Logger(label: "lease")
        var request = initial
        var target = first
        var lastError: Error?
        for _ in 0..<maxHops where !Task.isCancelled {
            do {
                let reply = try await target.call(NodeManagerRPC.requestWorkerLease, request, timeout: .seconds(365 * 24 * 3600))
                if reply.granted, reply.workerAddress?.url.isEmpty == false { return (reply, target) }
                guard let spill = reply.spillback, !spill.url.isEmpty else {
                    throw RPCFailure(.internal, "node \(target.peer) neither granted nor spilled the lease")
                }
                do {
                    target = try await connect(spill.url)
                    request.grantOrReject = true
                    request.spillCount += 1
                } catch {
                    lastError = error
                    log.info("cannot reach node \(spill.url) spilled to (\(error)); asking \(first.peer) again")
                    try? await Task.sleep(for: .milliseconds(50))
                }
            } catch {
                if target === first { throw error }
                lastError = error
                log.info("lease request at \(target.peer) failed (\(error)); asking \(first.peer) again")
                await forget(target)
                target = first
                request.grantOrReject = false
                try? await Task.sleep(for: .milliseconds(50))
            }
        }
        throw lastError ?? RPCFailure(.unavailable, "no node granted a worker after \(maxHops) attempts")
    }
}
