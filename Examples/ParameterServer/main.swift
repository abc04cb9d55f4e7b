import Foundation
import Starling

// A parameter server and N trainers, all actors: the trainers pull the weights, compute a
// softmax-regression gradient on a minibatch of their shard of the digits data, and push it;
// the server applies each push (asynchronous SGD). The driver then measures test accuracy.
//
// Embedded cluster: `swift run -c release ParameterServer [trainers] [steps]`.

/// The model: softmax regression, 10 classes over 64 pixels plus a bias.
enum Model {
    static let features = 65, classes = 10

    /// Class scores of one example (`x` already has the bias feature).
    static func logits(_ weights: [Float], _ x: ArraySlice<Float>) -> [Float] {
        var out = [Float](repeating: 0, count: classes)
        for c in 0..<classes {
            var sum: Float = 0
            for (j, value) in x.enumerated() { sum += weights[c * features + j] * value }
            out[c] = sum
        }
        return out
    }

    static func predict(_ weights: [Float], _ x: ArraySlice<Float>) -> Int {
        let scores = logits(weights, x)
        return scores.indices.max { scores[$0] < scores[$1] }!
    }

    /// Mean cross-entropy gradient over the examples `rows` of `data`.
    static func gradient(_ weights: [Float], _ data: Shard, rows: [Int]) -> [Float] {
        var gradient = [Float](repeating: 0, count: classes * features)
        for row in rows {
            let x = data.x[(row * features)..<((row + 1) * features)]
            var scores = logits(weights, x)
            let top = scores.max()!
            var total: Float = 0
            for c in 0..<classes { scores[c] = exp(scores[c] - top); total += scores[c] }
            for c in 0..<classes {
                let error = scores[c] / total - (c == data.y[row] ? 1 : 0)
                for (j, value) in x.enumerated() { gradient[c * features + j] += error * value / Float(rows.count) }
            }
        }
        return gradient
    }
}

/// Examples: `x` row-major (`Model.features` values a row, bias included), labels in `y`.
struct Shard: Codable, Sendable {
    var x: [Float] = []
    var y: [Int] = []
    var count: Int { y.count }
}

/// Holds the weights; applies each pushed gradient at once.
distributed actor ParameterServer: RemoteActor {
    typealias ActorSystem = StarlingActorSystem
    var weights: [Float]
    let learningRate: Float
    var updates = 0

    init(actorSystem: ActorSystem, config learningRate: Float) {
        self.actorSystem = actorSystem
        self.learningRate = learningRate
        weights = [Float](repeating: 0, count: Model.classes * Model.features)
    }

    distributed func pull() -> [Float] { weights }

    distributed func push(_ gradient: [Float]) -> Int {
        for i in weights.indices { weights[i] -= learningRate * gradient[i] }
        updates += 1
        return updates
    }
}

/// Trains on its shard against the server it was given.
distributed actor Trainer: RemoteActor {
    typealias ActorSystem = StarlingActorSystem
    struct Config: Codable, Sendable {
        var server: ParameterServer
        var shard: Shard
        var batchSize: Int
        var seed: UInt64
    }
    let config: Config
    var random: UInt64

    init(actorSystem: ActorSystem, config: Config) {
        self.actorSystem = actorSystem
        self.config = config
        random = config.seed | 1
    }

    /// Runs `steps` pull-compute-push rounds; returns the server's update count at the end.
    distributed func train(steps: Int) async throws -> Int {
        var last = 0
        for _ in 0..<steps {
            let weights = try await config.server.pull()
            var rows: [Int] = []
            for _ in 0..<config.batchSize {
                random ^= random << 13; random ^= random >> 7; random ^= random << 17
                rows.append(Int(random % UInt64(config.shard.count)))
            }
            last = try await config.server.push(Model.gradient(weights, config.shard, rows: rows))
        }
        return last
    }
}

/// Reads the digits CSV (64 pixels 0..16, then the label) into examples with a bias feature.
func loadDigits() throws -> Shard {
    let candidates = [URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../Data/digits.csv").path,
                      "Examples/Data/digits.csv"]
    guard let path = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) else {
        throw StarlingError.cluster("digits.csv not found (looked at \(candidates))")
    }
    var shard = Shard()
    for line in try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n") {
        let values = line.split(separator: ",").compactMap { Int($0) }
        guard values.count == 65 else { continue }
        shard.x += values.prefix(64).map { Float($0) / 16 } + [1]
        shard.y.append(values[64])
    }
    return shard
}

@main
struct ParameterServerExample {
    static func main() async {
        let arguments = CommandLine.arguments.dropFirst().compactMap { Int($0) }
        let trainers = arguments.first ?? 2, steps = arguments.dropFirst().first ?? 300
        await Starling.runOrExit { cluster in
            let data = try loadDigits()
            // Every fifth example is held out for testing.
            var train = Shard(), test = Shard()
            for row in 0..<data.count {
                let x = data.x[(row * Model.features)..<((row + 1) * Model.features)]
                if row % 5 == 0 { test.x += x; test.y.append(data.y[row]) } else { train.x += x; train.y.append(data.y[row]) }
            }
            let clock = ContinuousClock()
            let start = clock.now
            let server = try await cluster.spawn(ParameterServer.self, config: 0.5, options: .init(name: "parameter-server"))
            var workers: [Trainer] = []
            for index in 0..<trainers {
                var shard = Shard()
                for row in stride(from: index, to: train.count, by: trainers) {
                    shard.x += train.x[(row * Model.features)..<((row + 1) * Model.features)]
                    shard.y.append(train.y[row])
                }
                workers.append(try await cluster.spawn(Trainer.self, config: .init(server: server, shard: shard, batchSize: 32,
                                                                                  seed: UInt64(index + 1) &* 0x9E37_79B9_7F4A_7C15),
                                                       options: .init(name: "trainer-\(index)")))
            }
            let updates = try await withThrowingTaskGroup(of: Int.self) { group in
                for worker in workers { group.addTask { try await worker.train(steps: steps) } }
                return try await group.reduce(0) { max($0, $1) }
            }
            let weights = try await server.pull()
            let correct = (0..<test.count).filter { row in
                Model.predict(weights, test.x[(row * Model.features)..<((row + 1) * Model.features)]) == test.y[row]
            }.count
            let accuracy = Double(correct) / Double(test.count)
            print("parameter server: \(trainers) trainers, \(updates) updates, test accuracy \(String(format: "%.3f", accuracy)) (\(correct)/\(test.count)) in \(clock.now - start)")
        }
    }
}
