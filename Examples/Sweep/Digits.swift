import Foundation
import Starling

/// The digits data set (8×8 images of handwritten digits, 1,797 examples) with a fixed
/// train/validation/test split: 60% / 20% / 20% after a seeded shuffle, the same in every
/// process, so every trial trains and validates on the same examples.
struct Digits: Sendable, Codable {
    static let features = 64, classes = 10

    struct Split: Sendable, Codable {
        /// Row-major pixels scaled to [0, 1], `features` per example.
        var x: [Float] = []
        var y: [Int] = []
        var count: Int { y.count }
    }

    let train: Split, validation: Split, test: Split

    /// Loaded once per process from the CSV next to the example (every trial in a worker
    /// shares it); on a machine without the file, trials ask the driver's `DigitsServer`.
    static let shared: Result<Digits, Error> = Result { try Digits.load() }

    static func load() throws -> Digits {
        let candidates = [URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../Data/digits.csv").standardized.path,
                          FileManager.default.currentDirectoryPath + "/Examples/Data/digits.csv"]
        guard let path = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) else {
            throw SweepError.data("digits.csv not found (looked at \(candidates.joined(separator: ", ")))")
        }
        var rows: [(x: [Float], y: Int)] = []
        for (number, line) in try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").enumerated() {
            let values = line.split(separator: ",").compactMap { Int($0) }
            guard values.count == features + 1, (0..<classes).contains(values[features]) else {
                throw SweepError.data("\(path) line \(number + 1): expected 64 pixels and a label 0…9")
            }
            rows.append((values.prefix(features).map { Float($0) / 16 }, values[features]))
        }
        // A fixed shuffle (xorshift, seed 42) so the split does not depend on the file's order.
        var state: UInt64 = 42
        for i in stride(from: rows.count - 1, to: 0, by: -1) {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            rows.swapAt(i, Int(state % UInt64(i + 1)))
        }
        func split(_ part: ArraySlice<(x: [Float], y: Int)>) -> Split {
            Split(x: part.flatMap(\.x), y: part.map(\.y))
        }
        let trainEnd = rows.count * 6 / 10, validationEnd = rows.count * 8 / 10
        return Digits(train: split(rows[..<trainEnd]), validation: split(rows[trainEnd..<validationEnd]), test: split(rows[validationEnd...]))
    }
}

/// Serves the data set to trials on nodes that do not have the CSV (another machine).
distributed actor DigitsServer: RemoteActor {
    typealias ActorSystem = StarlingActorSystem
    static let name = "digits-data"
    let data: Digits

    init(actorSystem: ActorSystem, config data: Digits) {
        self.actorSystem = actorSystem
        self.data = data
    }

    distributed func digits() -> Digits { data }
}

enum SweepError: Error, CustomStringConvertible {
    case data(String)
    case usage(String)
    var description: String {
        switch self {
        case let .data(detail): return "data: \(detail)"
        case let .usage(detail): return "usage: \(detail)"
        }
    }
}
