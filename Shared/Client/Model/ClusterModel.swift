import Ring
import RingProtocol

/// A member's state as placement sees it.
public enum MemberState: String, Sendable, CaseIterable {
    case up, suspect, down, leaving, unknown

    init(_ wire: WireMemberState) {
        self = MemberState(rawValue: wire.name) ?? .unknown
    }
}

/// One member of the cluster.
public struct Member: Sendable, Equatable {
    /// `host:port`, its identity on the ring.
    public let address: String
    public let weight: Int
    public let state: MemberState
    /// The cluster epoch of its last state change.
    public let stateEpoch: UInt64
    /// When it entered `state`, microseconds since the Unix epoch.
    public let stateSinceUnixMicros: Int64
    /// Whether it caught up (hints and a first anti-entropy pass) since it started.
    public let caughtUp: Bool

    init(_ wire: WireMember) {
        address = wire.address
        weight = Int(wire.weight)
        state = MemberState(wire.state)
        stateEpoch = wire.stateEpoch
        stateSinceUnixMicros = wire.stateSinceUnixMicros
        caughtUp = wire.caughtUp
    }
}

/// The membership at one cluster epoch.
public struct MemberList: Sendable, Equatable {
    public let epoch: UInt64
    public let members: [Member]
}

/// One transfer of a migration plan: `from` sends `arcs` to `to`.
public struct Transfer: Sendable, Equatable {
    public let id: UInt64
    public let from: String
    public let to: String
    public let arcs: [RingArc]
    public let keys: UInt64
    public let expectedKeys: UInt64
    public let bytes: UInt64
    public let expectedBytes: UInt64
    /// Bytes per second over the last progress report; 0 before the first.
    public let rate: UInt64
    /// Whether the sender started (0: waiting for its turn).
    public let startedUnixMicros: Int64
    public let done: Bool
    /// Why the last attempt failed; empty when it did not.
    public let lastError: String

    init(_ wire: WireTransfer) {
        id = wire.id
        from = wire.from
        to = wire.to
        arcs = wire.arcs.map { RingArc(first: $0.first, last: $0.last) }
        keys = wire.keys
        expectedKeys = wire.expectedKeys
        bytes = wire.bytes
        expectedBytes = wire.expectedBytes
        rate = wire.rate
        startedUnixMicros = wire.startedUnixMicros
        done = wire.done
        lastError = wire.lastError
    }
}

/// The arcs moving between replicas after a ring change, and who sends them.
public struct MigrationPlan: Sendable, Equatable {
    public let version: UInt64
    public let ringEpoch: UInt64
    /// The arcs whose replicas change, each once.
    public let pendingArcs: [RingArc]
    public let transfers: [Transfer]

    init(_ wire: WireMigrationPlan) {
        version = wire.version
        ringEpoch = wire.ringEpoch
        pendingArcs = wire.pending.map { RingArc(first: $0.arc.first, last: $0.arc.last) }
        transfers = wire.transfers.map(Transfer.init)
    }

    /// Whether any arc is still moving.
    public var isSettled: Bool { pendingArcs.isEmpty }
}

/// The ring placement serves: members with their states, N, and the plan of
/// what is moving.
public struct ClusterRing: Sendable {
    /// The cluster epoch of the answer.
    public let epoch: UInt64
    /// The epoch of the last change to the ring itself.
    public let ringEpoch: UInt64
    public let members: [Member]
    /// The cluster's replication factor N.
    public let replicas: Int
    /// The W and R a request that sets none waits for (placement's settings).
    public let writeQuorum: Int
    public let readQuorum: Int
    public let density: Int
    public let plan: MigrationPlan
    /// The ring that routes keys; nil while there are no members.
    public let ring: HashRing?

    init(epoch: UInt64, _ wire: WireRingInfo) {
        self.epoch = epoch
        ringEpoch = wire.ringEpoch
        members = wire.members.map(Member.init)
        replicas = wire.replicationFactor
        writeQuorum = wire.defaultWriteQuorum(replicas: wire.replicationFactor)
        readQuorum = wire.defaultReadQuorum(replicas: wire.replicationFactor)
        density = wire.density == 0 ? HashRing.ketamaDensity : Int(wire.density)
        plan = MigrationPlan(wire.plan)
        ring = try? HashRing(ringInfo: wire)
    }

    /// How many arcs of the ring (stretches with one preference list) each member replicates.
    public var arcsPerMember: [String: Int] {
        guard let ring, let segments = try? ring.segments(replicas: replicas) else { return [:] }
        var counts: [String: Int] = [:]
        for segment in segments {
            for member in segment.replicas { counts[member.address, default: 0] += 1 }
        }
        return counts
    }
}

/// Placement's state at one moment, for the clone pattern: subscribe to the
/// events, take a snapshot, then apply only events newer than `lastSequence`.
public struct ClusterSnapshot: Sendable {
    public let epoch: UInt64
    public let members: [Member]
    public let ring: ClusterRing
    /// Which run of placement answered; a new one means it restarted.
    public let incarnation: UInt64
    /// The last event sequence number of each topic the snapshot includes.
    public let lastSequence: [String: UInt64]

    init(_ wire: WireSnapshotReply) {
        epoch = wire.epoch
        members = wire.members.map(Member.init)
        ring = ClusterRing(epoch: wire.epoch, wire.ring)
        incarnation = wire.incarnation
        lastSequence = wire.lastSeq
    }
}
