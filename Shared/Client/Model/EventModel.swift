import RingProtocol

/// One event of the cluster's stream (DESIGN.md's events): a membership
/// change, a new ring, a migration's progress, a lock's grant or release, a
/// repair pass.
public struct ClusterEvent: Sendable, Equatable {
    /// membership, ring, migration or lock.
    public let topic: String
    /// e.g. member_joined, ring_changed, migration_progress, lock_granted.
    public let type: String
    /// The cluster epoch it happened at; 0 for lock events.
    public let epoch: UInt64
    /// Its sequence number within its topic and publisher incarnation.
    public let sequence: UInt64
    /// The run of the publisher that sent it.
    public let incarnation: UInt64
    public let timeUnixMicros: Int64
    /// The publishing process.
    public let source: String
    public let details: Details?

    public enum Details: Sendable, Equatable {
        case member(MemberChange)
        case ring(RingChange)
        case migration(MigrationProgress)
        case lock(LockChange)
        case repair(RepairReport)
    }

    public struct MemberChange: Sendable, Equatable {
        public let address: String
        public let state: String
        public let weight: Int
        /// Empty for a new member.
        public let previousState: String
    }

    public struct RingChange: Sendable, Equatable {
        public let members: [String]
        public let weights: [Int]
        public let replicas: Int
        public let density: Int
        /// The plan the new ring starts, if any.
        public let plan: MigrationPlan?
    }

    public struct MigrationProgress: Sendable, Equatable {
        /// 0 for a per-arc event.
        public let transferID: UInt64
        public let planVersion: UInt64
        public let from: String
        public let to: String
        /// The arcs of a transfer; 0 for a per-arc event, which names its arc instead.
        public let arcs: Int
        public let arcStart: UInt32
        public let arcEnd: UInt32
        public let keys: UInt64
        public let bytes: UInt64
        public let expectedKeys: UInt64
        public let expectedBytes: UInt64
        /// Bytes per second; 0 when not measured.
        public let rate: UInt64
        public let reason: String
        public let willRetry: Bool
    }

    public struct LockChange: Sendable, Equatable {
        public let name: String
        public let owner: String
        public let token: UInt64
        /// 0 when the event ends a lease.
        public let expiresUnixMicros: Int64
        public let reason: String
    }

    init(topic: String, _ wire: WireEvent) {
        self.topic = topic
        type = wire.type
        epoch = wire.epoch
        sequence = wire.seq
        incarnation = wire.incarnation
        timeUnixMicros = wire.timeUnixMicros
        source = wire.source
        details = wire.details.map(Self.details)
    }

    private static func details(_ wire: WireEvent.OneOf_Details) -> Details {
        switch wire {
        case .member(let member):
            .member(MemberChange(address: member.address, state: member.state, weight: Int(member.weight),
                                 previousState: member.previousState))
        case .ring(let ring):
            .ring(RingChange(members: ring.members, weights: ring.weights.map { Int($0) }, replicas: Int(ring.replicas),
                             density: Int(ring.density), plan: ring.hasPlan ? MigrationPlan(ring.plan) : nil))
        case .migration(let migration):
            .migration(MigrationProgress(
                transferID: migration.transferID, planVersion: migration.planVersion, from: migration.from, to: migration.to,
                arcs: Int(migration.arcs), arcStart: migration.arcStart, arcEnd: migration.arcEnd, keys: migration.keys,
                bytes: migration.bytes, expectedKeys: migration.expectedKeys, expectedBytes: migration.expectedBytes,
                rate: migration.rate, reason: migration.reason, willRetry: migration.willRetry))
        case .lock(let lock):
            .lock(LockChange(name: lock.name, owner: lock.owner, token: lock.token, expiresUnixMicros: lock.expiresUnixMicros,
                             reason: lock.reason))
        case .repair(let repair):
            .repair(RepairReport(repair))
        }
    }
}

/// What one anti-entropy pass of a node compared and repaired.
public struct RepairReport: Sendable, Equatable {
    /// The node that ran the pass (empty in a direct answer: the node asked).
    public let node: String
    public let arcsCompared: Int
    public let arcsDiffering: Int
    /// Rows sent to peers that were behind, and rows taken from them.
    public let rowsPushed: UInt64
    public let rowsPulled: UInt64
    public let durationMicros: UInt64
    /// Why the pass ran (scheduled, requested, catch-up); empty in a direct answer.
    public let reason: String

    init(_ wire: WireRepairDetails) {
        node = wire.node
        arcsCompared = Int(wire.arcsCompared)
        arcsDiffering = Int(wire.arcsDiffering)
        rowsPushed = wire.rowsPushed
        rowsPulled = wire.rowsPulled
        durationMicros = wire.durationMicros
        reason = wire.reason
    }

    /// A node's direct answer to Repair, which does not name the node.
    init(node: String, _ wire: WireRepairReply) {
        self.init(WireRepairDetails.with {
            $0.node = node
            $0.arcsCompared = wire.arcsCompared
            $0.arcsDiffering = wire.arcsDiffering
            $0.rowsPushed = wire.rowsPushed
            $0.rowsPulled = wire.rowsPulled
            $0.durationMicros = wire.durationMicros
        })
    }
}
