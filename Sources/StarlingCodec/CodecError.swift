/// An error from ``BinaryEncoder`` or ``BinaryDecoder``.
///
/// Every case names where in the value it happened, as a coding path such as
/// `layers[2].width` (empty for the top-level value), so a log line says what failed and where:
///
/// ```swift
/// do {
///     let config = try BinaryDecoder().decode(TrainConfig.self, from: bytes)
/// } catch let error as CodecError {
///     print(error)   // expected Int at layers[2].width, found String
/// }
/// ```
///
/// Decoding malformed or hostile input always ends in one of these errors, never in a crash.
/// `DecodingError`s and `EncodingError`s thrown by a type's own `Codable` code are converted to
/// the closest case; any other error a type throws is passed through unchanged.
public enum CodecError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The input holds a different kind of value than the type being decoded asks for.
    case typeMismatch(expected: String, found: String, path: String)
    /// A keyed container has no entry for a required key.
    case keyNotFound(key: String, path: String)
    /// An unkeyed container (an array, a set) has no more elements but more were asked for.
    case valueNotFound(expected: String, path: String)
    /// The input ends before the value at `path` does.
    case truncated(path: String, offset: Int, needed: UInt64, available: Int)
    /// A string's bytes are not valid UTF-8.
    case invalidUTF8(path: String, offset: Int)
    /// A declared count or length is larger than the input that is left (or than the format allows).
    case countOutOfRange(count: UInt64, path: String, available: Int)
    /// An integer does not fit the integer type being decoded.
    case numberOutOfRange(value: String, expected: String, path: String)
    /// Bytes remain after the top-level value.
    case trailingBytes(count: Int, offset: Int)
    /// Values nest deeper than the coder's `maxDepth` (a cyclic object graph, or hostile input).
    case nestingTooDeep(limit: Int, path: String)
    /// The input is not a valid encoding (an unknown tag, inconsistent lengths, a bad byte),
    /// or a type's own decoding code rejected it.
    case invalidData(String, path: String)
    /// A value cannot be encoded (a container used inconsistently, or a type's own encoding
    /// code threw `EncodingError.invalidValue`).
    case invalidValue(String, path: String)

    public var description: String {
        switch self {
        case let .typeMismatch(expected, found, path):
            return "expected \(expected) \(Self.location(path)), found \(found)"
        case let .keyNotFound(key, path):
            return "missing key '\(key)' \(Self.location(path))"
        case let .valueNotFound(expected, path):
            return "expected \(expected) \(Self.location(path)), but the container has no more elements"
        case let .truncated(path, offset, needed, available):
            return "input ends early \(Self.location(path)): \(needed) bytes needed at offset \(offset), \(available) left"
        case let .invalidUTF8(path, offset):
            return "invalid UTF-8 in string \(Self.location(path)) (offset \(offset))"
        case let .countOutOfRange(count, path, available):
            return "count \(count) \(Self.location(path)) is out of range: only \(available) bytes left"
        case let .numberOutOfRange(value, expected, path):
            return "value \(value) does not fit in \(expected) \(Self.location(path))"
        case let .trailingBytes(count, offset):
            return "\(count) unexpected bytes after the top-level value (from offset \(offset))"
        case let .nestingTooDeep(limit, path):
            return "values nest deeper than \(limit) levels \(Self.location(path))"
        case let .invalidData(detail, path):
            return "invalid data \(Self.location(path)): \(detail)"
        case let .invalidValue(detail, path):
            return "cannot encode value \(Self.location(path)): \(detail)"
        }
    }

    private static func location(_ path: String) -> String {
        path.isEmpty ? "at the top level" : "at \(path)"
    }
}

// MARK: - Coding paths

/// The key of an element of an unkeyed container, rendered `[index]` in paths.
struct IndexKey: CodingKey {
    let index: Int
    init(_ index: Int) { self.index = index }
    init?(stringValue: String) { return nil }
    init?(intValue: Int) { self.index = intValue }
    var stringValue: String { "Index \(index)" }
    var intValue: Int? { index }
}

/// A key given by its string, for `superEncoder()`/`superDecoder()` and tree encoding.
struct StringKey: CodingKey {
    let stringValue: String
    init(_ string: String) { stringValue = string }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { stringValue = String(intValue) }
    var intValue: Int? { nil }

    static let `super` = StringKey("super")
}

enum CodingPath {
    /// Renders keys as `a.b[2].c`.
    static func render(_ keys: some Sequence<any CodingKey>) -> String {
        var out = ""
        for key in keys {
            if let index = key as? IndexKey {
                out += "[\(index.index)]"
            } else {
                if !out.isEmpty { out += "." }
                out += key.stringValue
            }
        }
        return out
    }

    /// Converts an error thrown by a type's own `Codable` code to a ``CodecError``; others pass.
    static func convert(_ error: any Error, prefix: [any CodingKey] = []) -> any Error {
        if let error = error as? DecodingError {
            switch error {
            case let .keyNotFound(key, context):
                return CodecError.keyNotFound(key: key.stringValue,
                                              path: render(prefix + context.codingPath))
            case let .typeMismatch(type, context):
                return CodecError.invalidData("type mismatch for \(type): \(context.debugDescription)",
                                              path: render(prefix + context.codingPath))
            case let .valueNotFound(type, context):
                return CodecError.invalidData("no value for \(type): \(context.debugDescription)",
                                              path: render(prefix + context.codingPath))
            case let .dataCorrupted(context):
                return CodecError.invalidData(context.debugDescription,
                                              path: render(prefix + context.codingPath))
            @unknown default:
                return CodecError.invalidData("\(error)", path: render(prefix))
            }
        }
        if let error = error as? EncodingError {
            switch error {
            case let .invalidValue(value, context):
                return CodecError.invalidValue("\(type(of: value)): \(context.debugDescription)",
                                               path: render(prefix + context.codingPath))
            @unknown default:
                return CodecError.invalidValue("\(error)", path: render(prefix))
            }
        }
        return error
    }
}
