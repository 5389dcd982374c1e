import RPC
import Ring
import RingProtocol

/// Which storage nodes to ask about a key, best first: a pure value built from
/// the ring placement serves (or from a static node list), so the routing
/// decision is testable without sockets.
///
/// Any node coordinates any request, but a replica of the key saves a hop, so
/// the candidates are the key's nodes in ring order (its preference list, then
/// the members after it). Nodes that are known to be unreachable, by this
/// client or suspect or down by placement, move to the end of the list,
/// keeping their relative order.
public struct RingRouter: Sendable {
    /// The ring the candidates come from.
    public let ring: HashRing
    /// The cluster epoch of that ring; 0 for a ring built from a static node list.
    public let epoch: UInt64
    /// The cluster's replication factor N.
    public let replicas: Int
    /// Members placement reports as suspect or down: tried only after the others.
    public let unhealthyMembers: Set<String>
    /// Whether the ring came from placement (rather than a static node list).
    public let isFromPlacement: Bool

    /// The ring of a `GetRing` reply. Throws when it has no members or a malformed one.
    public init(ringInfo: WireRingInfo, epoch: UInt64) throws(RingError) {
        ring = try HashRing(ringInfo: ringInfo)
        self.epoch = epoch
        replicas = ringInfo.replicationFactor
        unhealthyMembers = Set(ringInfo.members.filter { $0.state == .down || $0.state == .suspect }.map(\.address))
        isFromPlacement = true
    }

    /// A stand-in ring over a static list of `host:port` node addresses, for when
    /// placement cannot be reached. Malformed and duplicate addresses are skipped;
    /// throws ``RingError/emptyMembership`` when none is left.
    public init(nodes: [String], replicas: Int = 3) throws(RingError) {
        var seen: Set<String> = []
        var members: [RingMember] = []
        for node in nodes {
            let address = Endpoint.address(of: node)
            guard seen.insert(address).inserted, let member = try? RingMember(address: address) else { continue }
            members.append(member)
        }
        ring = try HashRing(members: members)
        epoch = 0
        self.replicas = max(1, replicas)
        unhealthyMembers = []
        isFromPlacement = false
    }

    /// The node addresses (`host:port`) to try for `key`, best first, at most
    /// `limit` of them: the key's preference list and the members after it on
    /// the ring, with `unreachable` and ``unhealthyMembers`` moved to the end.
    ///
    /// Throws ``RingError/emptyKey`` for an empty key.
    public func candidates(forKey key: some Collection<UInt8>, unreachable: Set<String> = [], limit: Int = 8) throws(RingError) -> [String] {
        let position = try HashRing.position(forKey: key)
        let wanted = min(ring.members.count, max(replicas, limit))
        var ordered = try ring.preferenceList(forPosition: position, replicas: wanted)
        let isHealthy = { (member: RingMember) in
            !unreachable.contains(member.address) && !unhealthyMembers.contains(member.address)
        }
        if !ordered.contains(where: isHealthy) && wanted < ring.members.count {
            // Every nearby node is out: look around the whole ring for a healthy one.
            ordered = try ring.preferenceList(forPosition: position, replicas: ring.members.count)
        }
        var healthy: [String] = []
        var unhealthy: [String] = []
        for member in ordered {
            if isHealthy(member) { healthy.append(member.address) } else { unhealthy.append(member.address) }
        }
        return Array((healthy + unhealthy).prefix(max(1, limit)))
    }
}
