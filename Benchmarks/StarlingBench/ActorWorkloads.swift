import Foundation
import Starling

/// An actor whose method does nothing: the cost measured is the runtime's.
distributed actor BenchActor: RemoteActor {
    typealias ActorSystem = StarlingActorSystem
    init(actorSystem: ActorSystem, config: Int) { self.actorSystem = actorSystem }
    distributed func smallValue() -> Int { 0 }
}

/// The parameter server of `ps_iteration`: 1M Float weights.
distributed actor BenchParameterServer: RemoteActor {
    typealias ActorSystem = StarlingActorSystem
    var weights: [Float]
    init(actorSystem: ActorSystem, config count: Int) {
        self.actorSystem = actorSystem
        weights = [Float](repeating: 0.5, count: count)
    }
    distributed func pull() -> [Float] { weights }
    distributed func push(_ gradient: [Float]) {
        // One vectorised pass, as Ray's peer does with numpy (`weights -= 0.01 * gradient`).
        weights.withUnsafeMutableBufferPointer { weights in
            gradient.withUnsafeBufferPointer { gradient in
                for i in 0..<min(weights.count, gradient.count) { weights[i] -= 0.01 * gradient[i] }
            }
        }
    }
}

/// A worker of `ps_iteration`: gets the weights, pushes a gradient of the same size.
distributed actor BenchPSWorker: RemoteActor {
    typealias ActorSystem = StarlingActorSystem
    init(actorSystem: ActorSystem, config: Int) { self.actorSystem = actorSystem }
    distributed func step(_ server: BenchParameterServer) async throws -> Int {
        let weights = try await server.pull()
        try await server.push(weights)
        return weights.count
    }
}

/// A client of `n_n_actor_calls_async`: spawns its own actor and calls it `n` times at once.
struct ActorClient: RemoteFunction {
    static func run(_ n: Int) async throws -> Int {
        let actor = try await Cluster.current().spawn(BenchActor.self, config: 0)
        return try await ActorWorkloads.callsAtOnce(actor, n)
    }
}

/// Actor workloads (issue 4), as Ray's microbenchmark defines them, on an embedded cluster
/// with 2 CPUs, against Ray 2.60 on the same definitions (`Benchmarks/ray/actors.py`).
enum ActorWorkloads {
    struct Figures: Sendable {
        var sync = 0.0, async = 0.0, concurrent = 0.0, oneToN = 0.0, nToN = 0.0, launch = 0.0, placementGroups = 0.0, psIteration = 0.0
    }
    // Workloads run one after another from the main task, so these caches are never shared.
    nonisolated(unsafe) static var starling: Figures?
    nonisolated(unsafe) static var ray: [String: Double]?

    static let psIterations = 50
    static let syncCalls = 2_000, asyncCalls = 5_000, actors = 4, callsPerActor = 1_000, launched = 20, groups = 200

    static var all: [Workload] {
        [
            Workload(name: "1_1_actor_calls_sync", unit: "calls/s", direction: .higherIsBetter) { try await figure($0, \.sync, "1_1_actor_calls_sync") },
            Workload(name: "1_1_actor_calls_async", unit: "calls/s", direction: .higherIsBetter) { try await figure($0, \.async, "1_1_actor_calls_async") },
            Workload(name: "1_1_actor_calls_concurrent", unit: "calls/s", direction: .higherIsBetter) { try await figure($0, \.concurrent, "1_1_actor_calls_concurrent") },
            Workload(name: "1_n_actor_calls_async", unit: "calls/s", direction: .higherIsBetter) { try await figure($0, \.oneToN, "1_n_actor_calls_async") },
            Workload(name: "n_n_actor_calls_async", unit: "calls/s", direction: .higherIsBetter) { try await figure($0, \.nToN, "n_n_actor_calls_async") },
            Workload(name: "actor_launch", unit: "actors/s", direction: .higherIsBetter) { try await figure($0, \.launch, "actor_launch") },
            Workload(name: "ps_iteration", unit: "ms", direction: .lowerIsBetter) { try await figure($0, \.psIteration, "ps_iteration") },
            Workload(name: "placement_group_create_removal", unit: "groups/s", direction: .higherIsBetter) {
                try await figure($0, \.placementGroups, "placement_group_create_removal")
            },
        ]
    }

    static func figure(_ options: BenchOptions, _ key: KeyPath<Figures, Double>, _ rayKey: String) async throws -> Measurement {
        if starling == nil { starling = try await measureStarling() }
        var measurement = Measurement(value: starling![keyPath: key])
        if options.peer == "ray" {
            if ray == nil { ray = try RayPeer.figures(script: "actors.py") }
            measurement.peer = "ray-2.60"
            measurement.peerValue = ray?[rayKey]
        }
        return measurement
    }

    /// Makes `n` calls without waiting between them, then waits for all.
    static func callsAtOnce(_ actor: BenchActor, _ n: Int) async throws -> Int {
        let calls = (0..<n).map { _ in Task.immediate { try await actor.smallValue() } }
        var done = 0
        for call in calls { _ = try await call.value; done += 1 }
        return done
    }

    static func rate(_ count: Int, since start: ContinuousClock.Instant) -> Double {
        Double(count) / (TaskWorkloads.micros(ContinuousClock.now - start) / 1e6)
    }

    static func measureStarling() async throws -> Figures {
        try await Starling.run(embedded: .init(resources: ["CPU": 2])) { cluster in
            var figures = Figures()
            let actor = try await cluster.spawn(BenchActor.self, config: 0)
            for _ in 0..<200 { _ = try await actor.smallValue() }
            var start = ContinuousClock.now
            for _ in 0..<syncCalls { _ = try await actor.smallValue() }
            figures.sync = rate(syncCalls, since: start)

            start = .now
            figures.async = rate(try await callsAtOnce(actor, asyncCalls), since: start)

            let concurrent = try await cluster.spawn(BenchActor.self, config: 0, options: .init(maxConcurrency: 16))
            _ = try await callsAtOnce(concurrent, 200)
            start = .now
            figures.concurrent = rate(try await callsAtOnce(concurrent, asyncCalls), since: start)

            var many: [BenchActor] = []
            for _ in 0..<actors { many.append(try await cluster.spawn(BenchActor.self, config: 0)) }
            start = .now
            let counts = try await withThrowingTaskGroup(of: Int.self) { group in
                for actor in many { group.addTask { try await callsAtOnce(actor, callsPerActor) } }
                return try await group.reduce(0, +)
            }
            figures.oneToN = rate(counts, since: start)

            // n clients (zero-CPU tasks), each with its own actor; one untimed round first
            // starts their workers, as Ray's benchmark creates its actors before timing.
            let clientOptions = TaskOptions(resources: [:])
            _ = try await cluster.get(try await (0..<actors).asyncMap { _ in try await cluster.submit(ActorClient.self, 10, options: clientOptions) })
            start = .now
            let refs = try await (0..<actors).asyncMap { _ in try await cluster.submit(ActorClient.self, callsPerActor, options: clientOptions) }
            figures.nToN = rate(try await cluster.get(refs).reduce(0, +), since: start)

            start = .now
            var launchedActors: [BenchActor] = []
            for _ in 0..<launched { launchedActors.append(try await cluster.spawn(BenchActor.self, config: 0)) }
            for actor in launchedActors { _ = try await actor.smallValue() }
            figures.launch = rate(launched, since: start)

            // Create a one-bundle group, wait until it is placed, remove it.
            for _ in 0..<5 { try await cluster.remove(cluster.ready(cluster.createPlacementGroup([["CPU": 1]]))) }
            start = .now
            for _ in 0..<groups { try await cluster.remove(cluster.ready(cluster.createPlacementGroup([["CPU": 1]]))) }
            figures.placementGroups = rate(groups, since: start)

            figures.psIteration = try await psIterations(cluster, psIterations)
            return figures
        }
    }

    /// One server with 1M Float; each iteration both workers get the weights and push a
    /// gradient of the same size; `count` iterations after 2 untimed; ms per iteration.
    static func psIterations(_ cluster: Cluster, _ count: Int) async throws -> Double {
        let server = try await cluster.spawn(BenchParameterServer.self, config: 1_000_000)
        var psWorkers: [BenchPSWorker] = []
        for _ in 0..<2 { psWorkers.append(try await cluster.spawn(BenchPSWorker.self, config: 0)) }
        func iteration() async throws {
            try await withThrowingTaskGroup(of: Int.self) { group in
                for worker in psWorkers { group.addTask { try await worker.step(server) } }
                for try await _ in group {}
            }
        }
        for _ in 0..<2 { try await iteration() }
        let start = ContinuousClock.now
        for _ in 0..<count { try await iteration() }
        return TaskWorkloads.micros(ContinuousClock.now - start) / 1000 / Double(count)
    }
}
