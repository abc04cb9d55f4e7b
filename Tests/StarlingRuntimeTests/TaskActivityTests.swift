import Testing
@testable import StarlingHead
import StarlingWire

/// The head's summary of what owners report: totals per job and function, kept when reporters
/// are dropped past the capacity (counters never go down), and nothing left running once a job
/// ends or a reporter dies.
@Suite("Task activity at the head")
struct TaskActivityTests {
    func report(_ reporter: UInt8, job: UInt8, sequence: UInt64, finished: UInt64, running: UInt32 = 0) -> ReportMetricsRequest {
        var request = ReportMetricsRequest()
        request.reporterId = [reporter]
        request.jobId = [job]
        request.sequence = sequence
        request.tasks = [TaskStateCounts(functionName: "Square", running: running, finished: finished)]
        return request
    }

    @Test("totals survive reporters dropped past the capacity; an older report changes nothing")
    func monotonic() {
        var activity = TaskActivity(capacity: 2)
        activity.apply(report(1, job: 7, sequence: 2, finished: 10))
        activity.apply(report(1, job: 7, sequence: 1, finished: 3))
        activity.apply(report(2, job: 7, sequence: 1, finished: 5, running: 2))
        activity.apply(report(3, job: 8, sequence: 1, finished: 1))
        activity.apply(report(4, job: 8, sequence: 1, finished: 1))
        #expect(activity.byJob[[7]]?.finished == 15)
        #expect(activity.byJob[[8]]?.finished == 2)
        #expect(activity.cluster.finished == 17)
        // Reporter 2 was dropped: what it had running is no longer counted, and a later report
        // of it (totals that include what was kept) is not counted twice.
        #expect(activity.cluster.running == 0)
        activity.apply(report(2, job: 7, sequence: 2, finished: 6))
        #expect(activity.byJob[[7]]?.finished == 15)
    }

    @Test("a job's end and a reporter's death leave nothing pending or running")
    func settles() {
        var activity = TaskActivity()
        activity.apply(report(1, job: 7, sequence: 1, finished: 1, running: 3))
        activity.apply(report(2, job: 8, sequence: 1, finished: 1, running: 4))
        #expect(activity.cluster.running == 7)
        activity.jobEnded([7])
        #expect(activity.byJob[[7]]?.running == 0 && activity.byJob[[7]]?.finished == 1)
        activity.apply(report(1, job: 7, sequence: 2, finished: 2, running: 1))
        #expect(activity.byJob[[7]]?.running == 0 && activity.byJob[[7]]?.finished == 2, "a late report of an ended job runs nothing")
        activity.reporterDied([2])
        #expect(activity.cluster.running == 0 && activity.cluster.finished == 3)
    }
}
