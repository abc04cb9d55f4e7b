/// Errors of StarlingTune, each naming what was wrong.
public enum TuneError: Error, CustomStringConvertible, Equatable {
    /// A trainable asked its config for a parameter the search space does not have.
    case missingParameter(String, config: String)
    /// A parameter has another kind of value than the trainable asked for.
    case wrongParameterType(String, expected: String, found: String)
    /// A search-space domain is malformed (empty choice, lower bound above upper, …).
    case invalidSpace(parameter: String, reason: String)
    /// A tuner, scheduler or searcher setting is out of range.
    case invalidSetting(String)
    /// The trainable type cannot be found or made in the worker's executable.
    case unknownTrainable(String)
    /// The experiment directory cannot be read, written, or does not match this tuner.
    case experiment(path: String, reason: String)
    /// A trial failed more times than `RunConfig.maxFailures` allows (its last error).
    case trialFailed(trial: String, error: String)
    /// A checkpoint could not be decoded by the trainable.
    case badCheckpoint(String)
    /// A trial's first result lacks the sweep's metric (a misspelt name, most often).
    case missingMetric(String, reported: [String])

    public var description: String {
        switch self {
        case let .missingParameter(path, config):
            return "the trial config has no parameter \"\(path)\" (it has \(config))"
        case let .wrongParameterType(path, expected, found):
            return "parameter \"\(path)\" should be \(expected), it is \(found)"
        case let .invalidSpace(parameter, reason):
            return "search space parameter \"\(parameter)\": \(reason)"
        case let .invalidSetting(detail):
            return "invalid tune setting: \(detail)"
        case let .unknownTrainable(detail):
            return "trainable: \(detail)"
        case let .experiment(path, reason):
            return "experiment at \(path): \(reason)"
        case let .trialFailed(trial, error):
            return "trial \(trial) failed: \(error)"
        case let .badCheckpoint(detail):
            return "checkpoint: \(detail)"
        case let .missingMetric(metric, reported):
            return "the result has no metric \"\(metric)\" to optimise; it reported \(reported.isEmpty ? "no metrics" : reported.joined(separator: ", "))"
        }
    }
}
