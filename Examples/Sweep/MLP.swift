import Foundation
import Starling
import StarlingTune

/// A multilayer perceptron with one hidden ReLU layer and a softmax output, trained by
/// minibatch SGD with momentum and L2 weight decay. All parameters live in one flat array
/// (checkpoints are that array, the momentum and the shuffling state).
struct MLP: Sendable {
    let hidden: Int
    var parameters: [Float]
    var velocity: [Float]
    var random: UInt64

    // Offsets into `parameters`: W1 (hidden × 64), b1 (hidden), W2 (10 × hidden), b2 (10).
    var w1: Int { 0 }
    var b1: Int { hidden * Digits.features }
    var w2: Int { b1 + hidden }
    var b2: Int { w2 + Digits.classes * hidden }
    var count: Int { b2 + Digits.classes }

    init(hidden: Int, seed: UInt64) {
        self.hidden = hidden
        random = seed | 1
        parameters = []
        velocity = []
        parameters = [Float](repeating: 0, count: count)
        velocity = [Float](repeating: 0, count: count)
        // He initialisation for the ReLU layer, Glorot-like for the output.
        let scale1 = (2 / Float(Digits.features)).squareRoot(), scale2 = (1 / Float(hidden)).squareRoot()
        for i in w1..<b1 { parameters[i] = gaussian() * scale1 }
        for i in w2..<b2 { parameters[i] = gaussian() * scale2 }
    }

    private mutating func nextRandom() -> UInt64 {
        random ^= random << 13; random ^= random >> 7; random ^= random << 17
        return random
    }

    private mutating func gaussian() -> Float {
        let u1 = Float(nextRandom() >> 40 + 1) / Float(1 << 24), u2 = Float(nextRandom() >> 40) / Float(1 << 24)
        return (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
    }

    /// One pass over `data` in shuffled minibatches; returns the mean training loss.
    mutating func epoch(_ data: Digits.Split, batchSize: Int, learningRate: Float, momentum: Float, weightDecay: Float) -> Double {
        var order = Array(0..<data.count)
        for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, Int(nextRandom() % UInt64(i + 1))) }
        var gradient = [Float](repeating: 0, count: count)
        var activations = [Float](repeating: 0, count: hidden), delta = [Float](repeating: 0, count: hidden)
        var totalLoss = 0.0
        let hidden = self.hidden, features = Digits.features, classes = Digits.classes
        let (w1, b1, w2, b2) = (self.w1, self.b1, self.w2, self.b2)
        for batchStart in stride(from: 0, to: order.count, by: batchSize) {
            let batch = order[batchStart..<min(order.count, batchStart + batchSize)]
            for i in gradient.indices { gradient[i] = 0 }
            parameters.withUnsafeBufferPointer { p in
                gradient.withUnsafeMutableBufferPointer { g in
                    activations.withUnsafeMutableBufferPointer { h in
                        delta.withUnsafeMutableBufferPointer { d in
                            data.x.withUnsafeBufferPointer { xs in
                                for row in batch {
                                    let x = UnsafeBufferPointer(rebasing: xs[(row * features)..<((row + 1) * features)])
                                    var logits = [Float](repeating: 0, count: classes)
                                    MLP.forward(p, x, hidden: hidden, h: h, logits: &logits, w1: w1, b1: b1, w2: w2, b2: b2)
                                    let label = data.y[row]
                                    let top = logits.max()!
                                    var sum: Float = 0
                                    for c in 0..<classes { logits[c] = exp(logits[c] - top); sum += logits[c] }
                                    totalLoss -= Double(log(max(logits[label] / sum, 1e-12)))
                                    for j in 0..<hidden { d[j] = 0 }
                                    for c in 0..<classes {
                                        let error = logits[c] / sum - (c == label ? 1 : 0)
                                        g[b2 + c] += error
                                        let row2 = w2 + c * hidden
                                        for j in 0..<hidden {
                                            g[row2 + j] += error * h[j]
                                            d[j] += error * p[row2 + j]
                                        }
                                    }
                                    for j in 0..<hidden where h[j] > 0 {
                                        let dj = d[j]
                                        g[b1 + j] += dj
                                        let row1 = w1 + j * features
                                        for k in 0..<features { g[row1 + k] += dj * x[k] }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            let scale = 1 / Float(batch.count)
            for i in parameters.indices {
                // Weight decay on the weights, not on the biases.
                let decay = (i < b1 || (i >= w2 && i < b2)) ? weightDecay * parameters[i] : 0
                velocity[i] = momentum * velocity[i] - learningRate * (gradient[i] * scale + decay)
                parameters[i] += velocity[i]
            }
        }
        return totalLoss / Double(max(1, data.count))
    }

    /// Accuracy and mean cross-entropy on `data`.
    func evaluate(_ data: Digits.Split) -> (accuracy: Double, loss: Double) {
        var correct = 0, loss = 0.0
        var activations = [Float](repeating: 0, count: hidden)
        parameters.withUnsafeBufferPointer { p in
            activations.withUnsafeMutableBufferPointer { h in
                data.x.withUnsafeBufferPointer { xs in
                    for row in 0..<data.count {
                        let x = UnsafeBufferPointer(rebasing: xs[(row * Digits.features)..<((row + 1) * Digits.features)])
                        var logits = [Float](repeating: 0, count: Digits.classes)
                        MLP.forward(p, x, hidden: hidden, h: h, logits: &logits, w1: w1, b1: b1, w2: w2, b2: b2)
                        let predicted = logits.indices.max { logits[$0] < logits[$1] }!
                        if predicted == data.y[row] { correct += 1 }
                        let top = logits.max()!
                        let sum = logits.reduce(Float(0)) { $0 + exp($1 - top) }
                        loss -= Double(logits[data.y[row]] - top - log(sum))
                    }
                }
            }
        }
        return (Double(correct) / Double(max(1, data.count)), loss / Double(max(1, data.count)))
    }

    private static func forward(_ p: UnsafeBufferPointer<Float>, _ x: UnsafeBufferPointer<Float>, hidden: Int,
                                h: UnsafeMutableBufferPointer<Float>, logits: inout [Float], w1: Int, b1: Int, w2: Int, b2: Int) {
        let features = x.count
        for j in 0..<hidden {
            var sum = p[b1 + j]
            let row = w1 + j * features
            for k in 0..<features { sum += p[row + k] * x[k] }
            h[j] = max(0, sum)
        }
        for c in 0..<logits.count {
            var sum = p[b2 + c]
            let row = w2 + c * hidden
            for j in 0..<hidden { sum += p[row + j] * h[j] }
            logits[c] = sum
        }
    }

    /// Parameters, momentum and the shuffling state, as bytes.
    func checkpoint() -> [UInt8] {
        Checkpoint.pack([UInt64(hidden), random]) + Checkpoint.pack(parameters) + Checkpoint.pack(velocity)
    }

    init(checkpoint bytes: [UInt8]) throws {
        guard bytes.count >= 16 else { throw TuneError.badCheckpoint("an MLP checkpoint has at least 16 bytes, this one \(bytes.count)") }
        let header = try Checkpoint.unpack(bytes[0..<16], as: UInt64.self)
        hidden = Int(header[0])
        random = header[1]
        parameters = []
        velocity = []
        let floats = try Checkpoint.unpack(bytes[16...], as: Float.self)
        guard floats.count == 2 * count else {
            throw TuneError.badCheckpoint("an MLP with \(hidden) hidden units has \(2 * count) values, the checkpoint \(floats.count)")
        }
        parameters = Array(floats[..<count])
        velocity = Array(floats[count...])
    }
}

/// The sweep's trainable: one epoch per step, validation accuracy as the metric.
struct DigitsTrainable: Trainable {
    var model: MLP
    let learningRate: Float, weightDecay: Float, momentum: Float
    let batchSize: Int
    var data: Digits?

    init(config: TrialConfig, context: TrialContext) throws {
        data = try? Digits.shared.get()
        learningRate = Float(try config.double("lr"))
        weightDecay = Float(try config.double("weight_decay"))
        momentum = Float(try config.double("momentum"))
        batchSize = try config.int("batch_size")
        guard batchSize >= 1 else { throw TuneError.wrongParameterType("batch_size", expected: "at least 1", found: String(batchSize)) }
        model = MLP(hidden: try config.int("hidden"), seed: UInt64(context.trialID + 1) &* 0x9E37_79B9_7F4A_7C15)
    }

    mutating func step() async throws -> [String: Double] {
        if data == nil {
            data = try await Cluster.current().actor(named: DigitsServer.name, as: DigitsServer.self).digits()
        }
        guard let data else { throw SweepError.data("no digits data") }
        let trainLoss = model.epoch(data.train, batchSize: batchSize, learningRate: learningRate, momentum: momentum, weightDecay: weightDecay)
        let validation = model.evaluate(data.validation)
        return ["accuracy": validation.accuracy, "val_loss": validation.loss, "train_loss": trainLoss]
    }

    func save() throws -> [UInt8] { model.checkpoint() }

    mutating func restore(from checkpoint: [UInt8]) throws { model = try MLP(checkpoint: checkpoint) }
}
