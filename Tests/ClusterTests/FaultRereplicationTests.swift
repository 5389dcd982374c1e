import Foundation
import RPC
import Ring
import RingProtocol
import Testing
import TestKit

#if canImport(Glibc)
import Glibc
#endif

/// Re-replication while another fault happens: a dead member is removed while
/// a different node is paused past the failure timeout. While it is paused the
/// plan cannot settle: the arcs it must receive wait, and only those (the live
/// replicas rebuild every other arc meanwhile); once it resumes, the plan
/// settles and every key has its three copies again.
@Suite(.serialized) struct FaultRereplicationTests {
    @Test(.timeLimit(.minutes(2)))
    func removingADeadNodeWhileAnotherIsPausedRebuildsEveryReplica() async throws {
        let cluster = try LocalCluster(nodes: 4)
        try await cluster.startAndSettle()
        // The joins' plan settled: the data sits exactly on the four-member ring's replicas.
        try await cluster.waitUntilSettled(nodes: [0, 1, 2, 3])
        let data = try await cluster.load(3_000, prefix: "rerepl")

        try await cluster.node(3).stop(signal: SIGKILL)
        let dead = cluster.nodeAddress(3)
        let paused = cluster.nodeAddress(2)
        cluster.signalNode(2, SIGSTOP)
        var isPaused = true
        defer { if isPaused { cluster.signalNode(2, SIGCONT) } }
        try await cluster.waitForMembers([dead, paused], state: .down, timeout: .seconds(15))
        let run = try await ToolRun.run("ringctl", ["remove", dead] + cluster.ringctlTarget())
        #expect(run.status == 0, "\(run.stderr)")

        // Every arc the dead node held gains a replica. Where that is node 2, only
        // node 2 can take it: those arcs wait. Where it is node 0 or 1, the live
        // replica that stays sends it (not node 2: down), so those settle meanwhile.
        let ring = try HashRing(members: (0..<4).map { try RingMember(address: cluster.nodeAddress($0)) })
        let waiting = try ring.segments(replicas: 3).filter { segment in
            let replicas = segment.replicas.map(\.address)
            return replicas.contains(dead) && !replicas.contains(paused)
        }.reduce(UInt64(0)) { $0 + UInt64($1.range.count) }
        #expect(waiting > 0)
        func length(_ arcs: [WirePendingArc]) -> UInt64 {
            arcs.reduce(0) { $0 + RingArc(first: $1.arc.first, last: $1.arc.last).length }
        }
        var plan = WireMigrationPlan()
        try await waitUntil("every arc but those node 2 must receive to settle", timeout: .seconds(60), interval: .milliseconds(200)) {
            plan = try await cluster.ringInfo().plan
            return plan.pending.allSatisfy { $0.newReplicas.contains(paused) && !$0.oldReplicas.contains(paused) }
        }
        #expect(length(plan.pending) == waiting, "\(plan.pending.count) arcs pending")
        #expect(plan.pending.allSatisfy { $0.oldReplicas.contains(dead) })
        #expect(!plan.transfers.isEmpty && plan.transfers.allSatisfy { $0.to == paused && !$0.done },
                "\(plan.transfers.map { "\($0.from)->\($0.to) done=\($0.done)" })")
        let pending = plan.pending.count
        cluster.signalNode(2, SIGCONT)
        isPaused = false

        try await cluster.waitUntilSettled(nodes: [0, 1, 2], timeout: .seconds(90))
        // Three survivors, three replicas: each holds every key.
        for index in 0..<3 { try await cluster.waitForHolding(index, data.count) }
        var total: UInt64 = 0
        for index in 0..<3 { total += try await cluster.stats(index).liveKeys }
        #expect(total == UInt64(3 * data.count))
        // The right keys, not only the right number: a sample on every survivor.
        for index in 0..<3 {
            let client = try cluster.nodeClient(index)
            defer { client.close() }
            var missing: [String] = []
            for key in data.keys.sorted().prefix(300) {
                if try await !cluster.holds(index, key, client: client) { missing.append(key) }
            }
            #expect(missing.isEmpty, "node \(index) lacks \(missing.count) sampled keys, e.g. \(missing.prefix(3))")
        }
        #expect(try await cluster.mismatches(data).isEmpty)
        print("re-replication: removed \(dead) while node 2 was paused; \(pending) arcs waited for it; "
            + "\(total) copies of \(data.count) keys after it settled")
        try await cluster.stop()
    }
}
