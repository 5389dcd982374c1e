import RingProtocol

/// One lock's state at the lock service: its holder (if any), its FIFO
/// waiters, and the last fencing token it granted.
public struct LockInfo: Sendable, Equatable {
    public struct Holder: Sendable, Equatable {
        public let owner: String
        public let token: UInt64
        public let ttlMillis: UInt64
        public let expiresUnixMicros: Int64
    }

    public struct Waiter: Sendable, Equatable {
        public let owner: String
        /// When it stops waiting, microseconds since the Unix epoch.
        public let waitUntilUnixMicros: Int64
    }

    public let name: String
    /// nil: the lock is free.
    public let holder: Holder?
    public let waiters: [Waiter]
    public let lastToken: UInt64

    init(_ wire: WireLockInfo) {
        name = wire.name
        holder = wire.hasHolder
            ? Holder(owner: wire.holder.owner, token: wire.holder.token, ttlMillis: wire.holder.ttlMillis,
                     expiresUnixMicros: wire.holder.expiresUnixMicros)
            : nil
        waiters = wire.waiters.map { Waiter(owner: $0.owner, waitUntilUnixMicros: $0.waitUntilUnixMicros) }
        lastToken = wire.lastToken
    }
}

/// The lock service's state for the clone pattern of the `lock` topic.
public struct LockSnapshot: Sendable, Equatable {
    public let locks: [LockInfo]
    /// Which run of the lock service answered.
    public let incarnation: UInt64
    public let lastSequence: [String: UInt64]

    init(_ wire: WireLockSnapshotReply) {
        locks = wire.locks.map(LockInfo.init)
        incarnation = wire.incarnation
        lastSequence = wire.lastSeq
    }
}
