import RingProtocol
@testable import RingstoreClient
import Testing

/// The clone pattern's bookkeeping: which events are news, across restarts
/// and leader changes (each a new incarnation of the publisher).
@Suite struct SequenceTrackerTests {
    private func event(_ topic: String, seq: UInt64, incarnation: UInt64 = 1) -> ClusterEvent {
        ClusterEvent(topic: topic, WireEvent.with { $0.seq = seq; $0.incarnation = incarnation })
    }

    @Test func eventsAfterTheSnapshotAreNewsAndOlderOnesAreNot() async {
        var tracker = SequenceTracker()
        tracker.reset(incarnation: 1, lastSequence: ["ring": 4])
        #expect(tracker.classify(event("ring", seq: 4)) == .seen)
        #expect(tracker.classify(event("ring", seq: 5)) == .next)
        let first = await tracker.admit(event("ring", seq: 5)) { nil }
        #expect(first == .init(isNew: true, adoptedSnapshot: false))
        let again = await tracker.admit(event("ring", seq: 5)) { nil }
        #expect(again == .init(isNew: false, adoptedSnapshot: false))
        #expect(tracker.classify(event("membership", seq: 1)) == .next)
    }

    @Test func aGapOrANewIncarnationTakesAFreshSnapshot() async {
        var tracker = SequenceTracker()
        tracker.reset(incarnation: 1, lastSequence: ["ring": 4])
        #expect(tracker.classify(event("ring", seq: 7)) == .gapOrRestart)
        #expect(tracker.classify(event("ring", seq: 1, incarnation: 2)) == .gapOrRestart)
        var snapshots = 0
        // The fresh snapshot already covers seq 7: not news.
        let covered = await tracker.admit(event("ring", seq: 7)) {
            snapshots += 1
            return (1, ["ring": 7])
        }
        #expect(covered == .init(isNew: false, adoptedSnapshot: true) && snapshots == 1)
        // A gap still shows after that: seq 9 without 8.
        #expect(tracker.classify(event("ring", seq: 9)) == .gapOrRestart)
        // A restart or a new leader: the new incarnation's snapshot ends at 0, so its event 1 is news.
        let restarted = await tracker.admit(event("ring", seq: 1, incarnation: 2)) {
            snapshots += 1
            return (2, [:])
        }
        #expect(restarted == .init(isNew: true, adoptedSnapshot: true) && snapshots == 2)
        #expect(!tracker.isNewIncarnation(2))
    }

    @Test func aLateEventOfAReplacedLeaderIsDroppedWithoutASnapshot() async {
        var tracker = SequenceTracker()
        tracker.reset(incarnation: 1, lastSequence: ["ring": 4])
        // Leader 2 took over (the watcher's periodic snapshot saw it).
        let adopted = tracker.adopt(2, lastSequence: ["ring": 3])
        #expect(adopted)
        // Leader 1's event 5, published before it lost the leadership, arrives late.
        #expect(tracker.classify(event("ring", seq: 5, incarnation: 1)) == .stale)
        var snapshots = 0
        let late = await tracker.admit(event("ring", seq: 5, incarnation: 1)) {
            snapshots += 1
            return (2, ["ring": 3])
        }
        #expect(late == .init(isNew: false, adoptedSnapshot: false) && snapshots == 0)
        // The view is still leader 2's: its next event is news, the one after a gap is not taken as next.
        let next = await tracker.admit(event("ring", seq: 4, incarnation: 2)) { nil }
        #expect(next == .init(isNew: true, adoptedSnapshot: false))
        #expect(tracker.classify(event("ring", seq: 6, incarnation: 2)) == .gapOrRestart)
        // A late snapshot of leader 1 does not take the view back.
        #expect(!tracker.isNewIncarnation(1))
        let readopted = tracker.adopt(1, lastSequence: ["ring": 9])
        #expect(!readopted)
        #expect(tracker.classify(event("ring", seq: 5, incarnation: 2)) == .next)
    }

    @Test func anEventOfAnotherIncarnationThanTheFreshSnapshotsIsNotNews() async {
        var tracker = SequenceTracker()
        tracker.reset(incarnation: 1, lastSequence: ["ring": 4])
        // Incarnation 3 is not the leader the snapshot comes from: its event is not
        // covered by the view; the next snapshot will say whether 3 leads.
        let stray = await tracker.admit(event("ring", seq: 1, incarnation: 3)) { (1, ["ring": 4]) }
        #expect(stray == .init(isNew: false, adoptedSnapshot: true))
        #expect(tracker.classify(event("ring", seq: 5)) == .next)
        // A fresh snapshot of a replaced incarnation is not adopted.
        let moved = tracker.adopt(2, lastSequence: [:])
        #expect(moved)
        let stale = await tracker.admit(event("ring", seq: 9, incarnation: 4)) { (1, ["ring": 9]) }
        #expect(stale == .init(isNew: false, adoptedSnapshot: false))
        #expect(!tracker.isNewIncarnation(2))
    }

    @Test func withoutASnapshotAnEventPassesAsTheBestThereIs() async {
        var tracker = SequenceTracker()
        let passed = await tracker.admit(event("ring", seq: 3)) { nil }
        #expect(passed == .init(isNew: true, adoptedSnapshot: false))
    }
}
