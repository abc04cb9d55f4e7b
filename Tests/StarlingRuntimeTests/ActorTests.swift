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
        #expect(parts[2] == "3 2.0 2", "arrays, dictionaries, optionals and structs travel")
        #expect(parts[3] == "ordered", "200 calls made in order without waiting ran in that order")
        #expect(parts[4] == "115", "a task called the actor through a handle it was passed")
        #expect(parts[5] == "81", "an actor method submitted a task")
        #expect(parts[6] == "dead", "a call after kill fails with actorDied")
        #expect(parts[7] == "worker gone", "kill stops the actor's worker")
    }
}
