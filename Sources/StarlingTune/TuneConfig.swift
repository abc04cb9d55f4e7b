import Foundation
import Starling

/// What the sweep searches for and how: the objective, how many trials, the searcher and the
/// scheduler.
public struct TuneConfig: Sendable {
    /// The reported metric to optimise, and whether larger (`.max`) or smaller is better.
    public var metric: String
    public var mode: Objective.Mode
    /// Trials to run (with grid domains: runs of each grid point).
    public var numSamples: Int
    /// Trials running at once; nil: as many as the cluster's resources fit.
    public var maxConcurrentTrials: Int?
    public var searcher: any Searcher
    public var scheduler: any TrialScheduler
    /// Seeds every random choice of the searcher (the same seed gives the same configs).
    public var seed: UInt64

    public init(metric: String, mode: Objective.Mode, numSamples: Int = 1, maxConcurrentTrials: Int? = nil,
                searcher: any Searcher = RandomSearch(), scheduler: any TrialScheduler = FIFOScheduler(), seed: UInt64 = 0) {
        self.metric = metric
        self.mode = mode
        self.numSamples = numSamples
        self.maxConcurrentTrials = maxConcurrentTrials
        self.searcher = searcher
        self.scheduler = scheduler
        self.seed = seed
    }

    var objective: Objective { Objective(metric: metric, mode: mode) }
}

/// How trials run and where their results go.
public struct RunConfig: Sendable {
    /// The experiment's directory name under `storagePath`.
    public var name: String
    /// Where experiments are kept (default `~/starling_results`).
    public var storagePath: String
    /// Each trial ends after this many iterations (nil: when the scheduler or the trainable ends it).
    public var stopAfterIterations: Int?
    /// Each trial ends once the objective's metric reaches this value (in the objective's direction).
    public var stopAtMetric: Double?
    /// Keep a checkpoint every this many iterations (0: none, so a trial whose worker dies
    /// starts over). Population-based training needs checkpoints to copy.
    public var checkpointFrequency: Int
    /// Restarts of a trial whose worker died (from its last checkpoint) before it counts as failed.
    public var maxFailures: Int
    public var progress: ProgressOutput
    /// Resources each trial's actor holds.
    public var resourcesPerTrial: [String: Double]
    /// When set, each trial gets a placement group of these bundles; its trainable runs in
    /// bundle 0 and can use the rest through `TrialContext.placementGroup`.
    public var bundlesPerTrial: [[String: Double]]?
    /// How a trial's bundles are placed (default `.pack`).
    public var placementStrategy: PlacementGroupStrategy
    /// Run the next trial in the actor of a finished one (no worker start per trial).
    public var reuseActors: Bool

    public init(name: String = "experiment", storagePath: String? = nil, stopAfterIterations: Int? = nil,
                stopAtMetric: Double? = nil, checkpointFrequency: Int = 0, maxFailures: Int = 3,
                progress: ProgressOutput = .auto, resourcesPerTrial: [String: Double] = ["CPU": 1],
                bundlesPerTrial: [[String: Double]]? = nil, placementStrategy: PlacementGroupStrategy? = nil,
                reuseActors: Bool = true) {
        self.name = name
        self.storagePath = storagePath ?? ((ProcessInfo.processInfo.environment["HOME"] ?? "/tmp") + "/starling_results")
        self.stopAfterIterations = stopAfterIterations
        self.stopAtMetric = stopAtMetric
        self.checkpointFrequency = checkpointFrequency
        self.maxFailures = maxFailures
        self.progress = progress
        self.resourcesPerTrial = resourcesPerTrial
        self.bundlesPerTrial = bundlesPerTrial
        self.placementStrategy = placementStrategy ?? .pack
        self.reuseActors = reuseActors
    }
}
