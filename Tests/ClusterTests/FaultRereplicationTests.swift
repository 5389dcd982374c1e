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
/// a different node is paused past the failure timeout; once it resumes, the
/// plan settles and every key has its three copies again.
@Suite(.serialized) struct FaultRereplicationTests {
    @Test(.timeLimit(.minutes(2)))
    func removingADeadNodeWhileAnotherIsPausedRebuildsEveryReplica() async throws {
        let cluster = try LocalCluster(nodes: 4)
        try await cluster.startAndSettle()
        let data = try await cluster.load(3_000, prefix: "rerepl")

        try await cluster.node(3).stop(signal: SIGKILL)
        let dead = cluster.nodeAddress(3)
        cluster.signalNode(2, SIGSTOP)
        var paused = true
        defer { if paused { cluster.signalNode(2, SIGCONT) } }
        try await cluster.waitForMembers([dead, cluster.nodeAddress(2)], state: .down, timeout: .seconds(15))
        let run = try await ToolRun.run("ringctl", ["remove", dead, "--placement", cluster.placementEndpoint])
        #expect(run.status == 0, "\(run.stderr)")
        // With node 2 paused the plan cannot settle: arcs it must send or receive wait.
        try await Task.sleep(for: .seconds(2))
        let pending = try await cluster.ringInfo().plan.pending.count
        cluster.signalNode(2, SIGCONT)
        paused = false

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
        print("re-replication: removed \(dead) while node 2 was paused; \(pending) arcs pending during the pause; "
            + "\(total) copies of \(data.count) keys after it settled")
        try await cluster.stop()
    }
}
