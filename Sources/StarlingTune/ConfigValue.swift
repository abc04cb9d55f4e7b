import Foundation

/// One hyperparameter value: a number, a string, a flag, or a nested group of values.
public enum ConfigValue: Sendable, Hashable, Codable, CustomStringConvertible {
    case int(Int)
    case double(Double)
    case string(String)
    case bool(Bool)
    case nested(TrialConfig)

    /// The value as a `Double` (an `int` converts); nil for other kinds.
    public var doubleValue: Double? {
        switch self {
        case let .double(value): return value
        case let .int(value): return Double(value)
        default: return nil
        }
    }

    public var description: String {
        switch self {
        case let .int(value): return String(value)
        case let .double(value): return ConfigValue.format(value)
        case let .string(value): return value
        case let .bool(value): return String(value)
        case let .nested(config): return config.description
        }
    }

    /// Short, stable rendering of a double for tables and file names.
    static func format(_ value: Double) -> String {
        if value == value.rounded(), abs(value) < 1e6 { return String(format: "%.1f", value) }
        if abs(value) >= 1e-3, abs(value) < 1e4 { return String(format: "%.4g", value) }
        return String(format: "%.3e", value)
    }

    // A plain JSON shape (numbers, strings, booleans, objects) so `params.json` reads like Ray's.
    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let flag = try? container.decode(Bool.self) { self = .bool(flag); return }
        if let integer = try? container.decode(Int.self) { self = .int(integer); return }
        if let number = try? container.decode(Double.self) { self = .double(number); return }
        if let text = try? container.decode(String.self) { self = .string(text); return }
        self = .nested(try container.decode(TrialConfig.self))
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case let .int(value): try container.encode(value)
        case let .double(value): try container.encode(value)
        case let .string(value): try container.encode(value)
        case let .bool(value): try container.encode(value)
        case let .nested(config): try container.encode(config)
        }
    }
}

extension ConfigValue: ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral, ExpressibleByStringLiteral, ExpressibleByBooleanLiteral {
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}

/// The hyperparameters of one trial: names to values, possibly nested.
///
/// ```swift
/// let rate = try config.double("lr")
/// let width = try config.int("model.hidden")   // a dotted path reaches nested groups
/// ```
public struct TrialConfig: Sendable, Hashable, Codable, CustomStringConvertible, ExpressibleByDictionaryLiteral {
    public var values: [String: ConfigValue]

    public init(_ values: [String: ConfigValue] = [:]) { self.values = values }
    public init(dictionaryLiteral elements: (String, ConfigValue)...) {
        values = Dictionary(elements, uniquingKeysWith: { _, last in last })
    }

    public init(from decoder: Decoder) throws {
        values = try decoder.singleValueContainer().decode([String: ConfigValue].self)
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(values)
    }

    /// The value at a dotted path (`"optimizer.lr"`), or nil.
    public subscript(path: String) -> ConfigValue? {
        get {
            var parts = path.split(separator: ".").map(String.init)
            guard !parts.isEmpty else { return nil }
            let last = parts.removeLast()
            var group = self
            for part in parts {
                guard case let .nested(inner)? = group.values[part] else { return nil }
                group = inner
            }
            return group.values[last]
        }
        set {
            var parts = path.split(separator: ".").map(String.init)
            guard !parts.isEmpty else { return }
            let first = parts.removeFirst()
            if parts.isEmpty {
                values[first] = newValue
            } else {
                var inner: TrialConfig
                if case let .nested(existing)? = values[first] { inner = existing } else { inner = TrialConfig() }
                inner[parts.joined(separator: ".")] = newValue
                values[first] = .nested(inner)
            }
        }
    }

    /// Every leaf as (dotted path, value), sorted by path.
    public var flattened: [(path: String, value: ConfigValue)] {
        var out: [(String, ConfigValue)] = []
        for (key, value) in values {
            if case let .nested(inner) = value {
                out += inner.flattened.map { ("\(key).\($0.path)", $0.value) }
            } else {
                out.append((key, value))
            }
        }
        return out.sorted { $0.0 < $1.0 }
    }

    public func double(_ path: String) throws -> Double {
        guard let value = self[path] else { throw TuneError.missingParameter(path, config: description) }
        guard let number = value.doubleValue else { throw TuneError.wrongParameterType(path, expected: "a number", found: value.description) }
        return number
    }

    public func int(_ path: String) throws -> Int {
        guard let value = self[path] else { throw TuneError.missingParameter(path, config: description) }
        switch value {
        case let .int(integer): return integer
        case let .double(number) where number == number.rounded() && abs(number) < 9e18: return Int(number)
        default: throw TuneError.wrongParameterType(path, expected: "an integer", found: value.description)
        }
    }

    public func string(_ path: String) throws -> String {
        guard let value = self[path] else { throw TuneError.missingParameter(path, config: description) }
        guard case let .string(text) = value else { throw TuneError.wrongParameterType(path, expected: "a string", found: value.description) }
        return text
    }

    public func bool(_ path: String) throws -> Bool {
        guard let value = self[path] else { throw TuneError.missingParameter(path, config: description) }
        guard case let .bool(flag) = value else { throw TuneError.wrongParameterType(path, expected: "true or false", found: value.description) }
        return flag
    }

    public var description: String {
        "{" + flattened.map { "\($0.path)=\($0.value)" }.joined(separator: ", ") + "}"
    }
}
