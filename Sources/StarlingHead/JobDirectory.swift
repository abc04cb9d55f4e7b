import StarlingCore
import StarlingWire

/// The head's record of jobs: one per driver run, with the executable its workers run.
struct JobDirectory {
    struct Entry {
        var info: JobInfo
        /// The driver's connection to the head: when it closes, the job is over.
        var connection: UInt32
    }

    private(set) var entries: [UniqueID: Entry] = [:]

    mutating func register(_ job: JobInfo, connection: UInt32, nowUnixMs: Int64) throws -> UniqueID {
        let id = job.jobId.isEmpty ? UniqueID.random() : UniqueID(bytes: job.jobId)
        guard id.bytes.count == 16 else { throw RPCFailure(.invalidArgument, "job_id must be 16 bytes, got \(job.jobId.count)") }
        if !job.executableHash.isEmpty, job.executableHash.count != 32 {
            throw RPCFailure(.invalidArgument, "executable_hash must be a SHA-256 (32 bytes), got \(job.executableHash.count)")
        }
        if let existing = entries[id] {
            guard existing.info.state == .running, existing.connection == connection else {
                throw RPCFailure(.alreadyExists, "job \(id.short) is already registered (\(existing.info.state))")
            }
            return id
        }
        var info = job
        info.jobId = id.bytes
        info.state = .running
        info.startTimeUnixMs = nowUnixMs
        entries[id] = Entry(info: info, connection: connection)
        return id
    }

    /// Ends a running job; returns false when it was not running.
    mutating func finish(_ id: UniqueID, state: JobState, exitCode: Int32, message: String, nowUnixMs: Int64) -> Bool {
        guard var entry = entries[id], entry.info.state == .running else { return false }
        entry.info.state = state
        entry.info.exitCode = exitCode
        entry.info.message = message
        entry.info.endTimeUnixMs = nowUnixMs
        entries[id] = entry
        return true
    }

    func jobs(drivenOver connection: UInt32) -> [UniqueID] {
        entries.filter { $0.value.connection == connection && $0.value.info.state == .running }.map(\.key)
    }

    func info(_ id: UniqueID) -> JobInfo? { entries[id]?.info }

    var all: [JobInfo] { entries.values.map(\.info).sorted { $0.startTimeUnixMs < $1.startTimeUnixMs } }
}
