/// Unsafe views of a ``HashRing``'s lookup tables, valid only inside `HashRing.withTables`.
///
/// Point lookup and the clockwise walk live here so that a loop over many keys
/// (a bulk listing, a diff) pays for neither array retains nor bounds checks per key.
struct RingTables {
    /// The points, ascending, each `position << 32 | member index`.
    let points: UnsafeBufferPointer<UInt64>
    /// For each bucket of positions, the first point at or after it (see `HashRing.bucketStarts`).
    let bucketStarts: UnsafeBufferPointer<UInt32>
    /// A position's bucket is `position >> bucketShift`.
    let bucketShift: UInt32
    /// The number of members; member indices are below it.
    let memberCount: Int

    /// The number of points.
    var count: Int { points.count }

    /// The ring position of point `index`.
    func position(ofPoint index: Int) -> UInt32 {
        UInt32(truncatingIfNeeded: points[index] >> 32)
    }

    /// The member index of point `index`.
    func member(ofPoint index: Int) -> Int {
        Int(UInt32(truncatingIfNeeded: points[index]))
    }

    /// The index of the first point at or after `position`, wrapping to 0 past the last point.
    func firstPoint(atOrAfter position: UInt32) -> Int {
        let bucket = Int(position >> bucketShift)
        // The first point with a tagged value >= position << 32 is the first point at or
        // after `position`; it lies in the bucket's range or is the next bucket's first.
        let key = UInt64(position) << 32
        var base = Int(bucketStarts[bucket])
        var length = Int(bucketStarts[bucket &+ 1]) - base
        while length > 1 {
            let half = length / 2
            base = points[base &+ half] < key ? base &+ half : base
            length -= half
        }
        let index = length == 1 && points[base] < key ? base &+ 1 : base
        return index == points.count ? 0 : index
    }

    /// Calls `body` with the member indices of the preference list that starts at point `start`.
    ///
    /// Walks clockwise collecting distinct members until `wanted` (at most the member count)
    /// are found; since every member has points, one lap is always enough.
    func forEachPreferredMember(fromPoint start: Int, wanted: Int, _ body: (Int) -> Void) {
        var found = 0
        var point = start
        if wanted <= 16 {
            var seen: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
            withUnsafeMutableBytes(of: &seen) { raw in
                let slots = raw.bindMemory(to: UInt32.self)
                while found < wanted {
                    let member = UInt32(truncatingIfNeeded: points[point])
                    var isNew = true
                    for slot in 0..<found where slots[slot] == member {
                        isNew = false
                        break
                    }
                    if isNew {
                        slots[found] = member
                        found += 1
                        body(Int(member))
                    }
                    point = point &+ 1 == points.count ? 0 : point &+ 1
                }
            }
        } else {
            var seen = [Bool](repeating: false, count: memberCount)
            while found < wanted {
                let member = member(ofPoint: point)
                if !seen[member] {
                    seen[member] = true
                    found += 1
                    body(member)
                }
                point = point &+ 1 == points.count ? 0 : point &+ 1
            }
        }
    }
}
