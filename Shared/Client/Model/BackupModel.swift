import RingProtocol

/// A consistent copy of one storage node's database, made for a backup and
/// kept on the node until released (or for an hour).
public struct NodeSnapshot: Sendable, Equatable {
    /// The node, `host:port`.
    public let node: String
    /// Names the copy in chunk reads and the release.
    public let id: String
    public let sizeBytes: Int
    /// SHA-256 of the file, 64 lowercase hex digits.
    public let sha256: String
    /// Rows holding a value, and tombstones, in the copy.
    public let liveKeys: Int
    public let tombstones: Int
    /// The ring epoch the node followed when the copy was complete.
    public let ringEpoch: UInt64
    /// When it was complete, microseconds since the Unix epoch.
    public let completedUnixMicros: Int64
    /// The largest chunk the node serves in one call.
    public let maxChunkBytes: Int

    init(node: String, _ wire: WireBackupReply) {
        self.node = node
        id = wire.id
        sizeBytes = Int(clamping: wire.sizeBytes)
        sha256 = wire.sha256
        liveKeys = Int(clamping: wire.liveKeys)
        tombstones = Int(clamping: wire.tombstones)
        ringEpoch = wire.ringEpoch
        completedUnixMicros = wire.completedUnixMicros
        maxChunkBytes = Int(wire.maxChunkBytes)
    }
}

/// Placement's state as a backup keeps it: every member, the epochs, the ring
/// with its settings, and the whole export as JSON (lossless: Protocol
/// Buffers' JSON mapping of the reply).
public struct PlacementExport: Sendable {
    /// The cluster epoch.
    public let epoch: UInt64
    public let ringEpoch: UInt64
    /// Every member, leaving ones included.
    public let members: [Member]
    /// The ring with N, W, R, the density and the migration plan.
    public let ring: ClusterRing
    public let json: String

    init(_ wire: WirePlacementExportReply) throws(RingstoreError) {
        epoch = wire.state.epoch
        ringEpoch = wire.state.ringEpoch
        members = wire.state.members.map(Member.init)
        ring = ClusterRing(epoch: wire.state.epoch, wire.ring)
        do {
            json = try wire.jsonString()
        } catch {
            throw .internalError("cannot encode placement's state as JSON: \(error)")
        }
    }
}

/// The lock service's state as a backup keeps it: every lock name it
/// remembers, its token counter, and the whole export as JSON.
public struct LockExport: Sendable {
    public let locks: [LockInfo]
    /// The highest token the service ever issued.
    public let lastToken: UInt64
    public let json: String

    init(_ wire: WireLockExportReply) throws(RingstoreError) {
        locks = wire.locks.map(LockInfo.init)
        lastToken = wire.lastToken
        do {
            json = try wire.jsonString()
        } catch {
            throw .internalError("cannot encode the lock service's state as JSON: \(error)")
        }
    }
}
