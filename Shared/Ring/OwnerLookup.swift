/// A view of a ``HashRing`` for placing many keys in a loop (a bulk listing):
/// no allocation, retain or bounds check per key. Valid only inside
/// ``HashRing/withOwnerLookup(_:)``.
public struct OwnerLookup {
    let tables: RingTables

    /// Calls `body` with the index into ``HashRing/members`` of each of the
    /// first `wanted` distinct members clockwise from `key`'s position: its
    /// preference list, primary first. `key` must not be empty and `wanted`
    /// must be 1...members.count.
    public func forEachOwner(ofKey key: UnsafeRawBufferPointer, wanted: Int, _ body: (Int) -> Void) {
        let position = KetamaHash.digestWords(key).0
        tables.forEachPreferredMember(fromPoint: tables.firstPoint(atOrAfter: position), wanted: wanted, body)
    }
}

extension HashRing {
    /// Runs `body` with a lookup over this ring's tables.
    public func withOwnerLookup<Result>(_ body: (OwnerLookup) throws -> Result) rethrows -> Result {
        try withTables { try body(OwnerLookup(tables: $0)) }
    }
}
