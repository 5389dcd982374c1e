import Foundation
import RPC
import RingProtocol
import RingstoreClient
import Testing
import TestKit

#if canImport(Glibc)
import Glibc
#endif

/// Control-plane faults: storage keeps serving on the ring it has while
/// placement or the lock service is down, and both come back on a restart
/// without anyone doing anything else.
@Suite(.serialized) struct ControlPlaneFaultTests {
    /// Puts and gets of `count` keys through every node as coordinator, at W=R=`quorum`;
    /// returns the failures.
    static func readsAndWrites(_ cluster: LocalCluster, prefix: String, count: Int = 60, quorum: UInt32 = 2) async throws -> [String] {
        var failures: [String] = []
        for index in 0..<count {
            let client = try cluster.nodeClient(index % cluster.nodeCount)
            defer { client.close() }
            let key = Data("\(prefix)-\(index)".utf8), value = Data("value-\(prefix)-\(index)".utf8)
            do {
                _ = try await client.call(StorageMethods.put, WirePutRequest.with {
                    $0.key = key
                    $0.value = value
                    $0.quorum.w = quorum
                })
                let reply = try await client.call(StorageMethods.get, WireGetRequest.with {
                    $0.key = key
                    $0.quorum.r = quorum
                })
                if !(reply.found && reply.value == value) { failures.append("\(prefix)-\(index): read back \(reply)") }
            } catch {
                failures.append("\(prefix)-\(index) via node \(index % cluster.nodeCount): \(error)")
            }
        }
        return failures
    }

    @Test(.timeLimit(.minutes(1)))
    func withPlacementDownNodesKeepServingAndHeartbeatsResumeOnItsRestart() async throws {
        let cluster = try LocalCluster(nodes: 3)
        try await cluster.startAndSettle()
        let addresses = (0..<3).map(cluster.nodeAddress)
        let before = try await cluster.members()
        let ringEpoch = try await cluster.ringInfo().ringEpoch
        // A client library user that fetched the ring before the outage.
        let endpoints = ClusterEndpoints(placement: cluster.placementEndpoint, nodes: addresses)
        let library = try KeyValueClient(context: cluster.clientContext(), endpoints: endpoints, caller: "control-plane-test")
        defer { library.close() }
        #expect(await library.refreshRing())

        try await cluster.placement.stop(signal: SIGKILL)
        // Longer than the down timeout: nodes must not give up on each other
        // because the failure detector is gone.
        let clock = ContinuousClock()
        let outageEnds = clock.now + .seconds(cluster.downAfter + 1)
        var round = 0
        repeat {
            round += 1
            #expect(try await Self.readsAndWrites(cluster, prefix: "no-placement-\(round)", count: 30).isEmpty)
            // All three replicas still take writes and answer reads.
            #expect(try await Self.readsAndWrites(cluster, prefix: "no-placement-all-\(round)", count: 6, quorum: 3).isEmpty)
            let key = Array("library-\(round)".utf8)
            _ = try await library.put(key: key, value: key)
            #expect(try await library.get(key: key).value == key)
        } while clock.now < outageEnds

        try await cluster.startPlacement()
        // Heartbeats resume by themselves: every member is up, and stays up past
        // the down timeout (so placement hears from each node), on the same ring.
        try await cluster.waitForMembers(addresses, state: .up)
        try await Task.sleep(for: .seconds(cluster.downAfter + 0.5))
        let after = try await cluster.members()
        for address in addresses { #expect(after.members[address]?.state == .up, "\(address): \(String(describing: after.members[address]))") }
        #expect(Set(after.members.keys) == Set(before.members.keys))
        #expect(try await cluster.ringInfo().ringEpoch == ringEpoch)
        #expect(try await Self.readsAndWrites(cluster, prefix: "placement-back").isEmpty)
        try await cluster.stop()
    }

    @Test(.timeLimit(.minutes(1)))
    func withTheLockServiceDownStorageKeepsServingAndLocksComeBackOnItsRestart() async throws {
        let cluster = try LocalCluster(nodes: 3)
        try await cluster.startAndSettle()
        let locks = try cluster.rpc(cluster.lockEndpoint, caller: "control-plane-test")
        defer { locks.close() }
        let held = try await locks.call(LockMethods.acquire, WireLockAcquireRequest.with {
            $0.name = "control-plane"
            $0.owner = "holder"
            $0.ttlMillis = 60_000
        }).grant

        try await cluster.lock.stop(signal: SIGKILL)
        #expect(try await Self.readsAndWrites(cluster, prefix: "no-locks").isEmpty)
        // A fenced write checks tokens on the replicas, not with the lock service.
        let node = try cluster.nodeClient(0)
        defer { node.close() }
        _ = try await node.call(StorageMethods.put, WirePutRequest.with {
            $0.key = Data("fenced".utf8)
            $0.value = Data("by holder".utf8)
            $0.fence = WireFence.with {
                $0.name = "control-plane"
                $0.token = held.token
            }
        })

        try await cluster.startLock()
        // The lease survived the restart, and the lock service answers acquire again.
        let status = try await locks.call(LockMethods.status, WireLockStatusRequest.with { $0.name = "control-plane" })
        #expect(status.lock.holder.owner == "holder" && status.lock.holder.token == held.token)
        _ = try await locks.call(LockMethods.release, WireLockReleaseRequest.with {
            $0.name = "control-plane"
            $0.owner = "holder"
            $0.token = held.token
        })
        let next = try await locks.call(LockMethods.acquire, WireLockAcquireRequest.with {
            $0.name = "control-plane"
            $0.owner = "successor"
            $0.ttlMillis = 5000
        }).grant
        #expect(next.token > held.token)
        #expect(try await Self.readsAndWrites(cluster, prefix: "locks-back").isEmpty)
        try await cluster.stop()
    }
}
