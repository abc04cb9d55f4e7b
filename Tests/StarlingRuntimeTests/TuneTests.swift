import Foundation
import Testing
@testable import StarlingNode

/// A fresh directory under /tmp for one test's experiment, removed by `body`'s end.
func withExperimentDirectory<T>(_ body: (String) async throws -> T) async throws -> T {
    let directory = NSTemporaryDirectory() + "starling-tune-test-" + UUID().uuidString.prefix(8)
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    return try await body(directory)
}

/// Runs `body` on a new thread (not on Swift's cooperative pool) and returns its result.
func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        Thread.detachNewThread { continuation.resume(returning: body()) }
    }
}

@Suite("Tune on a cluster (real processes)")
struct TuneTests {
    @Test("a trial whose worker is killed with SIGKILL continues from its last checkpoint")
    func workerKilled() async throws {
        try await withExperimentDirectory { directory in
            let result = try await runScenario(["tune-worker-killed", directory])
            // Counts run on 1…8 without a reset: the new actor restored the last checkpoint's count.
            #expect(result.hasPrefix("status=terminated failures=1 iterations=8 counts=1,2,3,4,5,6,7,8 pids=2 killedAfter="), "\(result)")
            let killedAfter = try #require(Int(result.split(separator: "=").last ?? ""))
            #expect(killedAfter >= 3)
            let starts = try String(contentsOfFile: directory + "/starts.log", encoding: .utf8)
            #expect(starts == "0 0\n0 \(killedAfter)\n", "a fresh start, then a restore from the checkpoint the driver held: \(starts)")
        }
    }

    @Test("a driver killed mid-sweep and run again resumes: finished trials are not rerun, running ones continue from checkpoints")
    func driverKilled() async throws {
        try await withExperimentDirectory { directory in
            let journalPath = directory + "/resumable/trials.jsonl"
            let (process, output, errors) = try startScenario(["tune-resume", directory])
            defer { try? FileManager.default.removeItem(atPath: errors) }
            let pid = process.processIdentifier
            // Kill once two trials finished and an unfinished one has a checkpoint (the journal
            // holds each trial's record every time it changes; the last line of a trial wins).
            // Watched from a thread of its own: other tests block the two threads of Swift's
            // cooperative pool while they wait for their processes, for seconds at a time.
            let (finishedAtKill, continuing) = await onOwnThread { () -> (Set<Int>, Set<Int>) in
                let deadline = Date().addingTimeInterval(60)
                while Date() < deadline {
                    var status: [Int: String] = [:]
                    for line in ((try? Data(contentsOf: URL(fileURLWithPath: journalPath))) ?? Data()).split(separator: 10) {
                        if let record = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any],
                           let id = record["id"] as? Int, let value = record["status"] as? String {
                            status[id] = value
                        }
                    }
                    let finished = Set(status.filter { $0.value == "terminated" }.keys)
                    let running = status.filter { $0.value == "running" }.keys
                    let checkpointed = Set(running.filter { FileManager.default.fileExists(atPath: directory + String(format: "/resumable/trial_%04d/checkpoint.bin", $0)) })
                    if finished.count >= 2, !checkpointed.isEmpty {
                        kill(pid, SIGKILL)
                        return (finished, checkpointed)
                    }
                    usleep(10_000)
                }
                return ([], [])
            }
            kill(pid, SIGKILL)  // also when the condition never came: the test must not leave it running
            let printed = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            try await expectNoLeftovers(of: pid, allowSession: true)
            try #require(!finishedAtKill.isEmpty, "the sweep never reached two finished trials and a checkpoint: \(printed)")
            #expect(process.terminationReason == .uncaughtSignal)

            let result = try await runScenario(["tune-resume", directory])
            let fields = result.split(separator: " ")
            #expect(fields.first == "resumed=true", "\(result)")
            let trials = fields.dropFirst()
            #expect(trials.count == 6, "\(result)")
            // Every trial ends with counts 1…6, however often it was started.
            for trial in trials { #expect(trial == "terminated:6:1.2.3.4.5.6", "\(result)") }

            let starts = try String(contentsOfFile: directory + "/starts.log", encoding: .utf8).split(separator: "\n")
            func startsOf(_ trial: Int) -> [Int] {
                starts.compactMap { line -> Int? in
                    let parts = line.split(separator: " ").compactMap { Int($0) }
                    return parts.count == 2 && parts[0] == trial ? parts[1] : nil
                }
            }
            for trial in finishedAtKill { #expect(startsOf(trial) == [0], "finished trial \(trial) ran again: \(starts)") }
            for trial in continuing {
                let list = startsOf(trial)
                #expect(list.count == 2 && list[0] == 0 && list[1] > 0, "trial \(trial) should continue from a checkpoint: \(list)")
            }
        }
    }

    @Test("training functions run under ASHA: the worse trials stop at the first rung, the best runs to the end; progress reaches the head as metrics")
    func functionASHA() async throws {
        try await withExperimentDirectory { directory in
            let result = try await runScenario(["tune-function-asha", directory])
            #expect(result == "8:terminated:4 7:stopped:1 6:stopped:1 5:stopped:1 4:stopped:1 3:stopped:1 2:stopped:1 1:stopped:1 best=8"
                     + " metrics=error=0,pending=0,running=0,stopped=7,terminated=1 best_metric=32.0", "\(result)")
            for name in ["experiment_state.json", "summary.json", "results.txt", "learning_curves.svg", "trial_0000/result.json", "trial_0000/progress.csv", "trial_0000/params.json"] {
                #expect(FileManager.default.fileExists(atPath: directory + "/function/" + name), "missing \(name)")
            }
        }
    }

    @Test("a sweep whose metric the trials do not report fails each trial at its first result, naming what they reported")
    func missingMetric() async throws {
        try await withExperimentDirectory { directory in
            let result = try await runScenario(["tune-bad-metric", directory])
            let expected = "error:1:the result has no metric \"acc\" to optimise; it reported score"
            #expect(result == "\(expected) | \(expected)", "\(result)")
        }
    }

    @Test("a trial with several bundles gets a placement group, runs work in it, and releases it at its end")
    func bundles() async throws {
        try await withExperimentDirectory { directory in
            let result = try await runScenario(["tune-bundles", directory])
            #expect(result == "terminated:2:49 terminated:2:49 errors=[] cpus=free", "\(result)")
        }
    }

    @Test("population-based training: the weakest trial copies a leader's checkpoint and jumps to its height")
    func populationBasedTraining() async throws {
        try await withExperimentDirectory { directory in
            let result = try await runScenario(["tune-pbt", directory])
            let fields = result.split(separator: " ")
            let exploits = Int(fields.first?.split(separator: "=").last ?? "") ?? 0
            #expect(exploits >= 1, "\(result)")
            for jump in fields.dropFirst() { #expect(jump.hasSuffix(":true"), "\(result)") }
        }
    }
}
