/// The ring cut into arcs on which the preference list is constant.
extension HashRing {
    /// One stretch of positions and the replicas every key on it has.
    public struct Segment: Hashable, Sendable {
        /// Positions `first...last`; never wraps (see ``HashRing/segments(replicas:)``).
        public let range: ClosedRange<UInt32>
        /// The preference list, primary first.
        public let replicas: [RingMember]
    }

    /// The whole ring `0...UInt32.max` as ascending, non-wrapping segments with
    /// constant preference lists of `replicas` members; neighbouring segments
    /// always differ. The stretch that wraps past the top is cut at 0, so it
    /// appears as the first and the last segment.
    ///
    /// Runs in time linear in the point count (times `replicas`).
    public func segments(replicas: Int) throws(RingError) -> [Segment] {
        guard replicas >= 1 else {
            throw RingError.invalidReplicas.with(detail: "\(replicas) replicas; at least 1 is needed")
        }
        let wanted = min(replicas, members.count)
        var segments: [Segment] = []
        withTables { tables in
            var lower: UInt32 = 0
            var point = 0
            var list: [Int] = []
            list.reserveCapacity(wanted)
            func append(_ range: ClosedRange<UInt32>, startingAt point: Int) {
                list.removeAll(keepingCapacity: true)
                tables.forEachPreferredMember(fromPoint: point, wanted: wanted) { list.append($0) }
                let replicas = list.map { members[$0] }
                if let last = segments.last, last.replicas == replicas, last.range.upperBound &+ 1 == range.lowerBound {
                    segments[segments.count - 1] = Segment(range: last.range.lowerBound...range.upperBound, replicas: replicas)
                } else {
                    segments.append(Segment(range: range, replicas: replicas))
                }
            }
            while point < tables.count {
                let position = tables.position(ofPoint: point)
                // Positions lower...position belong to the first point at `position`.
                append(lower...position, startingAt: point)
                while point < tables.count && tables.position(ofPoint: point) == position { point += 1 }
                if position == .max { return }
                lower = position + 1
            }
            // Past the last point: wraps to the first point.
            append(lower...UInt32.max, startingAt: 0)
        }
        return segments
    }
}
