/// What changes between two rings: the arcs whose preference list differs,
/// with the old and the new replicas of each. This is the migration plan.
///
/// The diff is exact: a position lies on one of the ``changes``' arcs if and
/// only if its preference list (ordered, primary first, compared by member
/// address) differs between the two rings. Arcs never overlap; adjacent
/// stretches with the same old and new lists form one arc, also across the
/// top of the ring, where the arc wraps (see ``RingArc``). ``changes`` is in
/// ring order, starting with the change whose arc holds the lowest position
/// (a wrapping arc holds position 0, so it comes first).
public struct RingDiff: Sendable {
    /// One arc whose preference list changed.
    public struct Change: Hashable, Sendable {
        /// The positions concerned.
        public let arc: RingArc
        /// The preference list before, primary first.
        public let oldReplicas: [RingMember]
        /// The preference list after, primary first.
        public let newReplicas: [RingMember]

        /// Members that hold the arc after but not before: they must receive its data.
        public var gainedReplicas: [RingMember] {
            newReplicas.filter { member in !oldReplicas.contains { $0.address == member.address } }
        }

        /// Members that held the arc before but not after: they may drop it once the others confirm.
        public var lostReplicas: [RingMember] {
            oldReplicas.filter { member in !newReplicas.contains { $0.address == member.address } }
        }
    }

    /// The preference list length both rings were compared at.
    public let replicas: Int

    /// The changed arcs, in ring order.
    public let changes: [Change]

    /// Whether no position changed its preference list.
    public var isEmpty: Bool { changes.isEmpty }

    /// How many of the 2^32 positions changed their preference list.
    public var changedPositionCount: UInt64 { changes.reduce(0) { $0 + $1.arc.length } }

    /// The change whose arc holds `position`, or `nil` when its preference list did not change.
    public func change(containing position: UInt32) -> Change? {
        guard let firstChange = changes.first else { return nil }
        if firstChange.arc.wraps && firstChange.arc.contains(position) { return firstChange }
        // The remaining arcs do not wrap and ascend: find the last one starting at or before `position`.
        var low = firstChange.arc.wraps ? 1 : 0
        var high = changes.count
        while low < high {
            let middle = (low + high) / 2
            if changes[middle].arc.first <= position {
                low = middle + 1
            } else {
                high = middle
            }
        }
        guard low > 0, !changes[low - 1].arc.wraps, changes[low - 1].arc.contains(position) else { return nil }
        return changes[low - 1]
    }
}

extension HashRing {
    /// The arcs whose preference list of `replicas` members differs between this ring and `newRing`.
    ///
    /// The common refinement of the two rings' segments (``RingPartition``),
    /// neighbours with the same lists merged: linear in the two rings' point
    /// counts (times `replicas`). Members are matched by address, so a weight
    /// change shows up as moved arcs, not as a changed member. Throws
    /// ``RingError/invalidReplicas`` when `replicas < 1`.
    public func diff(to newRing: HashRing, replicas: Int) throws(RingError) -> RingDiff {
        let old = try segments(replicas: replicas).map { (range: $0.range, value: $0.replicas) }
        let new = try newRing.segments(replicas: replicas).map { (range: $0.range, value: $0.replicas) }
        func same(_ a: [RingMember], _ b: [RingMember]) -> Bool {
            a.count == b.count && zip(a, b).allSatisfy { $0.address == $1.address }
        }
        // Runs of positions with the same old and the same new list; the first
        // run holds position 0 and takes in the last one when their lists agree
        // (the stretch that wraps past the top).
        var runs: [(first: UInt32, last: UInt32, old: [RingMember], new: [RingMember])] = []
        for piece in RingPartition.refine(old, new) {
            if let previous = runs.last, same(previous.old, piece.a), same(previous.new, piece.b) {
                runs[runs.count - 1].last = piece.range.upperBound
            } else {
                runs.append((piece.range.lowerBound, piece.range.upperBound, piece.a, piece.b))
            }
        }
        if runs.count > 1, let last = runs.last, same(runs[0].old, last.old), same(runs[0].new, last.new) {
            runs[0].first = last.first
            runs.removeLast()
        }
        let changes = runs.filter { !same($0.old, $0.new) }.map { run in
            RingDiff.Change(arc: RingArc(first: run.first, last: run.last), oldReplicas: run.old, newReplicas: run.new)
        }
        return RingDiff(replicas: replicas, changes: changes)
    }
}
