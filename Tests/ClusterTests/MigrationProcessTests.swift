import Foundation
import RPC
import Ring
import RingProtocol
import Synchronization
import Testing
import TestKit

/// Migration on real processes: joins, leaves and removes move exactly the
/// arcs that changed owner, and no acknowledged write is lost.
@Suite(.serialized, .timeLimit(.minutes(10))) struct MigrationProcessTests {
    /// Checks that every running node holds exactly the keys whose preference list has it.
    func expectExactHoldings(_ cluster: LocalCluster, _ keys: [String], nodes indices: [Int]) async throws {
        let members = indices.map(cluster.nodeAddress)
        let expected = try cluster.expectedHoldings(keys, members: members)
        for index in indices {
            try await cluster.waitForHolding(index, expected[cluster.nodeAddress(index)] ?? 0)
        }
        // And the right keys, not just the right number: a sample, both ways.
        let ring = try HashRing(members: members.map { try RingMember(address: $0) })
        for index in indices {
            let client = try cluster.nodeClient(index)
            defer { client.close() }
            for key in keys.prefix(300) {
                let owners = try ring.preferenceList(forKey: key, replicas: 3).map(\.address)
                let held = try await cluster.holds(index, key, client: client)
                #expect(held == owners.contains(cluster.nodeAddress(index)), "node \(index) holding \(key): \(held)")
            }
        }
    }

    @Test func joinMovesExactlyTheArcsTheNewNodeGains() async throws {
        let cluster = try LocalCluster(nodes: 3)
        try await cluster.startAndSettle()
        let recorder = try EventRecorder(cluster, topics: ["ring"])
        try await recorder.waitUntilConnected(cluster)
        let data = try await cluster.load(20_000, prefix: "join")

        let fourth = cluster.addNode()
        try await cluster.startNode(fourth)
        try await cluster.waitUntilSettled(nodes: [0, 1, 2, 3])
        // The events travel on the PUB socket and may trail the settled ring read over RPC.
        try await waitUntil("ring_settled on the event stream") { recorder.events.contains { $0.type == "ring_settled" } }

        let completed = recorder.events.filter { $0.type == "migration_completed" }
        #expect(!completed.isEmpty)
        #expect(recorder.events.contains { $0.type == "migration_started" })
        #expect(recorder.events.contains { $0.type == "ring_settled" })
        #expect(try await cluster.mismatches(data).isEmpty)
        try await expectExactHoldings(cluster, Array(data.keys), nodes: [0, 1, 2, 3])
        try await cluster.stop()
    }

    @Test func writesDuringAJoinAreNotLost() async throws {
        let cluster = try LocalCluster(nodes: 3)
        // Slow transfers (0.2 MB/s each), so the join stays in flight while the writer writes.
        cluster.nodeArguments = ["--migration-rate-mb", "0.2"]
        try await cluster.startAndSettle()
        var data = try await cluster.load(5_000, prefix: "before")

        // A writer keeps writing through the join; every acknowledged write must be readable after.
        let acknowledged = Mutex<[String: String]>([:])
        let failures = Atomic<Int>(0)
        let stop = Atomic<Bool>(false)
        let client = try cluster.nodeClient(0)
        defer { client.close() }
        let writer = Task {
            var index = 0
            while !stop.load(ordering: .relaxed) {
                let key = "during-\(index)", value = "value-\(index)"
                index += 1
                let request = WirePutRequest.with { $0.key = Data(key.utf8); $0.value = Data(value.utf8) }
                if (try? await client.call(StorageMethods.put, request)) != nil {
                    acknowledged.withLock { $0[key] = value }
                } else {
                    failures.add(1, ordering: .relaxed)
                }
            }
        }
        try await waitUntil("the writer to be writing") { acknowledged.withLock { $0.count } >= 20 }
        let fourth = cluster.addNode()
        try await cluster.startNode(fourth)
        try await waitUntil("the join's arcs to be pending", interval: .milliseconds(50)) {
            try await !cluster.ringInfo().plan.pending.isEmpty
        }
        let atStart = acknowledged.withLock { $0.count }
        try await cluster.waitUntilSettled(nodes: [0, 1, 2, 3])
        let atEnd = acknowledged.withLock { $0.count }
        stop.store(true, ordering: .relaxed)
        await writer.value
        let written = acknowledged.withLock { $0 }
        #expect(atEnd - atStart >= 50, "only \(atEnd - atStart) writes were acknowledged while the join's arcs moved")
        #expect(failures.load(ordering: .relaxed) * 20 <= written.count,
                "\(failures.load(ordering: .relaxed)) of \(written.count + failures.load(ordering: .relaxed)) writes failed")
        data.merge(written) { _, new in new }
        #expect(try await cluster.mismatches(data).isEmpty)
        try await expectExactHoldings(cluster, Array(data.keys), nodes: [0, 1, 2, 3])
        try await cluster.stop()
    }

    /// A coordinator still routing by an older plan must not leave records on a
    /// node that gave their arc away and swept it (nothing would sweep them
    /// again): that node stores nothing and answers not_replica, and records of
    /// arcs it keeps are stored as before.
    @Test func aNodeOnANewerPlanStoresNothingForArcsItGaveAway() async throws {
        let cluster = try LocalCluster(nodes: 3)
        try await cluster.startAndSettle()
        let before = try await cluster.ringInfo().plan.version
        let fourth = cluster.addNode()
        try await cluster.startNode(fourth)
        try await cluster.waitUntilSettled(nodes: [0, 1, 2, 3])
        let after = try await cluster.ringInfo().plan.version
        #expect(after > before)

        // With three nodes and N=3 node 0 held every key; after the join it keeps three quarters.
        let address = cluster.nodeAddress(0)
        let ring = try HashRing(members: (0...fourth).map { try RingMember(address: cluster.nodeAddress($0)) })
        func keeps(_ key: String) throws -> Bool { try ring.preferenceList(forKey: key, replicas: 3).contains { $0.address == address } }
        let keys = (0..<1000).map { "plan-\($0)" }
        let givenAway = try #require(try keys.first { try !keeps($0) })
        let kept = try #require(try keys.first { try keeps($0) })
        func record(_ key: String) -> WireRecord {
            WireRecord.with {
                $0.key = Data(key.utf8)
                $0.value = Data("late".utf8)
                $0.version = WireVersion.with { $0.timestamp = UInt64(Date().timeIntervalSince1970 * 1000) << 16; $0.writer = 7 }
            }
        }
        let client = try cluster.nodeClient(0)
        defer { client.close() }
        let reply = try await client.call(StorageMethods.replicaWrite, WireReplicaWriteRequest.with {
            $0.records = [record(givenAway), record(kept)]
            $0.planVersion = before
        })
        #expect(reply.notReplica == [true, false])
        #expect(reply.applied == [false, true])
        #expect(reply.planVersion == after)
        #expect(try await !cluster.holds(0, givenAway, client: client), "node 0 stored a key of an arc it gave away")
        #expect(try await cluster.holds(0, kept, client: client))

        // A sender on the same plan is taken at its word, as before.
        let current = try await client.call(StorageMethods.replicaWrite, WireReplicaWriteRequest.with {
            $0.records = [record(givenAway)]
            $0.planVersion = after
        })
        #expect(current.notReplica == [false] && current.applied == [true])
        try await cluster.stop()
    }

    @Test func aReceiverKilledMidTransferGetsEverythingAfterItsRestart() async throws {
        let cluster = try LocalCluster(nodes: 3, suspectAfter: 5, downAfter: 30)
        cluster.nodeArguments = ["--migration-rate-mb", "0.1", "--migration-batch-keys", "50"]
        try await cluster.startAndSettle()
        let data = try await cluster.load(5_000, prefix: "restart")
        let fourth = cluster.addNode()
        try await cluster.startNode(fourth)
        try await waitUntil("node 4 to receive some rows", timeout: .seconds(30), interval: .milliseconds(50)) {
            try await cluster.stats(fourth).liveKeys >= 200
        }
        _ = try await cluster.node(fourth).stop(signal: SIGKILL)
        try await cluster.startNode(fourth)
        try await cluster.waitUntilSettled(nodes: [0, 1, 2, 3])
        #expect(try await cluster.mismatches(data).isEmpty)
        try await expectExactHoldings(cluster, Array(data.keys), nodes: [0, 1, 2, 3])
        try await cluster.stop()
    }

    @Test func statusAndWatchShowAMigrationInFlight() async throws {
        let cluster = try LocalCluster(nodes: 3)
        // Slow transfers (20 kB/s each: a few seconds), so status can be caught mid-move.
        cluster.nodeArguments = ["--migration-rate-mb", "0.02", "--migration-batch-keys", "20"]
        try await cluster.startAndSettle()
        let data = try await cluster.load(3_000, prefix: "shown")
        let placement = cluster.ringctlTarget() + ["--placement-events", cluster.placementEvents]
        let watch = Task {
            try await ToolRun.run("ringctl", ["watch", "--json", "--topic", "migration", "--no-snapshot", "--count", "6"] + placement,
                                  timeout: .seconds(60))
        }
        let fourth = cluster.addNode()
        try await cluster.startNode(fourth)
        var status = ""
        try await waitUntil("ringctl status to show a transfer sending", timeout: .seconds(30), interval: .milliseconds(200)) {
            status = try await ToolRun.run("ringctl", ["status"] + placement).stdout
            return status.contains("MIGRATION") && status.contains("sending")
        }
        #expect(status.contains(cluster.nodeAddress(fourth)))
        #expect(status.contains("arcs moving"))
        let lines = try await watch.value.stdout.split(separator: "\n")
        #expect(lines.count == 6)
        let objects = try lines.map { line in try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]) }
        #expect(objects.allSatisfy { $0["topic"] as? String == "migration" })
        // The topic also carries anti_entropy reports; the transfers' events are about node 4.
        let transfers = objects.filter { ($0["type"] as? String)?.hasPrefix("migration_") == true }
        #expect(transfers.count >= 3)
        for object in transfers {
            #expect(object["to"] as? String == cluster.nodeAddress(fourth))
            #expect(object["expected_keys"] != nil && object["transfer"] != nil)
        }
        try await cluster.waitUntilSettled(nodes: [0, 1, 2, 3])
        #expect(try await cluster.mismatches(data).isEmpty)
        try await cluster.stop()
    }

    @Test func leaveHandsEverythingOffThenTheNodeIsRemoved() async throws {
        let cluster = try LocalCluster(nodes: 4)
        try await cluster.startAndSettle()
        let data = try await cluster.load(5_000, prefix: "leave")
        let leaving = cluster.nodeAddress(3)
        let run = try await ToolRun.run("ringctl", ["leave", leaving] + cluster.ringctlTarget())
        #expect(run.status == 0, "\(run.stderr)")
        try await waitUntil("\(leaving) to be removed after its handoff", timeout: .seconds(120), interval: .milliseconds(200)) {
            try await cluster.members().members[leaving] == nil
        }
        try await cluster.waitUntilSettled(nodes: [0, 1, 2])
        #expect(try await cluster.stats(3).liveKeys == 0)
        #expect(try await cluster.mismatches(data).isEmpty)
        try await expectExactHoldings(cluster, Array(data.keys), nodes: [0, 1, 2])
        try await cluster.stop()
    }

    @Test func removingADeadNodeRebuildsItsReplicas() async throws {
        let cluster = try LocalCluster(nodes: 4)
        try await cluster.startAndSettle()
        let data = try await cluster.load(5_000, prefix: "remove")
        _ = try await cluster.node(3).stop(signal: SIGKILL)
        let dead = cluster.nodeAddress(3)
        // Placement takes remove only for a member it no longer hears from.
        try await cluster.waitForMembers([dead], state: .down)
        let run = try await ToolRun.run("ringctl", ["remove", dead] + cluster.ringctlTarget())
        #expect(run.status == 0, "\(run.stderr)")
        try await cluster.waitUntilSettled(nodes: [0, 1, 2])
        // Three copies of every key again, on the three survivors.
        try await expectExactHoldings(cluster, Array(data.keys), nodes: [0, 1, 2])
        #expect(try await cluster.mismatches(data).isEmpty)
        try await cluster.stop()
    }

    @Test func aJoinDuringALeaveConverges() async throws {
        let cluster = try LocalCluster(nodes: 4)
        cluster.nodeArguments = ["--migration-rate-mb", "0.3"]
        try await cluster.startAndSettle()
        let data = try await cluster.load(5_000, prefix: "crossing")
        let leaving = cluster.nodeAddress(3)
        let run = try await ToolRun.run("ringctl", ["leave", leaving] + cluster.ringctlTarget())
        #expect(run.status == 0, "\(run.stderr)")
        // While the leave's transfers run, node 5 joins.
        #expect(try await !cluster.ringInfo().plan.pending.isEmpty)
        let fifth = cluster.addNode()
        try await cluster.startNode(fifth)
        try await waitUntil("\(leaving) to be removed after its handoff", timeout: .seconds(120), interval: .milliseconds(200)) {
            try await cluster.members().members[leaving] == nil
        }
        try await cluster.waitUntilSettled(nodes: [0, 1, 2, 4])
        #expect(try await cluster.mismatches(data).isEmpty)
        try await expectExactHoldings(cluster, Array(data.keys), nodes: [0, 1, 2, 4])
        try await cluster.stop()
    }

    @Test func twoJoinsInARowConverge() async throws {
        let cluster = try LocalCluster(nodes: 3)
        try await cluster.startAndSettle()
        let data = try await cluster.load(5_000, prefix: "twice")
        let fourth = cluster.addNode()
        let fifth = cluster.addNode()
        try await cluster.startNode(fourth)
        try await cluster.startNode(fifth)
        try await cluster.waitUntilSettled(nodes: [0, 1, 2, 3, 4])
        #expect(try await cluster.mismatches(data).isEmpty)
        try await expectExactHoldings(cluster, Array(data.keys), nodes: [0, 1, 2, 3, 4])
        try await cluster.stop()
    }
}
