/// Calls waiting for a batch, first in line first.
///
/// Taken from the front by moving a start index, not by shifting the rest: with thousands of
/// calls queued, shifting (or copying) them all for each batch of 64 made pipelined actor
/// calls quadratic (BENCHMARKS.md, "CPU placement").
struct CallQueue<Element> {
    private var elements: [Element] = []
    private var start = 0

    var isEmpty: Bool { start == elements.count }
    var count: Int { elements.count - start }

    mutating func append(_ element: Element) { elements.append(element) }

    /// Removes and returns the next batch: up to `max` elements, and past the first only as
    /// many as keep their summed `size` within `byteLimit`.
    mutating func takeBatch(max: Int, byteLimit: Int, size: (Element) -> Int) -> [Element] {
        var bytes = 0
        var taken = 0
        for index in start..<min(elements.count, start + max) {
            bytes += size(elements[index])
            if taken > 0 && bytes > byteLimit { break }
            taken += 1
        }
        let batch = Array(elements[start..<(start + taken)])
        start += taken
        if start == elements.count {
            elements.removeAll(keepingCapacity: true)
            start = 0
        } else if start >= 1024 && start * 2 >= elements.count {
            // Reclaim the front once it holds at least half the storage.
            elements.removeFirst(start)
            start = 0
        }
        return batch
    }

    /// Puts elements back at the front, in their order.
    mutating func putBack(_ returned: [Element]) {
        elements.insert(contentsOf: returned, at: start)
    }

    /// Removes and returns every element, in order.
    mutating func removeAll() -> [Element] {
        defer { elements = []; start = 0 }
        return Array(elements[start...])
    }
}
