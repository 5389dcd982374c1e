/// A view of a ``HashRing`` for placing many keys in a loop (a bulk listing):
/// no allocation, retain or bounds check per key. Valid only inside
/// ``HashRing/withOwnerLookup(_:)``.
public struct OwnerLookup {
    let tables: RingTables

    /// Writes the index into ``HashRing/members`` of each of the first
    /// `wanted` distinct members clockwise from `key`'s position (its
    /// preference list, primary first) to the start of `owners`, and returns
    /// `wanted`. One call per key and no closure per owner: the walk stays
    /// inside this module, where it is specialised. `key` must not be empty,
    /// `wanted` must be 1...members.count and `owners` at least that long.
    public func owners(ofKey key: UnsafeRawBufferPointer, wanted: Int, into owners: UnsafeMutableBufferPointer<Int>) -> Int {
        let position = KetamaHash.digestWords(key).0
        var count = 0
        tables.forEachPreferredMember(fromPoint: tables.firstPoint(atOrAfter: position), wanted: wanted) { member in
            owners[count] = member
            count &+= 1
        }
        return count
    }
}

extension HashRing {
    /// Runs `body` with a lookup over this ring's tables.
    public func withOwnerLookup<Result>(_ body: (OwnerLookup) throws -> Result) rethrows -> Result {
        try withTables { try body(OwnerLookup(tables: $0)) }
    }
}
