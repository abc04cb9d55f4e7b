import Testing
@testable import Starling

@Suite("Actor call queue")
struct CallQueueTests {
    @Test("batches come off the front in order, bounded by count and bytes; returned calls go back first")
    func batches() {
        var queue = CallQueue<Int>()
        for value in 0..<10 { queue.append(value) }
        #expect(queue.takeBatch(max: 4, byteLimit: 100) { _ in 1 } == [0, 1, 2, 3])
        // Sizes of 10: the byte limit of 25 admits two; the first always goes, however large.
        #expect(queue.takeBatch(max: 4, byteLimit: 25) { _ in 10 } == [4, 5])
        #expect(queue.takeBatch(max: 4, byteLimit: 5) { _ in 10 } == [6])
        queue.putBack([4, 5, 6])
        #expect(queue.takeBatch(max: 100, byteLimit: 100) { _ in 1 } == [4, 5, 6, 7, 8, 9])
        #expect(queue.isEmpty)
    }

    @Test("thousands of calls drain in order across the reclaiming of the front")
    func longQueue() {
        var queue = CallQueue<Int>()
        for value in 0..<5000 { queue.append(value) }
        var drained: [Int] = []
        while !queue.isEmpty {
            drained += queue.takeBatch(max: 64, byteLimit: 1 << 20) { _ in 8 }
            // Calls keep arriving while batches leave.
            if drained.count == 3008 { for value in 5000..<5100 { queue.append(value) } }
        }
        #expect(drained == Array(0..<5100))
        queue.append(1)
        queue.append(2)
        #expect(queue.removeAll() == [1, 2])
        #expect(queue.isEmpty && queue.count == 0)
    }
}
