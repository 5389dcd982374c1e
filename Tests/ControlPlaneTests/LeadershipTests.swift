import ControlPlane
import Etcd
import Foundation
import Logging
import Synchronization
import Testing
import TestKit

/// Leader election through an etcd lease against a real etcd: one leader at
/// a time, a graceful stop hands over at once, a dead leader is replaced
/// after its TTL, and a deposed term's guarded writes fail.
@Suite(.serialized, .timeLimit(.minutes(2))) struct LeadershipTests {
    /// Every change one replica's election reported, in order.
    final class Reports: Sendable {
        let changes = Mutex<[LeadershipChange]>([])
        var last: LeadershipChange? { changes.withLock { $0.last } }
        var term: LeaderTerm? {
            if case .elected(let term)? = last { return term }
            return nil
        }
    }

    static func replica(_ etcd: EtcdClient, _ name: String, ttl: Int64 = 2) -> (Leadership, Reports) {
        let reports = Reports()
        let election = Leadership(client: etcd, key: "/test/svc/leader", identity: .init(endpoint: "tcp://\(name):1"),
                                  ttl: ttl, logger: Logger(label: "test.\(name)")) { change in
            reports.changes.withLock { $0.append(change) }
        }
        return (election, reports)
    }

    @Test func oneLeadsTheOtherFollowsNamingItAndAStopHandsOverAtOnce() async throws {
        let cluster = try await EtcdCluster.start()
        defer { cluster.shutdown() }
        let etcd = try EtcdClient(endpoints: cluster.endpoints, timeout: .seconds(2))
        let (a, reportsA) = Self.replica(etcd, "a")
        a.start()
        try await waitUntil("a to lead") { reportsA.term != nil }
        let (b, reportsB) = Self.replica(etcd, "b")
        b.start()
        defer { b.stop() }
        try await waitUntil("b to follow a") { reportsB.last == .follower(leader: "tcp://a:1") }
        #expect(try Leadership.leader(client: etcd, key: a.key)?.endpoint == "tcp://a:1")

        let clock = ContinuousClock()
        let stopped = clock.now
        a.stop()
        try await waitUntil("b to lead after a stopped", timeout: .seconds(5)) { reportsB.term != nil }
        // A revoked lease frees the key at once: well under the 2 s TTL.
        #expect(clock.now - stopped < .seconds(1.5))
        #expect(try Leadership.leader(client: etcd, key: a.key)?.endpoint == "tcp://b:1")
    }

    @Test func aDeposedTermCannotWriteAndItsHolderStepsDown() async throws {
        let cluster = try await EtcdCluster.start()
        defer { cluster.shutdown() }
        let etcd = try EtcdClient(endpoints: cluster.endpoints, timeout: .seconds(2))
        let (a, reportsA) = Self.replica(etcd, "a")
        a.start()
        defer { a.stop() }
        try await waitUntil("a to lead") { reportsA.term != nil }
        let term = try #require(reportsA.term)
        let writes = GuardedWrites(client: etcd, term: term)
        try writes.commit([.put("/test/state", "1")])
        #expect(try etcd.get(key: "/test/state").kv?.string == "1")

        // Someone else takes the key (an operator, or a partition that healed after the lease ran out).
        try etcd.delete(key: term.key)
        try etcd.put(key: term.key, value: "usurper")
        #expect(throws: ReplicatedWriteError.self) { try writes.commit([.put("/test/state", "2")]) }
        do {
            try writes.commit([.put("/test/state", "2")])
        } catch {
            #expect(error.kind == .deposed)
        }
        #expect(try etcd.get(key: "/test/state").kv?.string == "1")
        // The leader notices on its next look at the key and steps down.
        try await waitUntil("a to step down", timeout: .seconds(5)) {
            if case .deposed? = reportsA.last { return true }
            if case .follower? = reportsA.last { return true }
            return false
        }
    }

    @Test func aLeaderThatStopsRenewingIsReplacedAfterItsTTLAndALongListIsWrittenInChunks() async throws {
        let cluster = try await EtcdCluster.start()
        defer { cluster.shutdown() }
        let etcd = try EtcdClient(endpoints: cluster.endpoints, timeout: .seconds(2))
        // A "leader" that campaigned by hand and then died: its lease is never renewed.
        let lease = try etcd.grant(ttl: 1)
        let won = try etcd.txn(compare: [.createRevision("/test/svc/leader", .equal, 0)],
                               success: [.put(key: "/test/svc/leader", value: Array("{}".utf8), lease: lease.id)])
        #expect(won.succeeded)
        let (b, reportsB) = Self.replica(etcd, "b")
        b.start()
        defer { b.stop() }
        let clock = ContinuousClock()
        let start = clock.now
        try await waitUntil("b to lead once the dead leader's lease ran out", timeout: .seconds(10)) { reportsB.term != nil }
        #expect(clock.now - start >= .milliseconds(500))

        // More operations than one etcd transaction may hold (128 by default).
        let term = try #require(reportsB.term)
        try GuardedWrites(client: etcd, term: term).commit((0..<250).map { .put("/test/many/\($0)", "\($0)") })
        #expect(try etcd.range(prefix: "/test/many/").count == 250)
    }
}
