import Foundation
import RPC
import ServiceHost
import StorageEngine

/// How a storage node runs and how it is known on the ring.
public struct StorageNodeOptions: Sendable {
    /// CURVE on every socket (nil: off).
    public var security: SecuritySettings?
    /// The ROUTER endpoint for requests.
    public var listen: String
    /// The node's identity on the ring, `host:port`; by default the listen address.
    public var advertise: String?
    /// The placement service's request endpoints (one per replica when it is
    /// replicated) and event endpoints (the node listens on every one: only the
    /// leader publishes).
    public var placement: [String]
    public var placementEvents: [String]
    /// The node's weight on the ring.
    public var weight: Int
    /// How often the node heartbeats to placement.
    public var heartbeatInterval: Duration
    /// Where the node's database lives.
    public var dataDirectory: URL
    /// `.full` fsyncs every group commit (durable on power loss); `.normal`
    /// survives a process crash only. Full is the default: with group commit it
    /// costs one fsync per reactor turn, not per write.
    public var sync: SyncMode
    /// Largest key and value accepted (INVALID_ARGUMENT beyond).
    public var maxKeyBytes: Int
    public var maxValueBytes: Int
    /// How long a coordinator waits for one replica.
    public var replicaTimeout: Duration
    /// Tombstones older than this are purged. It must outlast any replica's
    /// absence (hints, repair), or a purged delete could come back.
    public var tombstoneGrace: Duration
    /// Migration: records per batch, and the bytes per second each transfer
    /// may send (0: unlimited).
    public var migrationBatchKeys: Int = 512
    public var migrationRateLimit: Int = 0
    /// Anti-entropy: time between periodic passes (zero: none; requested and
    /// catch-up passes still run), and the bytes per second of repaired rows
    /// (0: unlimited).
    public var antiEntropyInterval: Duration = .seconds(60)
    public var antiEntropyRateLimit: Int = 4_000_000
    /// How far ahead of this node's wall clock a timestamp from a peer or a
    /// client may be; one further ahead is refused (and logged), so it can
    /// neither drag the node's clock forward nor pin a key with a future version.
    public var maxClockDrift: Duration = .seconds(5)
    /// The RESP (Redis protocol) front door: `host:port` to listen on (nil:
    /// none), and the password file AUTH checks (nil: no AUTH).
    public var respListen: String?
    public var respPasswords: URL?
    /// The operations port (probes, metrics); nil: none.
    public var operations: OperationsSettings?

    /// `placement` is a comma-separated list (`a:7400,b:7402`); `placementEvents`
    /// too, by default each placement endpoint's port plus one.
    public init(listen: String = "tcp://127.0.0.1:7501", advertise: String? = nil,
                placement: String = "tcp://127.0.0.1:7400", placementEvents: String? = nil,
                weight: Int = 1, heartbeatInterval: Duration = .seconds(1),
                dataDirectory: URL = URL(fileURLWithPath: "node-data"), sync: SyncMode = .full,
                maxKeyBytes: Int = 1024, maxValueBytes: Int = 1 << 20,
                replicaTimeout: Duration = .seconds(1), tombstoneGrace: Duration = .seconds(10 * 24 * 3600)) {
        self.listen = listen
        self.advertise = advertise
        self.placement = Endpoint.list(placement)
        self.placementEvents = placementEvents.map(Endpoint.list) ?? self.placement.map(Endpoint.events(of:))
        self.weight = weight
        self.heartbeatInterval = heartbeatInterval
        self.dataDirectory = dataDirectory
        self.sync = sync
        self.maxKeyBytes = maxKeyBytes
        self.maxValueBytes = maxValueBytes
        self.replicaTimeout = replicaTimeout
        self.tombstoneGrace = tombstoneGrace
    }
}
