/// A binary min-heap in an array: `insert` and `removeMin` in O(log n),
/// `min` in O(1), and an O(n) rebuild from any sequence.
///
/// The lock table keeps its deadlines here instead of scanning every lock to
/// find the next one; it never updates an element in place (entries go stale
/// and are skipped when they reach the top), so no index tracking is needed.
struct MinHeap<Element: Comparable>: Sendable where Element: Sendable {
    private var storage: [Element] = []

    init() {}

    /// A heap of `elements`, built bottom-up in O(n).
    init<S: Sequence>(_ elements: S) where S.Element == Element {
        storage = Array(elements)
        var index = storage.count / 2
        while index > 0 {
            index -= 1
            siftDown(from: index)
        }
    }

    var count: Int { storage.count }
    var isEmpty: Bool { storage.isEmpty }

    /// The smallest element, if any.
    var min: Element? { storage.first }

    mutating func insert(_ element: Element) {
        storage.append(element)
        siftUp(from: storage.count - 1)
    }

    /// Removes and returns the smallest element.
    @discardableResult
    mutating func removeMin() -> Element? {
        guard let last = storage.popLast() else { return nil }
        guard !storage.isEmpty else { return last }
        let smallest = storage[0]
        storage[0] = last
        siftDown(from: 0)
        return smallest
    }

    private mutating func siftUp(from start: Int) {
        var child = start
        while child > 0 {
            let parent = (child - 1) / 2
            guard storage[child] < storage[parent] else { return }
            storage.swapAt(child, parent)
            child = parent
        }
    }

    private mutating func siftDown(from start: Int) {
        var parent = start
        while true {
            let left = 2 * parent + 1
            guard left < storage.count else { return }
            var smallest = left
            let right = left + 1
            if right < storage.count, storage[right] < storage[left] { smallest = right }
            guard storage[smallest] < storage[parent] else { return }
            storage.swapAt(parent, smallest)
            parent = smallest
        }
    }
}
