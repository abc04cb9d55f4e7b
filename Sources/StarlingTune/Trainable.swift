import Starling

/// Where a trial runs: its number, name and directory in the experiment, and its placement
/// group when the sweep gives each trial several bundles (bundle 0 hosts the trainable).
public struct TrialContext: Sendable, Codable, Hashable {
    public let trialID: Int
    public let trialName: String
    /// The trial's directory on the driver's machine (results and checkpoints are written there).
    public let directory: String
    public let placementGroup: PlacementGroup?
}

/// A model that trains in steps: made from a config, `step()` runs one iteration (an epoch, a
/// few batches) and returns its metrics; `save` and `restore` move its state through a
/// checkpoint, which is how a trial survives its worker's death and how population-based
/// training copies a better trial.
///
/// Trainables run in trial actors on the cluster's workers, found there by the type's mangled
/// name, so the type must be `internal` or `public`. They are `Sendable` (a struct of arrays
/// and numbers is) because `step` may await other work on the cluster.
/// ```swift
/// struct Quadratic: Trainable {
///     var x: Double, step = 0.0
///     init(config: TrialConfig, context: TrialContext) throws { x = try config.double("x") }
///     mutating func step() async throws -> [String: Double] { step += 1; return ["loss": (x - 3) * (x - 3) / step] }
///     func save() throws -> [UInt8] { Checkpoint.pack([step]) }
///     mutating func restore(from checkpoint: [UInt8]) throws { step = try Checkpoint.unpack(checkpoint, as: Double.self)[0] }
/// }
/// ```
public protocol Trainable: Sendable {
    init(config: TrialConfig, context: TrialContext) throws
    /// One iteration; returns the metrics to report (the tuner counts iterations itself).
    mutating func step() async throws -> [String: Double]
    /// The state needed to continue later.
    func save() throws -> [UInt8]
    mutating func restore(from checkpoint: [UInt8]) throws
}

/// The function-style API for simple cases: `train` gets the trial's config and a reporter,
/// and calls `reporter.report(...)` once per iteration. A report suspends the function until
/// the scheduler lets the trial go on; when the trial is stopped the report throws
/// `CancellationError`, so the function should let that propagate.
///
/// Swift cannot send a closure to another process, so the function is the static method of a
/// named type (found on the worker by its mangled name, like a `RemoteFunction`).
/// ```swift
/// enum Objective: TrainingFunction {
///     static func train(config: TrialConfig, reporter: Reporter) async throws {
///         let x = try config.double("x")
///         for step in 1...10 { try await reporter.report(["loss": (x - 3) * (x - 3) / Double(step)]) }
///     }
/// }
/// ```
public protocol TrainingFunction: SendableMetatype {
    static func train(config: TrialConfig, reporter: Reporter) async throws
}

/// Hands a training function's results to the tuner, one iteration at a time.
public final class Reporter: Sendable {
    public let context: TrialContext
    /// The checkpoint to continue from (after a worker died, or a PBT exploit), if any.
    public let checkpoint: [UInt8]?
    /// Iterations already done before this run (0 on a fresh start).
    public let startIteration: Int
    let session: FunctionSession

    init(context: TrialContext, checkpoint: [UInt8]?, startIteration: Int, session: FunctionSession) {
        self.context = context
        self.checkpoint = checkpoint
        self.startIteration = startIteration
        self.session = session
    }

    /// Reports one iteration's metrics, with a checkpoint of the state after it if the
    /// function can continue from one; returns when the trial should go on.
    public func report(_ metrics: [String: Double], checkpoint: [UInt8]? = nil) async throws {
        try await session.report(StepReply(metrics: metrics, checkpoint: checkpoint, done: false))
    }
}

/// Packs arrays of plain numbers into checkpoint bytes and back (a convenience; any bytes do).
public enum Checkpoint {
    public static func pack<T: BitwiseCopyable>(_ values: [T]) -> [UInt8] {
        values.withUnsafeBytes { Array($0) }
    }

    public static func unpack<T: BitwiseCopyable>(_ bytes: ArraySlice<UInt8>, as type: T.Type) throws -> [T] {
        guard bytes.count % MemoryLayout<T>.stride == 0 else {
            throw TuneError.badCheckpoint("\(bytes.count) bytes is not a whole number of \(T.self) values")
        }
        return [T](unsafeUninitializedCapacity: bytes.count / MemoryLayout<T>.stride) { buffer, count in
            bytes.withUnsafeBytes { source in
                UnsafeMutableRawBufferPointer(buffer).copyMemory(from: source)
            }
            count = bytes.count / MemoryLayout<T>.stride
        }
    }

    public static func unpack<T: BitwiseCopyable>(_ bytes: [UInt8], as type: T.Type) throws -> [T] {
        try unpack(bytes[...], as: type)
    }
}
