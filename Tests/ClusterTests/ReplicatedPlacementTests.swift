import Basics
import Foundation
import RPC
import RingProtocol
import Testing
import TestKit

#if canImport(Glibc)
import Glibc
#endif

/// Placement replicated on etcd (issue 18) with the real executables: three
/// etcd members, three placement replicas (`--store etcd://… --leader-ttl 2`),
/// the lock service, and nodes that know every replica.
@Suite(.serialized) struct ReplicatedPlacementTests {
    /// How the leader's death looked from outside.
    struct Failover: CustomStringConvertible {
        let killed: Int
        let leader: Int
        /// From the SIGKILL until a client of every replica got an answer (GetRing) from the new leader.
        let served: Duration
        /// Transfers still pending when the leader was killed.
        let pendingAtKill: Int

        var description: String {
            "replica \(killed) killed with \(pendingAtKill) arcs pending; replica \(leader) leads and answered after \(served.shortSeconds)"
        }
    }

    @Test(.timeLimit(.minutes(5)))
    func aJoinAndALeaveCompleteWhileThePlacementLeaderIsKilledInTheMiddle() async throws {
        let started = ContinuousClock.now
        let etcd = try await EtcdCluster.start(size: 3)
        defer { etcd.shutdown() }
        // Failure detection slower than a failover (about the 2 s TTL), so a
        // node whose heartbeats wait for the new leader is not declared down.
        let cluster = try LocalCluster(nodes: 3, suspectAfter: 4, downAfter: 8)
        cluster.replicatePlacement(on: etcd, replicas: 3, leaderTTL: 2)
        // Transfers slow enough (about 30 kB/s each: several seconds) that a
        // leader can be killed while they run and another elected before they end.
        cluster.nodeArguments = ["--migration-rate-mb", "0.03", "--migration-batch-keys", "32"]
        try await cluster.startAndSettle()
        let first = try await cluster.waitForPlacementLeader()
        let data = try await cluster.load(4_000, prefix: "ha")
        print("ReplicatedPlacementTests: cluster up, 4000 keys written after \(started.duration(to: .now).shortSeconds); replica \(first) leads")

        // A join, and the leader killed while its transfers run.
        let fourth = cluster.addNode()
        try await cluster.startNode(fourth)
        let joinFailover = try await killLeaderMidMigration(cluster, leader: first, toward: cluster.nodeAddress(fourth))
        print("ReplicatedPlacementTests: join: \(joinFailover)")
        try await cluster.waitUntilSettled(nodes: [0, 1, 2, 3])
        try expectSettledByNewLeader(cluster, joinFailover)
        let joined = try await cluster.ringInfo()
        #expect(Set(joined.members.map(\.address)) == Set((0...3).map(cluster.nodeAddress)))
        #expect(joined.plan.pending.isEmpty)
        try await expectEveryMemberUp(cluster, (0...3).map(cluster.nodeAddress))

        // The killed replica comes back as a follower of the new leader.
        try await cluster.startPlacementReplica(joinFailover.killed)
        try await waitUntil("the restarted replica to follow replica \(joinFailover.leader)") {
            let details = try await cluster.placementReplicaDetails(joinFailover.killed)
            return details?["role"] == "follower" && details?["leader"].map(Self.address) == Self.address(cluster.placementEndpoints[joinFailover.leader])
        }

        // A leave of another node, and the new leader killed in its middle.
        let leaver = cluster.nodeAddress(1)
        let leave = try await ToolRun.run("ringctl", ["leave", leaver] + cluster.ringctlTarget())
        #expect(leave.status == 0, "\(leave.stderr)")
        let leaveFailover = try await killLeaderMidMigration(cluster, leader: joinFailover.leader, from: leaver)
        print("ReplicatedPlacementTests: leave: \(leaveFailover)")
        try await waitUntil("\(leaver) to be removed after its handoff", timeout: .seconds(120), interval: .milliseconds(200)) {
            try await cluster.members().members[leaver] == nil
        }
        try await cluster.waitUntilSettled(nodes: [0, 2, 3])
        try expectSettledByNewLeader(cluster, leaveFailover)
        let left = try await cluster.ringInfo()
        #expect(Set(left.members.map(\.address)) == Set([0, 2, 3].map(cluster.nodeAddress)))
        #expect(left.plan.pending.isEmpty)
        try await expectEveryMemberUp(cluster, [0, 2, 3].map(cluster.nodeAddress))

        // Every key reads back at the cluster's R, and sits exactly on its replicas.
        let mismatched = try await cluster.mismatches(data)
        #expect(mismatched.isEmpty, "\(mismatched.count) keys read back wrong, e.g. \(mismatched.prefix(5))")
        try await MigrationProcessTests().expectExactHoldings(cluster, Array(data.keys), nodes: [0, 2, 3])
        #expect(try await cluster.stats(1).liveKeys == 0)
        try await cluster.stop()
        print("ReplicatedPlacementTests: done in \(started.duration(to: .now).shortSeconds); failovers \(joinFailover.served.shortSeconds), \(leaveFailover.served.shortSeconds)")
    }

    /// Waits until the plan has arcs pending and a transfer `toward` (or
    /// `from`) an address has started, kills `leader` with SIGKILL, and waits
    /// until another replica answers as leader.
    func killLeaderMidMigration(_ cluster: LocalCluster, leader: Int, toward receiver: String? = nil,
                                from sender: String? = nil) async throws -> Failover {
        var pending = 0
        try await waitUntil("a transfer of the plan to be under way", timeout: .seconds(60), interval: .milliseconds(20)) {
            let plan = try await cluster.ringInfo().plan
            pending = plan.pending.count
            return !plan.pending.isEmpty && plan.transfers.contains { transfer in
                !transfer.done && transfer.startedUnixMicros > 0
                    && (receiver == nil || transfer.to == receiver) && (sender == nil || transfer.from == sender)
            }
        }
        #expect(try await cluster.placementLeaders() == [leader])
        let killed = ContinuousClock.now
        try await cluster.killPlacementReplica(leader)
        // A client of every replica, made after the kill: it finds the new leader by itself.
        let client = try cluster.placementRPC(caller: "failover-probe")
        defer { client.close() }
        try await waitUntil("a placement replica to answer as leader", timeout: .seconds(30), interval: .milliseconds(10)) {
            (try? await client.call(PlacementMethods.getRing, WireGetRingRequest(), options: CallOptions(timeout: .milliseconds(500)))) != nil
        }
        let served = killed.duration(to: .now)
        let next = try await cluster.waitForPlacementLeader(excluding: leader)
        #expect(client.endpoint == cluster.placementEndpoints[next])
        return Failover(killed: leader, leader: next, served: served, pendingAtKill: pending)
    }

    /// The new leader finished the plan it inherited: it settled transfers
    /// that were under way when its predecessor died.
    func expectSettledByNewLeader(_ cluster: LocalCluster, _ failover: Failover) throws {
        let settled = cluster.placementReplica(failover.leader).log.components(separatedBy: "migration.transfer.completed").count - 1
        print("ReplicatedPlacementTests: replica \(failover.leader) settled \(settled) transfers after the failover")
        #expect(settled > 0, "the new leader settled no transfer of the plan it inherited")
    }

    /// Placement lists every one of `addresses` as up and nothing else.
    func expectEveryMemberUp(_ cluster: LocalCluster, _ addresses: [String]) async throws {
        let members = try await cluster.members().members
        #expect(Set(members.keys) == Set(addresses))
        #expect(members.values.allSatisfy { $0.state == .up }, "\(members.values.map { "\($0.address) \($0.state)" })")
    }

    static func address(_ endpoint: String) -> String { endpoint.replacingOccurrences(of: "tcp://", with: "") }
}

extension Duration {
    /// Seconds with two decimals, e.g. `2.41 s`, for the figures the HA tests print.
    var shortSeconds: String { String(format: "%.2f s", inSeconds) }
}
