/// Random 128-bit identifiers for nodes, workers, jobs, tasks, objects and leases.
public struct UniqueID: Sendable, Hashable, Codable, CustomStringConvertible {
    public let bytes: [UInt8]

    public init(bytes: [UInt8]) { self.bytes = bytes }

    public static func random() -> UniqueID {
        var generator = SystemRandomNumberGenerator()
        return UniqueID(bytes: (0..<16).map { _ in UInt8.random(in: 0 ... 255, using: &generator) })
    }

    /// Lowercase hex, the form in logs, file names and errors.
    public var hex: String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes { out.append(digits[Int(byte >> 4)]); out.append(digits[Int(byte & 15)]) }
        return String(decoding: out, as: UTF8.self)
    }

    /// The first 8 hex digits, enough to tell ids apart in a log line.
    public var short: String { String(hex.prefix(8)) }

    public var description: String { short }
}
