import Starling

// Estimates π by Monte Carlo: 1,000 tasks of 20,000 samples each.
// Embedded cluster: `swift run -c release Pi`. On a running cluster (see the README):
// `STARLING_ADDRESS=127.0.0.1:6379 STARLING_TOKEN_FILE=... .build/release/Pi`.

struct SamplePi: RemoteFunction {
    struct Input: Codable, Sendable { var seed: UInt64; var samples: Int }
    static func run(_ input: Input) async throws -> Int {
        var state = input.seed | 1
        var inside = 0
        for _ in 0..<input.samples {
            // xorshift64: fast, seeded, good enough for a demo.
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            let x = Double(state >> 11) / Double(1 << 53)
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            let y = Double(state >> 11) / Double(1 << 53)
            if x * x + y * y <= 1 { inside += 1 }
        }
        return inside
    }
}

@main
struct Pi {
    static func main() async {
        await Starling.runOrExit { cluster in
            let tasks = 1_000, samples = 20_000
            let clock = ContinuousClock()
            let start = clock.now
            var refs: [ObjectRef<Int>] = []
            for seed in 0..<tasks {
                refs.append(try await cluster.submit(SamplePi.self, .init(seed: UInt64(seed) &* 0x9E37_79B9_7F4A_7C15, samples: samples)))
            }
            let inside = try await cluster.get(refs).reduce(0, +)
            let pi = 4 * Double(inside) / Double(tasks * samples)
            let nodes = try await cluster.nodes().count
            print("π ≈ \(pi) from \(tasks * samples) samples in \(tasks) tasks on \(nodes) node(s), \(clock.now - start)")
        }
    }
}
