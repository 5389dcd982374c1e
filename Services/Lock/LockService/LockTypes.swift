import Basics
import RingProtocol

/// What the lock table accepts.
public struct LockLimits: Sendable, Equatable {
    /// The longest lease a client may ask for.
    public var maxTTL: Duration
    /// The longest a client may wait in a queue.
    public var maxWait: Duration
    /// The longest lock name and owner id, in UTF-8 bytes.
    public var maxNameBytes: Int
    /// The most waiters queued on one lock.
    public var maxWaitersPerLock: Int
    /// The most locks held or waited for at once.
    public var maxActiveLocks: Int

    public init(maxTTL: Duration = .seconds(3600), maxWait: Duration = .seconds(3600), maxNameBytes: Int = 256,
                maxWaitersPerLock: Int = 10_000, maxActiveLocks: Int = 1_000_000) {
        self.maxTTL = maxTTL
        self.maxWait = maxWait
        self.maxNameBytes = maxNameBytes
        self.maxWaitersPerLock = maxWaitersPerLock
        self.maxActiveLocks = maxActiveLocks
    }
}

/// The lease of a lock's current holder.
public struct LockLease: Sendable, Equatable {
    public let name: String
    public let owner: String
    /// The fencing token: strictly increasing per lock name (it comes from the
    /// service's one counter), never reused.
    public let token: UInt64
    /// The lease length the holder asked for last.
    public internal(set) var ttl: Duration
    /// The longest ttl this lease ever had: a restart restores the lease for
    /// this long, which outlasts whatever the holder may still believe it has.
    public internal(set) var guardTTL: Duration
    /// When the lease runs out unless renewed (monotonic).
    public internal(set) var expiresAt: Duration
    /// The same moment on the wall clock, microseconds since the Unix epoch.
    public internal(set) var expiresWallMicros: Int64

    /// The client's id of the acquire that was granted (0: none, or restored
    /// after a restart); its `cancel` gives the lease back.
    public let attempt: UInt64
    /// The authenticated session (its CURVE public key) that acquired; only
    /// it, or an admin, may renew or release. Nil without CURVE.
    public var session: String? = nil

    /// The lease as the wire carries it.
    public var wire: WireLockGrant {
        WireLockGrant.with {
            $0.name = name
            $0.owner = owner
            $0.token = token
            $0.ttlMillis = UInt64(max(0, ttl.wholeMilliseconds))
            $0.expiresUnixMicros = expiresWallMicros
        }
    }
}

/// A queued acquire, waiting for the lock to pass on.
public struct LockWaiter: Sendable, Equatable {
    /// The server's handle for the parked request.
    public let id: UInt64
    public let owner: String
    /// The lease to grant.
    public let ttl: Duration
    /// When the waiter stops waiting (monotonic); it is never granted after this.
    public let deadline: Duration
    public let deadlineWallMicros: Int64
    /// The client's id of this acquire (0: none), which its `cancel` names.
    public let attempt: UInt64
    /// The authenticated session that asked (nil without CURVE).
    public var session: String? = nil

    public var wire: WireLockWaiter {
        WireLockWaiter.with {
            $0.owner = owner
            $0.waitUntilUnixMicros = deadlineWallMicros
        }
    }
}

/// Something the lock service publishes, after the change is durable.
public struct LockEvent: Sendable, Equatable {
    public enum Kind: String, Sendable {
        /// A lease was granted (at once or to a waiter).
        case acquired
        /// The holder released the lock.
        case released
        /// A lease ran out without a renewal.
        case expired
        /// The holder lost the lock without releasing it; also sent on the
        /// holder's own topic, `owner/<owner id>`.
        case lost
    }

    public let kind: Kind
    public let name: String
    public let owner: String
    public let token: UInt64
    /// The lease's end for `acquired`, microseconds since the Unix epoch; 0 otherwise.
    public let expiresWallMicros: Int64
    /// Why, for `expired` and `lost`, and for a `released` the holder did not
    /// ask for (an acquire cancelled or a grant undelivered).
    public let reason: String

    public var details: WireLockDetails {
        WireLockDetails.with {
            $0.name = name
            $0.owner = owner
            $0.token = token
            $0.expiresUnixMicros = expiresWallMicros
            $0.reason = reason
        }
    }
}

/// What the server must do after a change to the table, in order.
public enum LockEffect: Sendable, Equatable {
    /// Answer the parked acquire `waiter` with this grant.
    case granted(waiter: UInt64, lease: LockLease)
    /// Answer the parked acquire `waiter` with DEADLINE_EXCEEDED: its wait ran out.
    case waitExpired(waiter: UInt64, name: String, holder: String?)
    /// A retry of the same acquire (owner and attempt) took this waiter's place in the queue.
    case superseded(waiter: UInt64)
    /// Publish this event.
    case event(LockEvent)
}

/// What a cancel did.
public enum CancelOutcome: Sendable, Equatable {
    /// The acquire was queued and left the queue; its parked request `waiter`
    /// is to be answered CANCELLED.
    case dequeued(waiter: UInt64)
    /// The acquire had been granted before the client gave up (so it never saw
    /// the grant): the lock was released again.
    case released(token: UInt64)
    /// Nothing to do: the acquire was answered already (expired, refused, or
    /// granted and seen), or never arrived.
    case nothing
}

/// What the store must write after a change to the table.
public struct LockChanges: Sendable, Equatable {
    /// The current state of every lock that changed, sorted by name.
    public var records: [LockRecord]
    /// Locks forgotten (free long enough): their rows are deleted.
    public var forgotten: [String]
    /// The service's token counter: the highest token ever issued.
    public var lastToken: UInt64

    public init(records: [LockRecord], forgotten: [String] = [], lastToken: UInt64) {
        self.records = records
        self.forgotten = forgotten
        self.lastToken = lastToken
    }

    public var isEmpty: Bool { records.isEmpty && forgotten.isEmpty }
}

/// What an acquire did.
public enum AcquireResult: Sendable, Equatable {
    /// Granted now.
    case granted(LockLease)
    /// Queued: a later `.granted` or `.waitExpired` effect answers it.
    case queued(position: Int)
}

/// A refused request: its kind (the shell maps it to a status code) and why.
public struct LockError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        case invalidArgument, failedPrecondition, deadlineExceeded, resourceExhausted, permissionDenied
    }

    public let kind: Kind
    public let message: String

    public var description: String { message }

    static func invalid(_ message: String) -> LockError { LockError(kind: .invalidArgument, message: message) }
    static func precondition(_ message: String) -> LockError { LockError(kind: .failedPrecondition, message: message) }
}

/// A lock's durable state: its latest token and the holder, if any.
public struct LockRecord: Sendable, Equatable {
    public struct Holder: Sendable, Equatable {
        public var owner: String
        public var token: UInt64
        public var ttl: Duration
        public var guardTTL: Duration
        /// For people only: a restart never trusts the wall clock.
        public var expiresWallMicros: Int64
        /// The session the lease is bound to (its CURVE key); nil without CURVE.
        public var session: String?
        /// The client's id of the acquire that was granted (kept by the etcd
        /// store only: a retry of that acquire gets this grant back).
        public var attempt: UInt64 = 0

        public init(owner: String, token: UInt64, ttl: Duration, guardTTL: Duration, expiresWallMicros: Int64, session: String? = nil,
                    attempt: UInt64 = 0) {
            self.owner = owner
            self.token = token
            self.ttl = ttl
            self.guardTTL = guardTTL
            self.expiresWallMicros = expiresWallMicros
            self.session = session
            self.attempt = attempt
        }
    }

    /// A queued acquire, kept by the etcd store only, so that a new leader
    /// keeps the queue's order: its client sends the same acquire again and
    /// takes its place back.
    public struct Waiter: Sendable, Equatable {
        public var owner: String
        public var attempt: UInt64
        public var ttl: Duration
        /// When it stops waiting, on the wall clock.
        public var deadlineWallMicros: Int64
        public var session: String?

        public init(owner: String, attempt: UInt64, ttl: Duration, deadlineWallMicros: Int64, session: String? = nil) {
            self.owner = owner
            self.attempt = attempt
            self.ttl = ttl
            self.deadlineWallMicros = deadlineWallMicros
            self.session = session
        }
    }

    public var name: String
    /// The token of the lock's latest grant (the service's counter is kept
    /// apart, so tokens stay increasing after the row is gone).
    public var lastToken: UInt64
    public var holder: Holder?
    /// The queue in order (written by the etcd store only; see `Waiter`).
    public var waiters: [Waiter] = []

    public init(name: String, lastToken: UInt64, holder: Holder?, waiters: [Waiter] = []) {
        self.name = name
        self.lastToken = lastToken
        self.holder = holder
        self.waiters = waiters
    }
}
