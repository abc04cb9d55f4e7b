import StarlingCore
import StarlingWire

/// What owners and actor hosts report of their work: each owner's tasks per function and
/// state, and each hosted actor's calls. Reports are totals since the reporter started, so the
/// head keeps the latest report of each reporter and sums over reporters when asked (per job,
/// per function, per actor). Per-task state lives with owners (DESIGN.md); this is its summary.
struct TaskActivity {
    /// Counts by state, summed over functions or reporters.
    struct Totals: Equatable {
        var pending = 0, running = 0
        var finished: UInt64 = 0, failed: UInt64 = 0, retried: UInt64 = 0

        mutating func add(_ counts: TaskStateCounts) {
            pending += Int(counts.pending)
            running += Int(counts.running)
            finished += counts.finished
            failed += counts.failed
            retried += counts.retried
        }

        mutating func add(_ other: Totals) {
            add(other.counts(named: ""))
        }

        func counts(named name: String) -> TaskStateCounts {
            TaskStateCounts(functionName: name, pending: UInt32(clamping: pending), running: UInt32(clamping: running),
                            finished: finished, failed: failed, retried: retried)
        }
    }

    struct ActorCalls: Equatable {
        var className = ""
        var running = 0
        var succeeded: UInt64 = 0, failed: UInt64 = 0
        var busySeconds = 0.0
    }

    private struct Reporter {
        var job: [UInt8]
        var node: [UInt8]
        var sequence: UInt64
        var tasks: [TaskStateCounts] = []
        var actorCalls: [ActorCallCounts] = []
    }

    /// Reporters kept at most; past it, those of ended jobs go first, then the oldest.
    let capacity: Int
    private var reporters: [[UInt8]: Reporter] = [:]
    /// What reporters dropped by `trim` had counted, per job: kept so that totals never go down
    /// (Prometheus would read a counter reset).
    private var retired: [[UInt8]: Reporter] = [:]
    /// Reporters dropped: a later report of theirs is ignored (their totals are in `retired`).
    private var retiredIDs: Set<[UInt8]> = []
    private var endedJobs: Set<[UInt8]> = []
    private var arrival: [[UInt8]] = []

    init(capacity: Int = 5000) { self.capacity = capacity }

    /// Keeps the report's task and actor-call totals (a report without either changes nothing;
    /// one older than the reporter's last is ignored).
    mutating func apply(_ report: ReportMetricsRequest) {
        guard !report.tasks.isEmpty || !report.actorCalls.isEmpty, !report.reporterId.isEmpty,
              !retiredIDs.contains(report.reporterId) else { return }
        var reporter = reporters[report.reporterId] ?? Reporter(job: report.jobId, node: report.nodeId, sequence: 0)
        if reporters[report.reporterId] == nil { arrival.append(report.reporterId) }
        guard report.sequence == 0 || report.sequence > reporter.sequence else { return }
        reporter.sequence = report.sequence
        if !report.jobId.isEmpty { reporter.job = report.jobId }
        if !report.tasks.isEmpty { reporter.tasks = report.tasks }
        if !report.actorCalls.isEmpty { reporter.actorCalls = report.actorCalls }
        if endedJobs.contains(reporter.job) { Self.settle(&reporter) }
        reporters[report.reporterId] = reporter
        trim()
    }

    /// The reporter's process died: nothing of it is pending or running any more.
    mutating func reporterDied(_ id: [UInt8]) {
        guard var reporter = reporters[id] else { return }
        Self.settle(&reporter)
        reporters[id] = reporter
    }

    /// Every reporter on the node died with it.
    mutating func nodeDied(_ node: [UInt8]) {
        for (id, reporter) in reporters where reporter.node == node { reporterDied(id) }
    }

    /// The job ended: its owners' tasks are no longer pending or running.
    mutating func jobEnded(_ job: [UInt8]) {
        if endedJobs.count >= capacity {
            // Forget ended jobs none of whose reporters is kept.
            let kept = Set(reporters.values.map(\.job))
            endedJobs = endedJobs.filter { kept.contains($0) }
        }
        endedJobs.insert(job)
        for (id, reporter) in reporters where reporter.job == job { reporterDied(id) }
    }

    private static func settle(_ reporter: inout Reporter) {
        for index in reporter.tasks.indices {
            reporter.tasks[index].pending = 0
            reporter.tasks[index].running = 0
        }
        for index in reporter.actorCalls.indices { reporter.actorCalls[index].running = 0 }
    }

    private mutating func trim() {
        guard reporters.count > capacity else { return }
        let ended = arrival.filter { reporters[$0].map { endedJobs.contains($0.job) } ?? true }
        for id in ended.prefix(reporters.count - capacity) { retire(id) }
        while reporters.count > capacity, let oldest = arrival.first {
            retire(oldest)
            arrival.removeFirst()
        }
        arrival.removeAll { reporters[$0] == nil }
    }

    /// Drops a reporter, folding its totals into its job's retired counts.
    private mutating func retire(_ id: [UInt8]) {
        guard var reporter = reporters.removeValue(forKey: id) else { return }
        retiredIDs.insert(id)
        Self.settle(&reporter)
        var kept = retired[reporter.job] ?? Reporter(job: reporter.job, node: [], sequence: 0)
        for counts in reporter.tasks {
            if let index = kept.tasks.firstIndex(where: { $0.functionName == counts.functionName }) {
                kept.tasks[index].finished += counts.finished
                kept.tasks[index].failed += counts.failed
                kept.tasks[index].retried += counts.retried
            } else {
                kept.tasks.append(counts)
            }
        }
        for calls in reporter.actorCalls {
            if let index = kept.actorCalls.firstIndex(where: { $0.actorId == calls.actorId }) {
                kept.actorCalls[index].succeeded += calls.succeeded
                kept.actorCalls[index].failed += calls.failed
                kept.actorCalls[index].busySeconds += calls.busySeconds
            } else {
                kept.actorCalls.append(calls)
            }
        }
        retired[reporter.job] = kept
    }

    /// Every reporter kept, and the retired counts.
    private var counted: [Reporter] { Array(reporters.values) + Array(retired.values) }

    /// Totals over every owner.
    var cluster: Totals {
        var totals = Totals()
        for reporter in counted { for counts in reporter.tasks { totals.add(counts) } }
        return totals
    }

    /// Totals per job (jobs whose owners reported any task).
    var byJob: [[UInt8]: Totals] {
        var jobs: [[UInt8]: Totals] = [:]
        for reporter in counted { for counts in reporter.tasks { jobs[reporter.job, default: Totals()].add(counts) } }
        return jobs
    }

    /// Totals per job and function.
    var byFunction: [(job: [UInt8], function: String, totals: Totals)] {
        var functions: [[UInt8]: [String: Totals]] = [:]
        for reporter in counted {
            for counts in reporter.tasks { functions[reporter.job, default: [:]][counts.functionName, default: Totals()].add(counts) }
        }
        return functions.flatMap { job, byName in byName.map { (job: job, function: $0.key, totals: $0.value) } }
            .sorted { $0.job == $1.job ? $0.function < $1.function : $0.job.lexicographicallyPrecedes($1.job) }
    }

    /// Calls per actor, summed over the workers that hosted it (a restarted actor keeps its
    /// earlier incarnations' counts).
    var byActor: [[UInt8]: ActorCalls] {
        var actors: [[UInt8]: ActorCalls] = [:]
        for reporter in counted {
            for counts in reporter.actorCalls {
                var calls = actors[counts.actorId] ?? ActorCalls()
                calls.className = counts.className
                calls.running += Int(counts.running)
                calls.succeeded += counts.succeeded
                calls.failed += counts.failed
                calls.busySeconds += counts.busySeconds
                actors[counts.actorId] = calls
            }
        }
        return actors
    }
}
