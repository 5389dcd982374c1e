import Foundation
import RPC
import ServiceHost

/// How the lock service runs.
public struct LockOptions: Sendable {
    /// CURVE on every socket (nil: off).
    public var security: SecuritySettings?
    /// The ROUTER endpoint for requests.
    public var listen: String
    /// The PUB endpoint for lock events.
    public var publish: String
    /// Where the locks' tokens and holders are persisted.
    public var dataDirectory: URL
    /// Longest lease, longest wait, name sizes, queue bounds.
    public var limits: LockLimits
    /// How long a free lock with no waiters is remembered (its name, last
    /// token and row in the store) before it is forgotten.
    public var forgetAfter: Duration
    /// The operations port (probes, metrics); nil: none.
    public var operations: OperationsSettings?
    /// Where the state lives: embedded (SQLite under `dataDirectory`) or etcd (replicas elect a leader).
    public var replication: ReplicationSettings = .embedded

    public init(listen: String = "tcp://127.0.0.1:7410", publish: String = "tcp://127.0.0.1:7411",
                dataDirectory: URL = URL(fileURLWithPath: "lock-data"), limits: LockLimits = LockLimits(),
                forgetAfter: Duration = .seconds(3600)) {
        self.listen = listen
        self.publish = publish
        self.dataDirectory = dataDirectory
        self.limits = limits
        self.forgetAfter = forgetAfter
    }
}
