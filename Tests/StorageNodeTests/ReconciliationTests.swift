import Ring
@testable import StorageEngine
@testable import StorageNode
import Testing

/// The pure parts of an anti-entropy exchange: which side's rows win, which rows
/// of a window both sides returned completely, and how many leaves a digest has.
@Suite struct ReconciliationTests {
    @Test func reconcileTakesTheNewerSideOfEveryKey() throws {
        let shared = try AntiEntropyTests.record("same", "1", ts: 5)
        let mineNewer = try AntiEntropyTests.record("a", "2", ts: 9)
        let theirsOlder = try AntiEntropyTests.record("a", "1", ts: 3)
        let mineOlder = try AntiEntropyTests.record("b", "1", ts: 3)
        let theirsNewer = try AntiEntropyTests.record("b", nil, ts: 9)
        let onlyMine = try AntiEntropyTests.record("c", "1", ts: 1)
        let onlyTheirs = try AntiEntropyTests.record("d", "1", ts: 1)
        let (push, pull) = AntiEntropy.reconcile(local: [shared, mineNewer, mineOlder, onlyMine],
                                                 remote: [shared, theirsOlder, theirsNewer, onlyTheirs])
        #expect(push == [mineNewer, onlyMine])
        #expect(pull == [theirsNewer, onlyTheirs])
    }

    @Test func aWindowCoversWhatBothSidesReturnedCompletely() throws {
        func at(_ position: UInt32) -> VersionedRecord {
            // Rows of made-up keys: only positions matter here.
            VersionedRecord(key: Array("p\(position)".utf8), position: position, value: [], version: Version(timestamp: 1, writer: 1))
        }
        let ranges = [RingArc(first: 100, last: 199), RingArc(first: 300, last: 399)]
        // Local cut at 150, remote complete: both trimmed to 150; the rest starts at 151.
        var window = AntiEntropy.window(ranges, local: ([at(120), at(150)], true), remote: ([at(110), at(160), at(310)], false))
        #expect(window.local.map(\.position) == [120, 150])
        #expect(window.remote.map(\.position) == [110])
        #expect(window.rest == [RingArc(first: 151, last: 199), RingArc(first: 300, last: 399)])
        // Remote cut at the end of the first range: the rest is the second range.
        window = AntiEntropy.window(ranges, local: ([at(120), at(330)], false), remote: ([at(199)], true))
        #expect(window.local.map(\.position) == [120])
        #expect(window.rest == [RingArc(first: 300, last: 399)])
        // Neither cut: everything, nothing left.
        window = AntiEntropy.window(ranges, local: ([at(120)], false), remote: ([at(330)], false))
        #expect(window.local.count == 1 && window.remote.count == 1 && window.rest.isEmpty)
    }

    @Test func leavesScaleWithRows() {
        #expect(AntiEntropy.leafCount(rows: 0, rowsPerLeaf: 32) == 1)
        #expect(AntiEntropy.leafCount(rows: 32, rowsPerLeaf: 32) == 1)
        #expect(AntiEntropy.leafCount(rows: 33, rowsPerLeaf: 32) == 2)
        #expect(AntiEntropy.leafCount(rows: 10_000, rowsPerLeaf: 32) == 512)
        #expect(AntiEntropy.leafCount(rows: 100_000_000, rowsPerLeaf: 32) == 65_536)
    }
}
