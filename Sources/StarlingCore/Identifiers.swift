/// Random 128-bit identifiers for nodes, workers, jobs, tasks, objects and leases.
public struct UniqueID: Sendable, Hashable, Codable, CustomStringConvertible {
    public let bytes: [UInt8]

    public init(bytes: [UInt8]) { self.bytes = bytes }

    public static func random() -> UniqueID {
        // Two 64-bit draws: the system generator costs a getrandom(2) call per draw.
        var generator = SystemRandomNumberGenerator()
        let high = generator.next(), low = generator.next()
        return UniqueID(bytes: withUnsafeBytes(of: (high, low)) { Array($0) })
    }

    /// Lowercase hex, the form in logs, file names and errors.
    public var hex: String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes { out.append(digits[Int(byte >> 4)]); out.append(digits[Int(byte & 15)]) }
        return String(decoding: out, as: UTF8.self)
    }

    /// Parses the `hex` form; nil for anything else.
    public init?(hex: String) {
        let digits = Array(hex.utf8)
        guard digits.count % 2 == 0, !digits.isEmpty else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        for index in stride(from: 0, to: digits.count, by: 2) {
            guard let high = Self.nibble(digits[index]), let low = Self.nibble(digits[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
        }
        self.bytes = bytes
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    /// The first 8 hex digits, enough to tell ids apart in a log line.
    public var short: String { String(hex.prefix(8)) }

    public var description: String { short }
}
