import StarlingCore
import Synchronization

/// The owner's values: results of its tasks and its `put`s, with waiters for pending ones.
final class ObjectTable: Sendable {
    private enum Entry {
        case pending([Int: CheckedContinuation<[UInt8], Error>])
        case ready([UInt8])
        case failed(StarlingError)
    }

    private struct Table {
        var entries: [UniqueID: Entry] = [:]
        /// Results a worker put in its node's store: their node (the entry holds no bytes).
        var inStore: [UniqueID: [UInt8]] = [:]
        var nextWaiter = 0
        /// Waiters whose task was cancelled before they registered.
        var cancelledWaiters: Set<Int> = []
        /// Pending objects whose refs are all gone: dropped as soon as they complete.
        var unreferenced: Set<UniqueID> = []
        /// Objects whose refs were lent to other processes: kept until the job ends.
        var lent: Set<UniqueID> = []
    }

    private let table = Mutex(Table())

    func create(_ id: UniqueID) {
        table.withLock { $0.entries[id] = .pending([:]) }
    }

    func fulfill(_ id: UniqueID, _ bytes: [UInt8]) {
        complete(id, .ready(bytes)) { $0.resume(returning: bytes) }
    }

    /// The task's result is in `node`'s object store; false when no ref wants it any more
    /// (the caller frees it there).
    func fulfillStored(_ id: UniqueID, node: [UInt8]) -> Bool {
        let (wanted, waiters) = table.withLock { table -> (Bool, [CheckedContinuation<[UInt8], Error>]) in
            guard case let .pending(waiters)? = table.entries[id] else { return (false, []) }
            if table.unreferenced.remove(id) != nil {
                table.entries[id] = nil
                return (false, Array(waiters.values))
            }
            table.inStore[id] = node
            table.entries[id] = .ready([])
            return (true, Array(waiters.values))
        }
        for waiter in waiters { waiter.resume(returning: []) }
        return wanted
    }

    /// A ref to `id` went to another process for good: keep the value for the job.
    func lend(_ ids: some Sequence<UniqueID>) {
        table.withLock { table in for id in ids { table.lent.insert(id) } }
    }

    func isLent(_ id: UniqueID) -> Bool { table.withLock { $0.lent.contains(id) } }

    /// The last ref to `id` is gone: forget its value (a pending one once it completes).
    /// Returns the node holding it when the value was in a node's store (the caller frees it).
    func release(_ id: UniqueID) -> [UInt8]? {
        table.withLock { table in
            switch table.entries[id] {
            case nil: return nil
            case .pending?:
                table.unreferenced.insert(id)
                return nil
            default:
                table.entries[id] = nil
                return table.inStore.removeValue(forKey: id)
            }
        }
    }

    /// The stored value was lost: pending again while its task runs once more.
    func reset(_ id: UniqueID) {
        table.withLock { table in
            table.inStore[id] = nil
            if case .pending? = table.entries[id] { return }
            table.entries[id] = .pending([:])
        }
    }

    /// Values held (live ones; pending ones are not counted), for `memory`.
    func summary() -> (count: Int, bytes: Int, inStore: Int) {
        table.withLock { table in
            var bytes = 0, count = 0
            for case let .ready(value) in table.entries.values { bytes += value.count; count += 1 }
            return (count, bytes, table.inStore.count)
        }
    }

    /// The node whose store holds `id`, when its value is there and not here.
    func storeNode(_ id: UniqueID) -> [UInt8]? {
        table.withLock { $0.inStore[id] }
    }

    func fail(_ id: UniqueID, _ error: StarlingError) {
        complete(id, .failed(error)) { $0.resume(throwing: error) }
    }

    private func complete(_ id: UniqueID, _ entry: Entry, _ resume: (CheckedContinuation<[UInt8], Error>) -> Void) {
        let waiters = table.withLock { table -> [CheckedContinuation<[UInt8], Error>] in
            guard case let .pending(waiters)? = table.entries[id] else { return [] }
            if table.unreferenced.remove(id) != nil {
                table.entries[id] = nil
                table.inStore[id] = nil
            } else {
                table.entries[id] = entry
            }
            return Array(waiters.values)
        }
        for waiter in waiters { resume(waiter) }
    }

    /// The value's bytes, waiting until it is ready (or `timeout` passes).
    func value(_ id: UniqueID, timeout: Duration?) async throws -> [UInt8] {
        var registered = 0
        let ready: [UInt8]? = try table.withLock { table in
            switch table.entries[id] {
            case let .ready(bytes)?: return bytes
            case let .failed(error)?: throw error
            case .pending?: table.nextWaiter += 1; registered = table.nextWaiter; return nil
            case nil: throw StarlingError.cluster("object \(id.short) is not owned by this process (refs of other owners arrive with the object store)")
            }
        }
        if let ready { return ready }
        let ticket = registered
        let watchdog = timeout.map { timeout in
            Task { [ticket] in
                try await Task.sleep(for: timeout)
                self.expire(id, ticket, StarlingError.getTimedOut(object: id.short, seconds: Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18))
            }
        }
        defer { watchdog?.cancel() }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let immediate: Result<[UInt8], Error>? = table.withLock { table in
                    if table.cancelledWaiters.remove(ticket) != nil { return .failure(CancellationError()) }
                    switch table.entries[id] {
                    case let .ready(bytes)?: return .success(bytes)
                    case let .failed(error)?: return .failure(error)
                    case var .pending(waiters)?:
                        waiters[ticket] = continuation
                        table.entries[id] = .pending(waiters)
                        return nil
                    case nil: return .failure(StarlingError.cluster("object \(id.short) was freed"))
                    }
                }
                if let immediate { continuation.resume(with: immediate) }
            }
        } onCancel: {
            if !expire(id, ticket, CancellationError()) {
                table.withLock { _ = $0.cancelledWaiters.insert(ticket) }
            }
        }
    }

    /// True when this process owns `id` (pending, ready or failed).
    func knows(_ id: UniqueID) -> Bool {
        table.withLock { $0.entries[id] != nil }
    }

    /// Ready (or failed) already, without waiting.
    func isReady(_ id: UniqueID) -> Bool {
        table.withLock { table in
            if case .pending? = table.entries[id] { return false }
            return table.entries[id] != nil
        }
    }

    /// Fails one waiter; false when it is not (or no longer) waiting.
    @discardableResult
    private func expire(_ id: UniqueID, _ ticket: Int, _ error: Error) -> Bool {
        let waiter = table.withLock { table -> CheckedContinuation<[UInt8], Error>? in
            guard case var .pending(waiters)? = table.entries[id], let waiter = waiters.removeValue(forKey: ticket) else { return nil }
            table.entries[id] = .pending(waiters)
            return waiter
        }
        waiter?.resume(throwing: error)
        return waiter != nil
    }

}
