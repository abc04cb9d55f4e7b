import Foundation
import Starling

/// What a trial actor runs next: a trial's config, and where to continue from.
struct TrialStart: Codable, Sendable {
    var config: TrialConfig
    var context: TrialContext
    var checkpoint: [UInt8]?
    /// Iterations already done (the checkpoint's).
    var iteration: Int
}

/// One iteration's outcome, as it travels back to the driver.
struct StepReply: Codable, Sendable {
    var metrics: [String: Double]
    var checkpoint: [UInt8]?
    /// The trainable has nothing more to run (a training function returned).
    var done: Bool
}

/// How the trial actor finds the user's code in its executable.
struct TrainableSpec: Codable, Sendable, Hashable {
    enum Kind: String, Codable, Sendable { case trainable, function }
    var kind: Kind
    var typeName: String

    static func of<T: Trainable>(_ type: T.Type) throws -> TrainableSpec {
        guard let name = _mangledTypeName(type) else { throw TuneError.unknownTrainable("\(type) has no mangled name") }
        return TrainableSpec(kind: .trainable, typeName: name)
    }

    static func of<F: TrainingFunction>(function type: F.Type) throws -> TrainableSpec {
        guard let name = _mangledTypeName(type) else { throw TuneError.unknownTrainable("\(type) has no mangled name") }
        return TrainableSpec(kind: .function, typeName: name)
    }
}

/// The code a trial actor drives, whichever API the user chose.
protocol TrialProgram: Sendable {
    func step(checkpoint: Bool) async throws -> StepReply
    func stop() async
}

/// Hosts one trial at a time on a worker. The tuner reuses it for the next trial when the
/// trial's resources allow, which saves starting a worker per trial.
distributed actor TrialRunner: RemoteActor {
    typealias ActorSystem = StarlingActorSystem
    let spec: TrainableSpec
    var program: (any TrialProgram)?

    init(actorSystem: ActorSystem, config spec: TrainableSpec) {
        self.actorSystem = actorSystem
        self.spec = spec
    }

    /// Makes the trainable for `start` (stopping the previous one) and restores its checkpoint.
    distributed func start(_ start: TrialStart) async throws {
        await program?.stop()
        program = nil
        switch spec.kind {
        case .trainable:
            guard let type = _typeByName(spec.typeName) as? any Trainable.Type else {
                throw TuneError.unknownTrainable("no Trainable type \(spec.typeName) in this executable")
            }
            program = try ObjectProgram.make(type, start)
        case .function:
            guard let type = _typeByName(spec.typeName) as? any TrainingFunction.Type else {
                throw TuneError.unknownTrainable("no TrainingFunction type \(spec.typeName) in this executable")
            }
            program = FunctionSession(type, start)
        }
    }

    /// Runs one iteration; with `checkpoint`, the reply carries the state after it.
    distributed func step(checkpoint: Bool) async throws -> StepReply {
        guard let program else { throw TuneError.invalidSetting("trial actor asked to step before a trial was started") }
        return try await program.step(checkpoint: checkpoint)
    }

    /// Stops the current trial (a stopped training function sees `CancellationError`).
    distributed func finish() async {
        await program?.stop()
        program = nil
    }
}

/// A `Trainable` value, kept in an actor of its own so its mutating methods stay isolated.
actor ObjectProgram: TrialProgram {
    var trainable: any Trainable

    init(_ trainable: any Trainable) { self.trainable = trainable }

    static func make(_ type: any Trainable.Type, _ start: TrialStart) throws -> ObjectProgram {
        var trainable = try type.init(config: start.config, context: start.context)
        if let checkpoint = start.checkpoint { try trainable.restore(from: checkpoint) }
        return ObjectProgram(trainable)
    }

    func step(checkpoint: Bool) async throws -> StepReply {
        // Stepped on a copy: an actor's stored property cannot be passed inout across an await.
        var stepping = trainable
        let metrics = try await stepping.step()
        trainable = stepping
        return StepReply(metrics: metrics, checkpoint: checkpoint ? try trainable.save() : nil, done: false)
    }

    func stop() async {}
}

/// Runs a training function in a task of its own and hands its reports over one per step:
/// `step` lets the function run to its next report, which then waits for the next `step`.
actor FunctionSession: TrialProgram {
    let function: any TrainingFunction.Type
    let start: TrialStart
    var task: Task<Void, Never>?
    var waitingStep: CheckedContinuation<StepReply, Error>?
    var waitingFunction: CheckedContinuation<Void, Error>?
    var ended: Result<Void, Error>?

    init(_ function: any TrainingFunction.Type, _ start: TrialStart) {
        self.function = function
        self.start = start
    }

    func step(checkpoint: Bool) async throws -> StepReply {
        if task == nil {
            let reporter = Reporter(context: start.context, checkpoint: start.checkpoint, startIteration: start.iteration, session: self)
            let function = self.function, config = start.config
            task = Task {
                let outcome: Result<Void, Error>
                do { try await function.train(config: config, reporter: reporter); outcome = .success(()) } catch { outcome = .failure(error) }
                self.functionEnded(outcome)
            }
        } else if let waiting = waitingFunction {
            waitingFunction = nil
            waiting.resume()
        }
        if let ended { return try Self.finalReply(ended) }
        // A report's checkpoint is the state after that very iteration; a report without one
        // leaves the trial's last checkpoint (and its iteration) as it was.
        return try await withCheckedThrowingContinuation { waitingStep = $0 }
    }

    func report(_ reply: StepReply) async throws {
        try Task.checkCancellation()
        waitingStep?.resume(returning: reply)
        waitingStep = nil
        try await withCheckedThrowingContinuation { waitingFunction = $0 }
    }

    func functionEnded(_ outcome: Result<Void, Error>) {
        ended = outcome
        if let waiting = waitingStep {
            waitingStep = nil
            do { waiting.resume(returning: try Self.finalReply(outcome)) } catch { waiting.resume(throwing: error) }
        }
    }

    static func finalReply(_ outcome: Result<Void, Error>) throws -> StepReply {
        switch outcome {
        case .success, .failure(is CancellationError): return StepReply(metrics: [:], checkpoint: nil, done: true)
        case let .failure(error): throw error
        }
    }

    func stop() async {
        task?.cancel()
        if let waiting = waitingFunction {
            waitingFunction = nil
            waiting.resume(throwing: CancellationError())
        }
    }
}
