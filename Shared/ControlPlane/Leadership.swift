import Basics
import Etcd
import Foundation
import Logging
import Synchronization

/// One term of leadership: the etcd lease this replica holds and the create
/// revision of the election key it wrote. Every change the leader makes is
/// an etcd transaction guarded by `guards`, so a replica that lost the key
/// (its lease ran out, it was partitioned away, an operator deleted the key)
/// can never write again, whatever it believes.
public struct LeaderTerm: Sendable, Equatable {
    /// The election key.
    public let key: String
    /// The lease the key is attached to.
    public let lease: Int64
    /// The revision at which this replica created the key: unique per term.
    public let createRevision: Int64

    public init(key: String, lease: Int64, createRevision: Int64) {
        self.key = key
        self.lease = lease
        self.createRevision = createRevision
    }

    /// The compares that hold only while this term lasts.
    public var guards: [Compare] {
        [.createRevision(key, .equal, createRevision), .lease(key, .equal, lease)]
    }
}

/// What the election tells the service (on the thread it posts to).
public enum LeadershipChange: Sendable, Equatable {
    /// This replica leads, for `term`.
    case elected(LeaderTerm)
    /// This replica no longer leads (or never did): why.
    case deposed(String)
    /// Another replica leads: its request endpoint ("" while nobody leads).
    case follower(leader: String)
}

/// Leader election among a service's replicas through an etcd lease, the
/// way etcd's own election recipe works, on a thread of its own (the etcd
/// client blocks).
///
/// Campaign: grant a lease, then one transaction "if the election key does
/// not exist, create it with my identity attached to my lease, else read
/// it". The first replica to get there leads (first come, first served; the
/// others poll the key and campaign again the moment it is gone). The leader
/// renews its lease every third of the TTL and reads the key back each time.
///
/// The leader steps down by itself when it could not renew within the TTL
/// (counted from when it sent its last successful renewal, which is before
/// etcd started counting), so it stops before etcd can let another replica
/// win: its calls to etcd end by that time, however long the client's
/// timeout (members that drop packets would each take all of it). Its
/// writes are guarded anyway (`LeaderTerm.guards`).
public final class Leadership: Sendable {
    /// What this replica writes in the election key: what followers tell clients.
    public struct Identity: Sendable, Equatable, Codable {
        /// The request endpoint clients reach this replica at.
        public var endpoint: String
        public var pid: Int32
        public var host: String

        public init(endpoint: String, pid: Int32 = getpid(), host: String = ProcessInfo.processInfo.hostName) {
            self.endpoint = endpoint
            self.pid = pid
            self.host = host
        }
    }

    private struct State {
        var stopped = false
        /// Set by `resign(_:)`: give up this term at the next chance.
        var resign: LeaderTerm?
    }

    public let key: String
    public let identity: Identity
    /// The lease TTL asked for, in seconds.
    public let ttl: Int64
    private let client: EtcdClient
    private let state = Mutex(State())
    private let wake = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)
    private let started = Mutex(false)
    private let report: @Sendable (LeadershipChange) -> Void
    private let logger: Logger

    /// An election on `key` (e.g. `/ringstore/lock/leader`); `report` is
    /// called on the election's thread with every change of role.
    public init(client: EtcdClient, key: String, identity: Identity, ttl: Int64, logger: Logger,
                report: @escaping @Sendable (LeadershipChange) -> Void) {
        self.client = client
        self.key = key
        self.identity = identity
        self.ttl = max(1, ttl)
        self.logger = logger
        self.report = report
    }

    /// Starts campaigning.
    public func start() {
        started.withLock { $0 = true }
        let thread = Thread { [self] in
            run()
            finished.signal()
        }
        thread.name = "leader-election"
        thread.start()
    }

    /// Gives up `term` (after a write that failed or whose outcome is
    /// unknown, the leader's state cannot be trusted): the lease is revoked,
    /// so the key goes at once, and this replica campaigns again.
    public func resign(_ term: LeaderTerm) {
        state.withLock { $0.resign = term }
        wake.signal()
    }

    /// Stops the election; a leader revokes its lease so that another replica
    /// takes over at once instead of after the TTL. Waits (a few seconds at
    /// most) until that is done.
    public func stop() {
        state.withLock { $0.stopped = true }
        wake.signal()
        if started.withLock({ $0 }) { _ = finished.wait(timeout: .now() + .seconds(3)) }
    }

    /// Who leads now, read from etcd: the identity in the election key.
    public static func leader(client: EtcdClient, key: String) throws -> Identity? {
        guard let kv = try client.get(key: key).kv else { return nil }
        return try? JSONDecoder().decode(Identity.self, from: Data(kv.value))
    }

    // MARK: The election's thread

    private var pollInterval: Duration { min(.milliseconds(250), .seconds(ttl) / 4) }
    private var renewInterval: Duration { .seconds(ttl) / 3 }

    private func run() {
        let clock = ContinuousClock()
        var lease: Int64?
        /// Until when the lease is certainly alive at etcd (counted from the send of the last renewal).
        var validUntil = clock.now
        var nextRenewal = clock.now
        var term: LeaderTerm?
        var lastReported: LeadershipChange?
        let value: [UInt8] = (try? Array(JSONEncoder().encode(identity))) ?? Array(identity.endpoint.utf8)

        func tell(_ change: LeadershipChange) {
            guard change != lastReported else { return }
            lastReported = change
            report(change)
        }
        func stepDown(_ reason: String, revoke: Bool) {
            // The service hears first: revoking may take a while.
            if term != nil {
                logger.warning("leader.stepped_down", metadata: ["leader.key": "\(key)", "leader.reason": "\(reason)"])
            }
            term = nil
            tell(.deposed(reason))
            // Revoking frees the key at once; while etcd itself is electing a
            // raft leader it fails, so try until the lease would have run out
            // anyway (otherwise the key lives on for another whole TTL).
            while revoke, let lease, clock.now < validUntil {
                do {
                    try client.revoke(lease)
                    break
                } catch let error as EtcdError where error.isLeaseNotFound {
                    break
                } catch {
                    _ = wake.wait(timeout: .now() + .milliseconds(100))
                }
            }
            lease = nil
        }

        while true {
            let (stopped, resign) = state.withLock { state in
                defer { state.resign = nil }
                return (state.stopped, state.resign)
            }
            if stopped {
                if let lease { _ = try? client.revoke(lease) }
                if term != nil { logger.notice("leader.resigned", metadata: ["leader.key": "\(key)", "leader.reason": "stopping"]) }
                return
            }
            if let resign, resign == term {
                stepDown("resigned: a write failed or its outcome is unknown", revoke: true)
            }
            if term != nil, clock.now >= validUntil {
                stepDown("could not renew the leader lease within \(ttl) s", revoke: false)
            }
            do {
                // Keep this replica's lease alive, leader or not.
                if let current = lease, clock.now >= nextRenewal {
                    let sent = clock.now
                    let renewed = try client.keepAliveOnce(current, before: term != nil ? validUntil : nil)
                    if renewed.ttl <= 0 {
                        stepDown("the leader lease expired", revoke: false)
                    } else {
                        validUntil = sent + .seconds(renewed.ttl)
                        nextRenewal = sent + renewInterval
                    }
                }
                if lease == nil {
                    let sent = clock.now
                    let granted = try client.grant(ttl: ttl)
                    lease = granted.id
                    validUntil = sent + .seconds(granted.ttl)
                    nextRenewal = sent + renewInterval
                }
                guard let lease else { continue }
                if let current = term {
                    // Still ours? (An operator may have deleted it, or a partition healed after it expired.)
                    let kv = try client.get(key: key, before: validUntil).kv
                    if kv?.createRevision != current.createRevision || kv?.lease != lease {
                        stepDown("the election key no longer holds this replica's lease", revoke: true)
                    }
                } else {
                    let result = try client.txn(compare: [.createRevision(key, .equal, 0)],
                                                success: [.put(key: key, value: value, lease: lease)],
                                                failure: [.get(key: key)])
                    if result.succeeded {
                        let won = LeaderTerm(key: key, lease: lease, createRevision: result.revision)
                        term = won
                        logger.notice("leader.elected", metadata: ["leader.key": "\(key)", "leader.lease": "\(lease)",
                                                                   "leader.revision": "\(result.revision)"])
                        tell(.elected(won))
                    } else if case .range(let range)? = result.responses.first, let kv = range.kvs.first {
                        if kv.lease == lease {
                            // This replica won with a campaign whose answer was lost.
                            let won = LeaderTerm(key: key, lease: lease, createRevision: kv.createRevision)
                            term = won
                            tell(.elected(won))
                        } else {
                            let holder = try? JSONDecoder().decode(Identity.self, from: Data(kv.value))
                            tell(.follower(leader: holder?.endpoint ?? ""))
                        }
                    }
                }
            } catch let error as EtcdError where error.isLeaseNotFound {
                lease = nil
                if term != nil { stepDown("the leader lease is gone: \(error)", revoke: false) }
            } catch {
                logger.warning("leader.etcd.failed", metadata: ["leader.key": "\(key)", "leader.error": "\(error)"])
                if term == nil { tell(.follower(leader: "")) }
                // A leader looks again no later than the end of its lease.
                let pause = term != nil ? min(.milliseconds(200), max(.zero, validUntil - clock.now)) : .milliseconds(200)
                _ = wake.wait(timeout: .now() + .microseconds(Int(pause.wholeMicroseconds)))
                continue
            }
            // Sleep until the next renewal (a leader) or the next look at the key (a follower).
            let pause = term != nil ? min(renewInterval, max(.zero, nextRenewal - clock.now)) : pollInterval
            _ = wake.wait(timeout: .now() + .microseconds(Int(max(1_000, pause.wholeMicroseconds))))
        }
    }
}
