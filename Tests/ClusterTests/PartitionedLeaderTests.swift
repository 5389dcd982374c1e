import Basics
import Foundation
import RPC
import RingstoreClient
import Synchronization
import Testing
import TestKit

/// The lock service replicated on etcd (issue 18), its leader cut off from
/// etcd in a network namespace while its clients still reach it
/// (`SplitLockCluster`).
@Suite(.serialized) struct PartitionedLeaderTests {
    /// What a kept lease reported, for the test to wait on.
    final class Changes: Sendable {
        private let list = Mutex<[LeaseChange]>([])
        func append(_ change: LeaseChange) { list.withLock { $0.append(change) } }
        var renewals: Int { list.withLock { $0.filter { if case .renewed = $0 { true } else { false } }.count } }
        var all: [LeaseChange] { list.withLock { $0 } }
    }

    @Test(.timeLimit(.minutes(5)),
          .enabled("needs `ip netns` (iproute2, root or CAP_SYS_ADMIN)") { Netns.available },
          arguments: [SplitLockCluster.Cut.atA, .atBridge])
    func aPartitionedOldLeaderCannotChangeStateAfterItsLeaseEndsAndItsClientsFailOver(_ cut: SplitLockCluster.Cut) async throws {
        let started = ContinuousClock.now
        let split = try SplitLockCluster()
        defer { split.destroy() }
        try await split.start()
        let (a, ttl) = (0, Duration.seconds(split.leaderTTL))

        // A lock held through A by a client that knows all three replicas.
        // Renewals every 6 s: none reaches A between the cut and its own step-down.
        let client = try split.lockClient([0, 1, 2], owner: "partition-test")
        defer { client.close() }
        let keeper = try await client.hold("jobs", ttl: .seconds(20), renewEvery: .seconds(6))
        #expect(client.endpoint == split.endpoints[a])
        let changes = Changes()
        let watcher = Task { for await change in keeper.changes { changes.append(change) } }
        defer { watcher.cancel() }

        // A's etcd link goes down; A still answers its clients.
        let cutAt = ContinuousClock.now
        try split.cutEtcdLink(cut)
        var aFollows: Duration?
        var successor: (replica: Int, after: Duration)?
        // Never two leaders: once B or C was seen leading, every later answer of A says follower.
        var overlap: String?
        try await waitUntil("A to step down and B or C to lead", timeout: .seconds(20), interval: .milliseconds(20)) {
            if successor == nil {
                for replica in [1, 2] where try await split.role(replica) == "leader" { successor = (replica, cutAt.duration(to: .now)) }
            }
            if aFollows == nil {
                let role = try await split.role(a)
                if role == "follower" {
                    aFollows = cutAt.duration(to: .now)
                } else if let successor, overlap == nil {
                    overlap = "A still said \(role ?? "nothing") \(cutAt.duration(to: .now).shortSeconds) after the cut, "
                        + "after replica \(successor.replica) was seen leading (\(successor.after.shortSeconds))"
                }
            }
            return aFollows != nil && successor != nil
        }
        #expect(overlap == nil, "\(overlap ?? "")")
        let (next, elected) = try #require(successor)
        let stepDown = try #require(aFollows)
        print("PartitionedLeaderTests[\(cut)]: etcd link of A cut; A follows after \(stepDown.shortSeconds), replica \(next) leads after \(elected.shortSeconds)")
        // By itself, within about the TTL of its last renewal: not because a write failed.
        #expect(stepDown < ttl + .seconds(2))
        let log = split.process(a).log
        #expect(log.contains("leader.stepped_down") && log.contains("could not renew the leader lease"), "A's log: \(log.suffix(3000))")
        #expect(!log.contains("leader.resigning"), "A resigned after a failed write instead of stepping down by itself: \(log.suffix(3000))")

        // The lease is honoured by the new leader: same owner, same token, and
        // the client's renewals, acquires and releases go there.
        let held = try await client.status("jobs")
        #expect(held.holder?.owner == "partition-test" && held.holder?.token == keeper.token, "\(held)")
        let renewalsBefore = changes.renewals
        try await waitUntil("a renewal through the new leader", timeout: .seconds(20)) { changes.renewals > renewalsBefore }
        let failedOver = cutAt.duration(to: .now)
        #expect(keeper.isHeld && keeper.lostReason == nil, "\(changes.all)")
        #expect(client.endpoint == split.endpoints[next])
        print("PartitionedLeaderTests[\(cut)]: the kept lease renewed through replica \(next) \(failedOver.shortSeconds) after the cut")

        // A, asked alone after its lease ended, refuses and changes nothing.
        let direct = try split.lockClient([a], owner: "partition-test", callTimeout: .seconds(1))
        defer { direct.close() }
        await expectNotLeader("acquire through A") { _ = try await direct.acquire("fresh", ttl: .seconds(10)) }
        await expectNotLeader("renew through A") { _ = try await direct.renew("jobs", token: keeper.token) }
        await expectNotLeader("release through A") { try await direct.release("jobs", token: keeper.token) }
        let fresh = try await client.status("fresh")
        #expect(fresh.holder == nil && fresh.waiters.isEmpty && fresh.lastToken == 0, "\(fresh)")
        let still = try await client.status("jobs")
        #expect(still.holder?.owner == "partition-test" && still.holder?.token == keeper.token, "\(still)")
        // The token counter goes on strictly above what A granted.
        let grant = try await client.acquire("fresh", ttl: .seconds(10))
        #expect(grant.token > keeper.token)
        try await client.release("fresh", token: grant.token)

        // Healed: A comes back as a follower naming the new leader (a client of A
        // alone now follows that name), and leads nothing.
        let healed = ContinuousClock.now
        try split.healEtcdLink(cut)
        try await waitUntil("A to follow replica \(next) again", timeout: .seconds(20)) {
            let details = try await split.details(a)
            return details?["role"] == "follower" && details?["leader"].map(Endpoint.endpoint(for:)) == split.endpoints[next]
        }
        print("PartitionedLeaderTests[\(cut)]: healed; A follows replica \(next) after \(healed.duration(to: .now).shortSeconds)")
        #expect(try await split.leaders() == [next])

        try await keeper.release()
        #expect(try await client.status("jobs").holder == nil)
        print("PartitionedLeaderTests[\(cut)]: done in \(started.duration(to: .now).shortSeconds)")
    }

    /// `call` fails with UNAVAILABLE, a follower's not_leader refusal.
    func expectNotLeader(_ what: String, _ call: () async throws -> Void) async {
        do {
            try await call()
            Issue.record("\(what) succeeded")
        } catch let error as RPCError {
            #expect(error.code == .unavailable && error.notLeader, "\(what): \(error)")
        } catch {
            Issue.record("\(what): \(error)")
        }
    }
}
