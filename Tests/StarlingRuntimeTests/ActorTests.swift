import Foundation
import Testing

@Suite("Actors (real processes)")
struct ActorTests {
    @Test("spawned distributed actors: typed calls and errors, caller order, handles through tasks, nested tasks, kill")
    func actorLifecycle() async throws {
        let parts = try await runScenario(["actors"]).components(separatedBy: " | ")
        #expect(parts.count == 8, "\(parts)")
        guard parts.count == 8 else { return }
        #expect(parts[0] == "15", "a call returns its typed result")
        #expect(parts[1] == "Overdrawn(15,100)", "a Codable error thrown remotely is caught as its own type")
        #expect(parts[2] == "3 2.0 2 abab [[1, 2], [1, 2]]", "arrays, dictionaries, optionals, structs and generic arguments travel")
        #expect(parts[3] == "ordered", "200 calls made in order without waiting ran in that order")
        #expect(parts[4] == "115", "a task called the actor through a handle it was passed")
        #expect(parts[5] == "81", "an actor method submitted a task")
        #expect(parts[6] == "dead", "a call after kill fails with actorDied")
        #expect(parts[7] == "worker gone", "kill stops the actor's worker")
    }
}

@Suite("Actor concurrency (real processes)")
struct ActorConcurrencyTests {
    @Test("an actor runs one call at a time by default, and up to maxConcurrency reentrant calls when asked")
    func maxConcurrency() async throws {
        #expect(try await runScenario(["actor-concurrency"]) == "1 4")
    }
}

@Suite("Actor restarts (real processes)")
struct ActorRestartTests {
    @Test("kill -9 of an actor's worker: restarted with its config, the call retried; once restarts are used up calls fail at once naming the cause")
    func restartAfterWorkerKill() async throws {
        let parts = try await runScenario(["actor-restart"]).components(separatedBy: " | ")
        #expect(parts.count == 5, "\(parts)")
        guard parts.count == 5 else { return }
        #expect(parts[0] == "15")
        #expect(parts[1] == "11", "the restarted actor starts from its config (10) and the retried call adds 1")
        for failure in parts[2...3] {
            #expect(failure.hasPrefix("actor phoenix ("), "\(failure)")
            #expect(failure.contains("killed by signal 9 (SIGKILL) on node "), "\(failure)")
            #expect(failure.hasSuffix("restarts used: 1 of 1"), "\(failure)")
        }
        #expect(parts[4] == "fast", "calls to a dead actor fail at once")
    }
}

@Suite("Actor kill and exit (real processes)")
struct ActorExitTests {
    @Test("kill with restart gives a fresh incarnation; an exit from inside ends the actor for good")
    func killRestartAndExit() async throws {
        let parts = try await runScenario(["actor-exit"]).components(separatedBy: " | ")
        #expect(parts.count == 3, "\(parts)")
        guard parts.count == 3 else { return }
        #expect(parts[0] == "8", "the restarted actor starts again from its config (7 + 1)")
        #expect(parts[1] == "8")
        #expect(parts[2].contains("is dead"), "\(parts[2])")
        #expect(parts[2].contains("exited from inside"), "\(parts[2])")
    }
}

@Suite("Refs across processes (real processes)")
struct BorrowedRefTests {
    @Test("refs passed in task inputs and actor calls are fetched from their owner; an actor's own refs reach the driver; a failed one fails its borrower")
    func borrowedRefs() async throws {
        let parts = try await runScenario(["borrowed-refs"]).components(separatedBy: " | ")
        #expect(parts.count == 5, "\(parts)")
        guard parts.count == 5 else { return }
        #expect(parts[0] == "21")
        #expect(parts[1] == "116")
        #expect(parts[2] == "42")
        #expect(parts[3] == "\(9 << 20) true \(2 << 20) true \(3 * (2 << 20)) store 0",
                "large actor results and arguments arrive whole through the store: \(parts[3])")
        #expect(parts[4].contains("task Fail failed with StarlingTestApp.Fail.Boom: boom 3"), "\(parts[4])")
    }
}
