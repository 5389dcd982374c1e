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
    /// Runs in time linear in the two rings' point counts (times `replicas`).
    /// Members are matched by address, so a weight change shows up as moved
    /// arcs, not as a changed member. Throws ``RingError/invalidReplicas`` when `replicas < 1`.
    public func diff(to newRing: HashRing, replicas: Int) throws(RingError) -> RingDiff {
        guard replicas >= 1 else {
            throw RingError.invalidReplicas.with(detail: "\(replicas) replicas; at least 1 is needed")
        }
        let oldWanted = min(replicas, members.count)
        let newWanted = min(replicas, newRing.members.count)

        // Compare members by address: give the new ring's members the old ring's indices.
        let unifiedIndexOfNew: [Int32] = newRing.members.indices.map { index in
            Int32(memberIndex(ofAddress: newRing.members[index].address) ?? members.count + index)
        }
        var newIndexOfUnified = [Int](repeating: 0, count: members.count + newRing.members.count)
        for (index, unified) in unifiedIndexOfNew.enumerated() {
            newIndexOfUnified[Int(unified)] = index
        }

        // Every position of either ring bounds a segment (previous bound, bound] on which
        // both preference lists are constant; record both lists per segment.
        var bounds: [UInt32] = []
        bounds.reserveCapacity(pointCount + newRing.pointCount)
        var oldLists: [Int32] = []
        oldLists.reserveCapacity((pointCount + newRing.pointCount) * oldWanted)
        var newLists: [Int32] = []
        newLists.reserveCapacity((pointCount + newRing.pointCount) * newWanted)
        withTables { oldTables in
            newRing.withTables { newTables in
                var i = 0
                var j = 0
                while i < oldTables.count || j < newTables.count {
                    let bound: UInt32
                    if j == newTables.count
                        || (i < oldTables.count && oldTables.position(ofPoint: i) <= newTables.position(ofPoint: j))
                    {
                        bound = oldTables.position(ofPoint: i)
                    } else {
                        bound = newTables.position(ofPoint: j)
                    }
                    // i and j index the first points at or after `bound` (or the ends: wrap to 0).
                    bounds.append(bound)
                    oldTables.forEachPreferredMember(fromPoint: i == oldTables.count ? 0 : i, wanted: oldWanted) {
                        oldLists.append(Int32($0))
                    }
                    newTables.forEachPreferredMember(fromPoint: j == newTables.count ? 0 : j, wanted: newWanted) {
                        newLists.append(unifiedIndexOfNew[$0])
                    }
                    while i < oldTables.count && oldTables.position(ofPoint: i) == bound { i += 1 }
                    while j < newTables.count && newTables.position(ofPoint: j) == bound { j += 1 }
                }
            }
        }

        func sameLists(_ a: Int, _ b: Int) -> Bool {
            oldLists[a * oldWanted..<(a + 1) * oldWanted] == oldLists[b * oldWanted..<(b + 1) * oldWanted]
                && newLists[a * newWanted..<(a + 1) * newWanted] == newLists[b * newWanted..<(b + 1) * newWanted]
        }

        // Merge neighbouring segments with identical lists into runs; segment 0 starts
        // just after the last bound, so it holds position 0 and may wrap.
        var runs: [(first: UInt32, last: UInt32, segment: Int)] = []
        for segment in bounds.indices {
            if let previous = runs.last, sameLists(previous.segment, segment) {
                runs[runs.count - 1].last = bounds[segment]
            } else {
                let first = segment == 0 ? bounds[bounds.count - 1] &+ 1 : bounds[segment - 1] &+ 1
                runs.append((first, bounds[segment], segment))
            }
        }
        if runs.count == 1 {
            runs[0].first = RingArc.wholeRing.first
            runs[0].last = RingArc.wholeRing.last
        } else if runs.count > 1, sameLists(runs[0].segment, runs[runs.count - 1].segment) {
            runs[0].first = runs[runs.count - 1].first
            runs.removeLast()
        }

        var changes: [RingDiff.Change] = []
        for run in runs {
            let old = oldLists[run.segment * oldWanted..<(run.segment + 1) * oldWanted]
            let new = newLists[run.segment * newWanted..<(run.segment + 1) * newWanted]
            guard old != new else { continue }
            changes.append(
                RingDiff.Change(
                    arc: RingArc(first: run.first, last: run.last),
                    oldReplicas: old.map { members[Int($0)] },
                    newReplicas: new.map { newRing.members[newIndexOfUnified[Int($0)]] }
                )
            )
        }
        return RingDiff(replicas: replicas, changes: changes)
    }
}
