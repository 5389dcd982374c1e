/// Partitions of the whole ring: ascending, non-wrapping stretches that
/// cover `0...UInt32.max` exactly once, each with a value (a preference
/// list, a replica set). ``HashRing/segments(replicas:)`` gives one per
/// ring; ``HashRing/diff(to:replicas:)`` and the migration planner compare
/// two of them through ``refine(_:_:)``, the one arc diff of the code base.
public enum RingPartition {
    /// The common refinement of two partitions: the stretches on which both
    /// are constant, ascending, each with the value of `a` and of `b` there.
    public static func refine<A, B>(_ a: [(range: ClosedRange<UInt32>, value: A)],
                                    _ b: [(range: ClosedRange<UInt32>, value: B)]) -> [(range: ClosedRange<UInt32>, a: A, b: B)] {
        var result: [(range: ClosedRange<UInt32>, a: A, b: B)] = []
        result.reserveCapacity(a.count + b.count)
        var i = 0
        var j = 0
        var lower: UInt32 = 0
        while i < a.count && j < b.count {
            let upper = min(a[i].range.upperBound, b[j].range.upperBound)
            result.append((lower...upper, a[i].value, b[j].value))
            if upper == .max { break }
            if a[i].range.upperBound == upper { i += 1 }
            if b[j].range.upperBound == upper { j += 1 }
            lower = upper + 1
        }
        return result
    }
}
