import Foundation

/// Where one hyperparameter's values come from.
public indirect enum Domain: Sendable, Hashable {
    /// One of these values, each equally likely.
    case choice([ConfigValue])
    /// A double uniform in [lower, upper).
    case uniform(Double, Double)
    /// A double whose logarithm is uniform: for learning rates and decays.
    case logUniform(Double, Double)
    /// An integer uniform in [lower, upper) (upper excluded, as in Ray).
    case randInt(Int, Int)
    /// Every one of these values: the grid is the product of all `grid` domains, and each
    /// grid point is run `numSamples` times.
    case grid([ConfigValue])
    /// Always this value.
    case fixed(ConfigValue)
    /// A nested group of parameters.
    case nested(SearchSpace)

    /// Checks the bounds and lists once, naming the parameter.
    func validate(_ name: String) throws {
        switch self {
        case let .choice(values), let .grid(values):
            if values.isEmpty { throw TuneError.invalidSpace(parameter: name, reason: "has no values to pick from") }
        case let .uniform(low, high):
            if !(low < high) || !(high - low).isFinite { throw TuneError.invalidSpace(parameter: name, reason: "uniform(\(low), \(high)) needs finite lower < upper") }
        case let .logUniform(low, high):
            if !(low > 0 && low < high) || !high.isFinite { throw TuneError.invalidSpace(parameter: name, reason: "logUniform(\(low), \(high)) needs 0 < lower < upper") }
        case let .randInt(low, high):
            if low >= high { throw TuneError.invalidSpace(parameter: name, reason: "randInt(\(low), \(high)) needs lower < upper (upper is excluded)") }
            if high.subtractingReportingOverflow(low).overflow { throw TuneError.invalidSpace(parameter: name, reason: "randInt(\(low), \(high)) spans more than Int.max values") }
        case .fixed: break
        case let .nested(space): try space.validate(prefix: name + ".")
        }
    }

    /// A random value (a grid domain samples one of its values; grids are expanded by the searcher).
    func sample(_ random: inout SeededRandom) -> ConfigValue {
        switch self {
        case let .choice(values), let .grid(values):
            return values[Int(random.next() % UInt64(values.count))]
        case let .uniform(low, high):
            return .double(low + (high - low) * random.unit())
        case let .logUniform(low, high):
            return .double(exp(log(low) + (log(high) - log(low)) * random.unit()))
        case let .randInt(low, high):
            return .int(low + Int(random.next() % UInt64(high - low)))
        case let .fixed(value):
            return value
        case let .nested(space):
            return .nested(space.sample(&random))
        }
    }

    /// Whether `value` could have come from this domain.
    func contains(_ value: ConfigValue) -> Bool {
        switch self {
        case let .choice(values), let .grid(values): return values.contains(value)
        case let .uniform(low, high): return value.doubleValue.map { $0 >= low && $0 < high } ?? false
        case let .logUniform(low, high): return value.doubleValue.map { $0 >= low && $0 <= high } ?? false
        case let .randInt(low, high): if case let .int(v) = value { return v >= low && v < high } else { return false }
        case let .fixed(fixed): return value == fixed
        case let .nested(space):
            guard case let .nested(config) = value else { return false }
            return space.contains(config)
        }
    }
}

/// A search space: parameter names to domains, nested groups allowed.
///
/// ```swift
/// let space: SearchSpace = [
///     "lr": .logUniform(1e-4, 1e-1),
///     "hidden": .choice([32, 64, 128]),
///     "optimizer": .nested(["momentum": .uniform(0.8, 0.99)]),
/// ]
/// ```
public struct SearchSpace: Sendable, Hashable, ExpressibleByDictionaryLiteral {
    public var domains: [String: Domain]

    public init(_ domains: [String: Domain] = [:]) { self.domains = domains }
    public init(dictionaryLiteral elements: (String, Domain)...) {
        domains = Dictionary(elements, uniquingKeysWith: { _, last in last })
    }

    func validate(prefix: String = "") throws {
        for (name, domain) in domains { try domain.validate(prefix + name) }
    }

    /// Leaves as (dotted path, domain), sorted by path: the order every sampler draws in, so a
    /// seed gives the same configs whatever the dictionary's order.
    var leaves: [(path: String, domain: Domain)] {
        var out: [(String, Domain)] = []
        for (name, domain) in domains {
            if case let .nested(inner) = domain {
                out += inner.leaves.map { ("\(name).\($0.path)", $0.domain) }
            } else {
                out.append((name, domain))
            }
        }
        return out.sorted { $0.0 < $1.0 }
    }

    /// A random config (grid domains sample one of their values).
    func sample(_ random: inout SeededRandom) -> TrialConfig {
        var config = TrialConfig()
        for leaf in leaves { config[leaf.path] = leaf.domain.sample(&random) }
        return config
    }

    /// The product of every grid domain's values, in a fixed order; one empty point without grids.
    var gridPoints: [[(path: String, value: ConfigValue)]] {
        var points: [[(String, ConfigValue)]] = [[]]
        for leaf in leaves {
            guard case let .grid(values) = leaf.domain else { continue }
            points = points.flatMap { point in values.map { point + [(leaf.path, $0)] } }
        }
        return points
    }

    /// The config with each value given its domain's kind again (JSON writes 1.0 as 1).
    func normalize(_ config: TrialConfig) -> TrialConfig {
        var out = config
        for leaf in leaves {
            guard let value = config[leaf.path] else { continue }
            switch leaf.domain {
            case .uniform, .logUniform:
                if case let .int(integer) = value { out[leaf.path] = .double(Double(integer)) }
            case let .choice(values), let .grid(values):
                if !values.contains(value), let number = value.doubleValue,
                   let match = values.first(where: { $0.doubleValue == number }) {
                    out[leaf.path] = match
                }
            case let .fixed(fixed):
                if value != fixed, let number = value.doubleValue, fixed.doubleValue == number { out[leaf.path] = fixed }
            case .randInt, .nested:
                break
            }
        }
        return out
    }

    func contains(_ config: TrialConfig) -> Bool {
        leaves.allSatisfy { leaf in config[leaf.path].map { leaf.domain.contains($0) } ?? false }
    }
}
