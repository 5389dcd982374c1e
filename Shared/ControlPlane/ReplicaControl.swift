import CoreMetrics
import Etcd
import Foundation
import Logging
import RPC
import ServiceHost

/// The role of one replica of a control-plane service, on its reactor
/// thread: the leader serves every request; a follower refuses all but
/// Health and Echo with UNAVAILABLE naming the leader (`RPCServer.gate`).
///
/// With the embedded store there is no election: the one process leads for
/// good. With etcd, `Leadership` campaigns on `<prefix>/<service>/leader`
/// and this object hands its reports to the service on the reactor thread:
/// `onElected` (load the state from etcd, start working) and `onDeposed`
/// (drop the state, fail what waits). A leader whose write fails calls
/// `resign`, and becomes a follower at once.
public final class ReplicaControl {
    public enum Role: Sendable, Equatable {
        case leader(LeaderTerm?)
        case follower(leader: String)
    }

    /// What the replica is now.
    public private(set) var role: Role {
        didSet { leaderGauge.record(isLeader ? 1 : 0) }
    }
    /// The etcd client of the service's state; nil with the embedded store.
    public let etcd: EtcdClient?
    /// The key prefix of this service's state, `<prefix>/<service>`.
    public let keyPrefix: String
    /// Called on the reactor thread when this replica becomes leader.
    public var onElected: ((LeaderTerm) -> Void)?
    /// Called on the reactor thread when it stops leading.
    public var onDeposed: ((String) -> Void)?

    private var leadership: Leadership?
    private let service: String
    /// `ringstore_leader{service=...}`: 1 while this replica leads, else 0.
    private let leaderGauge: Gauge
    private var logger: Logger

    /// `rpc`'s gate refuses for followers; `exempt` methods (Health, Echo) are answered by every replica.
    public init(reactor: Reactor, rpc: RPCServer, service: String, settings: ReplicationSettings, exempt: Set<String>) throws {
        self.service = service
        logger = reactor.logger
        leaderGauge = Gauge(label: "ringstore_leader", dimensions: [("service", service)])
        keyPrefix = settings.prefix + "/" + service
        guard let endpoints = settings.etcd else {
            etcd = nil
            leadership = nil
            role = .leader(nil)
            leaderGauge.record(1)
            return
        }
        let ttl = max(1, settings.leaderTTL)
        let client = try EtcdClient(endpoints: endpoints, timeout: .milliseconds(max(1_000, ttl * 1_000 / 2)))
        etcd = client
        role = .follower(leader: "")
        leaderGauge.record(0)
        leadership = nil
        let bound = ReactorBound(self, on: reactor)
        leadership = Leadership(client: client, key: keyPrefix + "/leader", identity: .init(endpoint: settings.advertise ?? rpc.endpoint),
                                ttl: Int64(ttl), logger: reactor.logger) { change in
            bound.post { control in control.handle(change) }
        }
        rpc.gate = { [unowned self] method in
            guard case .follower(let leader) = role, !exempt.contains(method) else { return nil }
            return .notLeader(service, leader: leader)
        }
    }

    /// Stops campaigning when the service goes: a leader hands over at once
    /// (its lease revoked) instead of after the TTL.
    deinit { leadership?.stop() }

    /// Starts campaigning (with etcd); the embedded store leads already.
    public func start() { leadership?.start() }

    public var isLeader: Bool {
        if case .leader = role { return true }
        return false
    }

    /// Whether the state is in etcd (several replicas) rather than embedded.
    public var isReplicated: Bool { leadership != nil }

    /// The current term; nil for a follower and for the embedded store.
    public var term: LeaderTerm? {
        if case .leader(let term) = role { return term }
        return nil
    }

    /// For Health's details and the status report.
    public var details: [String: String] {
        switch role {
        case .leader: ["role": "leader"]
        case .follower(let leader): ["role": "follower", "leader": leader]
        }
    }

    /// A follower's refusal naming the leader it knows.
    public var notLeaderError: RPCError {
        if case .follower(let leader) = role { return .notLeader(service, leader: leader) }
        return .notLeader(service, leader: "")
    }

    /// Gives up leadership after a write that failed: this replica's state may
    /// no longer match etcd's, so it becomes a follower now and campaigns again
    /// (reloading the state if it wins).
    public func resign(_ reason: String) {
        guard let leadership, case .leader(let term?) = role else { return }
        logger.error("leader.resigning", metadata: ["leader.service": "\(service)", "leader.reason": "\(reason)"])
        role = .follower(leader: "")
        leadership.resign(term)
        onDeposed?(reason)
    }

    private func handle(_ change: LeadershipChange) {
        switch change {
        case .elected(let term):
            if case .leader(let current) = role, current == term { return }
            if isLeader { onDeposed?("a new term began") }
            role = .leader(term)
            logger.notice("replica.leading", metadata: ["leader.service": "\(service)", "leader.revision": "\(term.createRevision)"])
            onElected?(term)
        case .deposed(let reason):
            let was = isLeader
            role = .follower(leader: "")
            if was { onDeposed?(reason) }
        case .follower(let leader):
            let was = isLeader
            role = .follower(leader: leader)
            if was { onDeposed?("another replica leads: \(leader)") }
        }
    }
}
