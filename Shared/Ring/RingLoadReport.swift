/// How much of the ring each member owns as primary, to judge balance.
///
/// A point owns the positions after the previous point up to and including
/// itself; a member's load is the total length of its points' arcs, as a
/// fraction of the 2^32 positions. Keys hash uniformly, so that fraction is
/// the share of keys the member is primary for.
public struct RingLoadReport: Sendable {
    /// One member's share of the ring.
    public struct Entry: Hashable, Sendable {
        /// The member.
        public let member: RingMember
        /// Ring positions it owns as primary, out of 2^32.
        public let positions: UInt64
        /// `positions / 2^32`.
        public let fraction: Double
        /// The share its weight asks for: its weight over the total weight.
        public let expectedFraction: Double
    }

    /// One entry per member, in the ring's member order (by address).
    public let entries: [Entry]

    /// The largest fraction any member owns.
    public var maximumFraction: Double { entries.map(\.fraction).max() ?? 0 }

    /// The mean fraction per member, `1 / members`.
    public var meanFraction: Double { entries.isEmpty ? 0 : 1 / Double(entries.count) }

    /// The largest fraction over the mean: 1 is perfect balance for equal weights.
    public var maxOverMean: Double { meanFraction == 0 ? 0 : maximumFraction / meanFraction }

    /// The largest ratio of owned to expected fraction: 1 is perfect balance for any weights.
    public var maxOverExpected: Double { entries.map { $0.fraction / $0.expectedFraction }.max() ?? 0 }
}

extension HashRing {
    /// Measures each member's primary share of the ring.
    public func loadReport() -> RingLoadReport {
        var owned = [UInt64](repeating: 0, count: members.count)
        let ringSize: UInt64 = 1 << 32
        withTables { tables in
            for point in 0..<tables.count {
                let position = UInt64(tables.position(ofPoint: point))
                let length = point == 0
                    ? position + ringSize - UInt64(tables.position(ofPoint: tables.count - 1))
                    : position - UInt64(tables.position(ofPoint: point - 1))
                owned[tables.member(ofPoint: point)] += length
            }
        }
        let totalWeight = Double(members.reduce(0) { $0 + $1.weight })
        let entries = members.indices.map { index in
            RingLoadReport.Entry(
                member: members[index],
                positions: owned[index],
                fraction: Double(owned[index]) / Double(ringSize),
                expectedFraction: Double(members[index].weight) / totalWeight
            )
        }
        return RingLoadReport(entries: entries)
    }
}
