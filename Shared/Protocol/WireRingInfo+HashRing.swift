import Ring

extension HashRing {
    /// The ring placement describes: its members with their weights (0 counts
    /// as 1) at its density (0: Ketama's). The one conversion from the wire's
    /// ring to the ring that routes, for clients and services alike.
    ///
    /// Throws ``RingError/emptyMembership`` for a ring without members and the
    /// member's error for a malformed address.
    public init(ringInfo: WireRingInfo) throws(RingError) {
        var members: [RingMember] = []
        members.reserveCapacity(ringInfo.members.count)
        for member in ringInfo.members {
            members.append(try RingMember(address: member.address, weight: max(1, Int(member.weight))))
        }
        try self.init(members: members, density: ringInfo.density == 0 ? HashRing.ketamaDensity : Int(ringInfo.density))
    }
}

extension WireRingInfo {
    /// The cluster's replication factor N; 0 (not set) means the design's default, 3.
    public var replicationFactor: Int { replicas == 0 ? 3 : Int(replicas) }

    /// The W a request that sets none waits for, at `n` replicas: the
    /// cluster's (placement's `--default-w`), or a majority of N when placement
    /// sets none; never more than `n`.
    public func defaultWriteQuorum(replicas n: Int) -> Int { Self.quorum(writeQuorum, n: n, of: replicationFactor) }

    /// The R a request that sets none waits for; see `defaultWriteQuorum`.
    public func defaultReadQuorum(replicas n: Int) -> Int { Self.quorum(readQuorum, n: n, of: replicationFactor) }

    private static func quorum(_ set: UInt32, n: Int, of cluster: Int) -> Int {
        let wanted = set == 0 ? cluster / 2 + 1 : Int(set)
        return max(1, min(wanted, n))
    }
}
