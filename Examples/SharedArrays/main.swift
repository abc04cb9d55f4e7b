import Foundation
import Starling

// Large arrays shared through the object store: the digits images are put once (into the
// node's shared memory), ten tasks each view them in place (no copy) to compute one class's
// mean image, and the driver classifies held-out images by the nearest mean. Then it shows
// what the store holds (`Cluster.memory()`), drops the refs and shows the store empty again.
//
// Embedded cluster: `swift run -c release SharedArrays`; a running cluster: set
// STARLING_ADDRESS (and STARLING_TOKEN_FILE).

let pixels = 64

/// The mean image of one class over the training rows, read in place from the store.
struct ClassMean: RemoteFunction {
    struct Input: Codable, Sendable {
        var images: ObjectRef<[Float]>
        var labels: ObjectRef<[Int32]>
        var digit: Int32
        var trainingRows: Int
    }

    static func run(_ input: Input) async throws -> [Float] {
        let cluster = try Cluster.current()
        let images = try await cluster.view(input.images)
        let labels = try await cluster.view(input.labels)
        var mean = [Float](repeating: 0, count: pixels)
        var count: Float = 0
        for row in 0..<input.trainingRows where labels[row] == input.digit {
            for pixel in 0..<pixels { mean[pixel] += images[row * pixels + pixel] }
            count += 1
        }
        return mean.map { $0 / max(count, 1) }
    }
}

/// `Examples/Data/digits.csv`: 64 pixel values then the label, one image a line.
func loadDigits() throws -> (images: [Float], labels: [Int32]) {
    let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Data/digits.csv").path
    var images: [Float] = [], labels: [Int32] = []
    for line in try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n") {
        let fields = line.split(separator: ",")
        guard fields.count == pixels + 1, let label = Int32(fields[pixels]) else { continue }
        images += fields.prefix(pixels).map { Float($0) ?? 0 }
        labels.append(label)
    }
    return (images, labels)
}

@main
struct SharedArrays {
    static func main() async {
        await Starling.runOrExit { cluster in
            let (images, labels) = try loadDigits()
            let rows = labels.count, trainingRows = rows * 4 / 5
            var imagesRef: ObjectRef<[Float]>? = try await cluster.put(images)
            var labelsRef: ObjectRef<[Int32]>? = try await cluster.put(labels)
            let means = try await cluster.get(try await (0..<10).asyncMap { digit in
                try await cluster.submit(ClassMean.self, .init(images: imagesRef!, labels: labelsRef!, digit: Int32(digit), trainingRows: trainingRows))
            })
            var correct = 0
            for row in trainingRows..<rows {
                let image = images[(row * pixels)..<((row + 1) * pixels)]
                let distances = means.map { mean in zip(mean, image).reduce(Float(0)) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) } }
                if distances.indices.min(by: { distances[$0] < distances[$1] }) == Int(labels[row]) { correct += 1 }
            }
            print("nearest class mean: \(correct) of \(rows - trainingRows) held-out digits right (\(String(format: "%.1f", 100 * Double(correct) / Double(rows - trainingRows)))%)")
            print("the object store now:\n\(try await cluster.memory())")
            imagesRef = nil
            labelsRef = nil
            _ = (imagesRef, labelsRef)
            // The frees travel to the node; give them a moment.
            try await Task.sleep(for: .milliseconds(200))
            let used = try await cluster.memory().nodes.reduce(0) { $0 + $1.used }
            print("after dropping the refs: \(used) bytes of shared memory in use")
        }
    }
}

extension Sequence where Element: Sendable {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var out: [T] = []
        for element in self { out.append(try await transform(element)) }
        return out
    }
}
