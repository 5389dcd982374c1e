import Foundation
import RPC
import Ring
import RingProtocol
import Testing
import TestKit

#if canImport(Glibc)
import Glibc
#endif

/// An arc with no live replica, for real: with one replica per key (N=1) a
/// node holding data is killed (kill -9), marked down and removed, so nobody
/// holds its arcs any more. Placement reports each of them lost
/// (`migration_failed`, `will_retry=false`), drops them from the plan instead
/// of retrying a transfer nobody can send, and the survivor keeps serving its
/// own keys; the lost keys read as absent.
@Suite(.serialized) struct LostArcProcessTests {
    /// Ascending, non-overlapping runs covering exactly the positions of `ranges`.
    static func coverage(_ ranges: [ClosedRange<UInt32>]) -> [ClosedRange<UInt32>] {
        var runs: [ClosedRange<UInt32>] = []
        for range in ranges.sorted(by: { $0.lowerBound < $1.lowerBound }) {
            if let last = runs.last, UInt64(range.lowerBound) <= UInt64(last.upperBound) + 1 {
                runs[runs.count - 1] = last.lowerBound...max(last.upperBound, range.upperBound)
            } else {
                runs.append(range)
            }
        }
        return runs
    }

    @Test(.timeLimit(.minutes(2)))
    func removingTheOnlyReplicaReportsItsArcsLostAndThePlanSettles() async throws {
        let cluster = try LocalCluster(nodes: 2)
        cluster.placementArguments = ["--replicas", "1"]
        try await cluster.startAndSettle()
        try await cluster.waitUntilSettled(nodes: [0, 1])
        #expect(try await cluster.ringInfo().replicas == 1)
        let survivor = cluster.nodeAddress(0)
        let dead = cluster.nodeAddress(1)

        // Each key lives on exactly one node: its owner on the ring of both.
        let data = try await cluster.load(2_000, prefix: "lost")
        let ring = try HashRing(members: [survivor, dead].map { try RingMember(address: $0) })
        var owned: [String: [String]] = [:]
        for key in data.keys.sorted() {
            owned[try ring.preferenceList(forKey: key, replicas: 1)[0].address, default: []].append(key)
        }
        let deadKeys = owned[dead] ?? []
        let survivorKeys = owned[survivor] ?? []
        #expect(!deadKeys.isEmpty && !survivorKeys.isEmpty)
        try await cluster.waitForHolding(0, survivorKeys.count)
        try await cluster.waitForHolding(1, deadKeys.count)

        let recorder = try EventRecorder(cluster, topics: ["ring"])
        try await recorder.waitUntilConnected(cluster)
        try await cluster.node(1).stop(signal: SIGKILL)
        try await cluster.waitForMembers([dead], state: .down)
        let run = try await ToolRun.run("ringctl", ["remove", dead] + cluster.ringctlTarget())
        #expect(run.status == 0, "\(run.stderr)")

        // One migration_failed per lost arc, without retry, together covering
        // exactly the positions the dead node owned.
        let expected = Self.coverage(try ring.segments(replicas: 1).filter { $0.replicas.map(\.address) == [dead] }.map(\.range))
        func lostEvents() -> [EventRecorder.Recorded] { recorder.events.filter { $0.type == "migration_failed" } }
        try await waitUntil("migration_failed for every arc \(dead) held", timeout: .seconds(20)) {
            Self.coverage(lostEvents().map { $0.arcStart...$0.arcEnd }) == expected
        }
        let lost = lostEvents()
        #expect(lost.count >= expected.count)
        let unlike = lost.filter { event in
            event.willRetry || event.from != dead || event.to != survivor || event.reason != "no live replica holds this arc"
                || event.topic != "migration"
        }
        let problem = "\(unlike.count) of \(lost.count) migration_failed events are not will_retry=false from \(dead) "
            + "to \(survivor) for want of a live replica, e.g. \(unlike.prefix(2))"
        #expect(unlike.isEmpty, "\(problem)")

        // The plan settled at once: nothing pending, no transfer anyone could retry.
        let info = try await cluster.ringInfo()
        #expect(info.members.map(\.address) == [survivor])
        #expect(info.plan.pending.isEmpty, "\(info.plan.pending.count) arcs still pending")
        #expect(info.plan.transfers.isEmpty, "transfers left: \(info.plan.transfers.map { "\($0.from)->\($0.to)" })")
        try await cluster.waitUntilSettled(nodes: [0], timeout: .seconds(30))
        let survivorClient = try cluster.nodeClient(0)
        defer { survivorClient.close() }
        let health = try await survivorClient.call(StorageMethods.health, WireHealthRequest())
        #expect(health.details["migrations_out"] == "0")
        #expect(health.details["ring_members"] == "1")

        // The survivor serves every key it owned; the lost keys read as absent.
        let keys = survivorKeys + deadKeys
        let reads = try await ToolRun.run("ringctl", ["get", "--stdin"] + cluster.ringctlTarget(),
                                          stdin: keys.joined(separator: "\n") + "\n", timeout: .seconds(120))
        #expect(reads.status == 0, "\(reads.stderr.prefix(500))")
        var answers: [String: String] = [:]
        for line in reads.stdout.split(separator: "\n") {
            let parts = line.split(separator: "\t", maxSplits: 1).map(String.init)
            if parts.count == 2 { answers[parts[0]] = parts[1] }
        }
        let wrong = survivorKeys.filter { answers[$0] != data[$0] }
        #expect(wrong.isEmpty, "\(wrong.count) of the survivor's keys read wrong, e.g. \(wrong.prefix(3).map { "\($0): \(answers[$0] ?? "no line")" })")
        let notAbsent = deadKeys.filter { answers[$0] != "NOT_FOUND" }
        #expect(notAbsent.isEmpty, "\(notAbsent.count) lost keys do not read as absent, e.g. \(notAbsent.prefix(3).map { "\($0): \(answers[$0] ?? "no line")" })")
        // Nobody started or retried a transfer for the lost arcs.
        #expect(!recorder.events.contains { $0.type == "migration_started" || ($0.type == "migration_failed" && $0.willRetry) })

        // What the README tells the operator: if the dead node's data directory
        // survived, start the node again on it (same address). It joins again,
        // owns the same arcs, and its keys read back; keys written meanwhile merge.
        let rewritten = deadKeys[0]
        let put = try await ToolRun.run("ringctl", ["put", rewritten, "written-while-lost"] + cluster.ringctlTarget())
        #expect(put.status == 0, "\(put.stderr)")
        try await cluster.startNode(1)
        try await cluster.waitForMembers([survivor, dead], state: .up)
        try await cluster.waitUntilSettled(nodes: [0, 1], timeout: .seconds(60))
        let back = try await ToolRun.run("ringctl", ["get", "--stdin"] + cluster.ringctlTarget(),
                                         stdin: keys.joined(separator: "\n") + "\n", timeout: .seconds(120))
        #expect(back.status == 0, "\(back.stderr.prefix(500))")
        var restored: [String: String] = [:]
        for line in back.stdout.split(separator: "\n") {
            let parts = line.split(separator: "\t", maxSplits: 1).map(String.init)
            if parts.count == 2 { restored[parts[0]] = parts[1] }
        }
        var want = data
        want[rewritten] = "written-while-lost"
        let missing = keys.filter { restored[$0] != want[$0] }
        #expect(missing.isEmpty, "\(missing.count) keys differ after the restart, e.g. \(missing.prefix(3).map { "\($0): \(restored[$0] ?? "no line")" })")
        try await cluster.stop()
    }
}
