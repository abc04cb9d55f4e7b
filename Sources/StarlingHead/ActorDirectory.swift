import StarlingCore
import StarlingWire

/// The head's record of actors: their specs, where each incarnation runs, names by namespace,
/// and why the dead ones died. Pure state; `Head` drives creation and restarts.
struct ActorDirectory {
    struct Entry {
        var info: ActorInfo
        /// The worker hosting the current incarnation and the lease it holds there.
        var workerID: [UInt8] = []
        var leaseID: [UInt8] = []
        var nodeURL = ""
        /// Counts placements: one that finds a newer one started meanwhile gives up its worker.
        var placement: UInt64 = 0
    }

    private(set) var entries: [UniqueID: Entry] = [:]
    private var names: [String: UniqueID] = [:]

    static func key(_ name: String, _ namespace: String) -> String { "\(namespace)/\(name)" }

    /// The live actor holding `name` in `namespace`, if any.
    func named(_ name: String, namespace: String) -> UniqueID? {
        guard let id = names[Self.key(name, namespace)], let entry = entries[id], entry.info.state != .dead else { return nil }
        return id
    }

    mutating func register(_ spec: ActorSpec, nowUnixMs: Int64) throws -> UniqueID {
        guard spec.actorId.count == 16 else { throw RPCFailure(.invalidArgument, "actor_id must be 16 bytes, got \(spec.actorId.count)") }
        guard !spec.typeName.isEmpty else { throw RPCFailure(.invalidArgument, "actor \(spec.displayName) has no type_name") }
        let id = UniqueID(bytes: spec.actorId)
        guard entries[id] == nil else { throw RPCFailure(.alreadyExists, "actor \(id.short) is already registered") }
        var info = ActorInfo()
        info.spec = spec
        info.state = .pending
        info.startTimeUnixMs = nowUnixMs
        entries[id] = Entry(info: info)
        if !spec.name.isEmpty { names[Self.key(spec.name, spec.namespace)] = id }
        return id
    }

    subscript(id: UniqueID) -> Entry? {
        get { entries[id] }
        set { entries[id] = newValue }
    }

    /// The actors hosted by a worker, or on a node.
    func hosted(byWorker worker: [UInt8]) -> [UniqueID] {
        entries.filter { $0.value.workerID == worker && ($0.value.info.state == .alive || $0.value.info.state == .creating) }.map(\.key)
    }

    func hosted(onNode node: [UInt8]) -> [UniqueID] {
        entries.filter { $0.value.info.lastNodeId == node && ($0.value.info.state == .alive || $0.value.info.state == .creating) }.map(\.key)
    }

    /// Non-detached actors of a job (they end with it).
    func owned(byJob job: [UInt8]) -> [UniqueID] {
        entries.filter { $0.value.info.spec?.jobId == job && $0.value.info.spec?.lifetime != .detached && $0.value.info.state != .dead }.map(\.key)
    }

    mutating func markDead(_ id: UniqueID, reason: String, error: RemoteError?, nowUnixMs: Int64) {
        guard var entry = entries[id] else { return }
        entry.info.state = .dead
        entry.info.reason = reason
        entry.info.endTimeUnixMs = nowUnixMs
        if let error { entry.info.deathError = error }
        entry.workerID = []
        entry.leaseID = []
        entries[id] = entry
        if let spec = entry.info.spec, !spec.name.isEmpty, names[Self.key(spec.name, spec.namespace)] == id {
            names[Self.key(spec.name, spec.namespace)] = nil
        }
    }

    var all: [ActorInfo] { entries.values.map(\.info).sorted { $0.startTimeUnixMs < $1.startTimeUnixMs } }
}
