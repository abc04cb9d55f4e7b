import StarlingCore
import StarlingWire
import Synchronization

/// The owner's reference counting: a value is freed (in this process, and in the object
/// stores holding it) once the last local ref to it is gone, unless a ref to it was lent to
/// another process. Refs in a task's input are held by the pending task until it finished;
/// refs a task kept after its run, or passed to actors or in results, are lent: their values
/// stay until the job ends, when their nodes free them (a borrower may hold a lent ref as long
/// as it likes).
final class ReferenceCounter: Sendable {
    private let objects: ObjectTable
    private let stored: StoredObjects
    private let node: RPCClient
    /// Called with a task result's id when its lineage can go.
    private let forget: @Sendable (UniqueID) -> Void

    init(objects: ObjectTable, stored: StoredObjects, node: RPCClient, forgetLineage: @escaping @Sendable (UniqueID) -> Void) {
        self.objects = objects
        self.stored = stored
        self.node = node
        forget = forgetLineage
    }

    /// A ref for a new object of this process.
    func reference(_ id: UniqueID) -> LocalReference { LocalReference(id, counter: self) }

    func lend(_ id: UniqueID) { objects.lend([id]) }

    func isLent(_ id: UniqueID) -> Bool { objects.isLent(id) }

    /// The last local ref to `id` is gone.
    func release(_ id: UniqueID) {
        guard !isLent(id) else { return }
        let put = stored.remove(id) != nil
        let holder = objects.release(id)
        // Only results in a node's store have lineage (an inline value needs no rebuilding):
        // the common small result costs no hop to the submitter.
        if holder != nil { forget(id) }
        if put || holder != nil { Self.free([id], holder: holder, via: node) }
    }

    /// Frees objects in the store of `node`, of `holder` (the node a worker stored a result
    /// in), and of every other node the directory knows holds copies.
    static func free(_ ids: [UniqueID], holder: [UInt8]? = nil, via node: RPCClient) {
        var request = FreeObjectsRequest()
        request.objectIds = ids.map(\.bytes)
        if let holder { request.holderNodeIds = [holder] }
        // On its way before this returns: a new object the caller makes next finds the freed
        // range ready for reuse.
        node.post(ObjectManagerRPC.freeObjects, request, timeout: .seconds(10))
    }
}
