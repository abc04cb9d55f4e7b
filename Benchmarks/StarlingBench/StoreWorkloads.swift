import Foundation
import Starling

/// Object-store workloads (issue 5) on an embedded cluster, against Ray 2.60 on the same
/// definitions (`Benchmarks/ray/store.py`), and `memcpy` as the physical limit.
enum StoreWorkloads {
    struct Figures: Sendable { var put = 0.0, putHeld = 0.0, get = 0.0, getTyped = 0.0, memcpy = 0.0, putCalls = 0.0, getCalls = 0.0 }
    // Workloads run one after another from the main task, so these caches are never shared.
    nonisolated(unsafe) static var starling: Figures?
    nonisolated(unsafe) static var ray: [String: Double]?

    /// 100 MB arrays of Float, each put (or got) `rounds` times after one untimed; put
    /// `droppedRounds` times with the ref dropped at once (as Ray's ray_perf.py puts), after
    /// three untimed.
    static let floats = 25_000_000, rounds = 5, droppedRounds = 20
    /// Small objects (an Int) put, then got, this many times.
    static let smallCalls = 10_000

    static var all: [Workload] {
        [
            Workload(name: "single_client_put_gigabytes", unit: "GB/s", direction: .higherIsBetter) { try await figure($0, \.put, "single_client_put_gigabytes") },
            Workload(name: "single_client_put_gigabytes_held", unit: "GB/s", direction: .higherIsBetter) { try await figure($0, \.putHeld, "single_client_put_gigabytes_held") },
            Workload(name: "single_client_get_gigabytes", unit: "GB/s", direction: .higherIsBetter) { try await figure($0, \.get, "single_client_get_gigabytes") },
            Workload(name: "single_client_get_typed_gigabytes", unit: "GB/s", direction: .higherIsBetter) { try await figure($0, \.getTyped, "single_client_get_gigabytes") },
            Workload(name: "memcpy", unit: "GB/s", direction: .higherIsBetter) { try await figure($0, \.memcpy, "memcpy") },
            Workload(name: "single_client_put_calls", unit: "calls/s", direction: .higherIsBetter) { try await figure($0, \.putCalls, "single_client_put_calls") },
            Workload(name: "single_client_get_calls", unit: "calls/s", direction: .higherIsBetter) { try await figure($0, \.getCalls, "single_client_get_calls") },
        ]
    }

    static func figure(_ options: BenchOptions, _ key: KeyPath<Figures, Double>, _ rayKey: String) async throws -> Measurement {
        if starling == nil { starling = try await measureStarling() }
        var measurement = Measurement(value: starling![keyPath: key])
        if options.peer == "ray", key != \Figures.memcpy {
            if ray == nil { ray = try RayPeer.figures(script: "store.py") }
            measurement.peer = "ray-2.60"
            measurement.peerValue = ray?[rayKey]
        }
        return measurement
    }

    static func gigabytesPerSecond(_ bytes: Int, since start: ContinuousClock.Instant) -> Double {
        Double(bytes) / 1e9 / (TaskWorkloads.micros(ContinuousClock.now - start) / 1e6)
    }

    static func measureStarling() async throws -> Figures {
        var figures = Figures()
        // memcpy of 256 MB between two buffers already touched (no page faults timed).
        let size = 256 << 20
        let source = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
        let target = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
        defer { source.deallocate(); target.deallocate() }
        memset(source, 1, size)
        memset(target, 0, size)
        var best = 0.0
        for _ in 0..<3 {
            let start = ContinuousClock.now
            memcpy(target, source, size)
            best = max(best, gigabytesPerSecond(size, since: start))
        }
        figures.memcpy = best
        let (put, putHeld, get, getTyped, putCalls, getCalls) = try await Starling.run(embedded: .init(resources: ["CPU": 2])) { cluster in
            let array = [Float](repeating: 1.5, count: floats)
            let bytes = floats * 4
            _ = try await cluster.get(cluster.put(array))
            for _ in 0..<3 { _ = try await cluster.put(array) }
            var start = ContinuousClock.now
            for _ in 0..<droppedRounds { _ = try await cluster.put(array) }
            let put = gigabytesPerSecond(bytes * droppedRounds, since: start)
            var refs: [ObjectRef<[Float]>] = []
            start = ContinuousClock.now
            for _ in 0..<rounds { refs.append(try await cluster.put(array)) }
            let putHeld = gigabytesPerSecond(bytes * rounds, since: start)
            // As Ray's get of a numpy array: a view in place, then every element read (a sum).
            start = .now
            var total: Float = 0
            for ref in refs { total += sum(try await cluster.view(ref)) }
            let get = gigabytesPerSecond(bytes * rounds, since: start)
            guard total > 0 else { throw BenchError.peerFailed("views read wrong values") }
            // A typed get: decoded into a Swift Array (one copy).
            start = .now
            for ref in refs { _ = try await cluster.get(ref) }
            let getTyped = gigabytesPerSecond(bytes * rounds, since: start)
            var small: [ObjectRef<Int>] = []
            small.reserveCapacity(smallCalls)
            start = .now
            for i in 0..<smallCalls { small.append(try await cluster.put(i)) }
            let putCalls = Double(smallCalls) / (TaskWorkloads.micros(ContinuousClock.now - start) / 1e6)
            start = .now
            for ref in small { _ = try await cluster.get(ref) }
            let getCalls = Double(smallCalls) / (TaskWorkloads.micros(ContinuousClock.now - start) / 1e6)
            return (put, putHeld, get, getTyped, putCalls, getCalls)
        }
        figures.put = put
        figures.putHeld = putHeld
        figures.get = get
        figures.getTyped = getTyped
        figures.putCalls = putCalls
        figures.getCalls = getCalls
        return figures
    }

    /// The sum of the elements, eight lanes at a time (as numpy's sum vectorises).
    static func sum(_ view: ArrayView<Float>) -> Float {
        view.withUnsafeBufferPointer { buffer in
            var lanes = SIMD8<Float>()
            let whole = buffer.count / 8
            let raw = UnsafeRawPointer(buffer.baseAddress!)
            for index in 0..<whole { lanes += raw.loadUnaligned(fromByteOffset: index * 32, as: SIMD8<Float>.self) }
            var total = lanes.sum()
            for index in (whole * 8)..<buffer.count { total += buffer[index] }
            return total
        }
    }
}
