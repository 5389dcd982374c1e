import Foundation
import RPC
import RingProtocol
import Testing
import TestKit
import ZeroMQ

/// Membership, failure detection and the event stream with the real
/// executables: placement with fast timeouts (suspect 1 s, down 2 s) and
/// nodes heartbeating every 0.1 s.
@Suite(.serialized) struct MembershipProcessTests {
    @Test func threeNodesJoinAndAreListedUp() async throws {
        let cluster = try LocalCluster(nodes: 3)
        try await cluster.start()
        let addresses = (0..<3).map(cluster.nodeAddress)
        try await cluster.waitForMembers(addresses, state: .up)
        let run = try await ToolRun.run("ringctl", ["members"] + cluster.ringctlTarget())
        #expect(run.status == 0, "\(run.stderr)")
        let lines = run.stdout.split(separator: "\n")
        #expect(lines.first?.hasPrefix("ADDRESS") == true)
        for address in addresses {
            #expect(lines.contains { $0.hasPrefix(address) && $0.contains(" up ") })
        }
        let (epoch, members) = try await cluster.members()
        #expect(epoch == 3)
        #expect(Set(members.values.map(\.stateEpoch)) == [1, 2, 3])
        // Every node follows the ring of all three.
        for index in 0..<3 {
            let health = try await nodeHealth(cluster, index)
            #expect(health.details["ring_members"] == "3")
            #expect(health.details["member_state"] == "up")
        }
        try await cluster.stop()
    }

    @Test func aKilledNodeGoesSuspectThenDownInOrderAndComesBackUp() async throws {
        let cluster = try LocalCluster(nodes: 3)
        try await cluster.start()
        try await cluster.waitForMembers((0..<3).map(cluster.nodeAddress), state: .up)
        let victim = cluster.nodeAddress(1)
        let recorder = try EventRecorder(cluster, topics: ["membership"])
        try await recorder.waitUntilConnected(cluster)

        try await cluster.node(1).stop(signal: SIGKILL)
        let down = try await recorder.waitFor(type: "member_down", address: victim)
        let events = recorder.events(for: victim)
        #expect(events.map(\.type) == ["member_suspect", "member_down"])
        #expect(events[0].epoch < events[1].epoch)
        #expect(events[0].seq < events[1].seq)
        #expect(down.epoch == events[1].epoch)

        try await cluster.startNode(1)
        let up = try await recorder.waitFor(type: "member_up", address: victim)
        #expect(up.epoch > down.epoch)
        try await cluster.waitForMembers([victim], state: .up)
        // Down is not removed: the member stayed in the ring all along.
        let ring = try await ring(cluster)
        #expect(ring.ring.members.map(\.address).contains(victim))
        try await cluster.stop()
    }

    @Test func aNodeThatMissesEveryStateEventLearnsMemberStatesFromItsHeartbeats() async throws {
        let cluster = try LocalCluster(nodes: 3)
        try await cluster.startPlacement()
        try await cluster.startLock()
        try await cluster.startNode(0)
        try await cluster.startNode(1)
        // Node 3 subscribes where nothing publishes: it hears no event at all, so
        // it only learns what heartbeat replies (the cluster epoch) make it fetch.
        try await cluster.startNode(2, extraArguments: ["--placement-events", FreePort.endpoint()])
        let addresses = (0..<3).map(cluster.nodeAddress)
        try await cluster.waitForMembers(addresses, state: .up)
        let deaf = try cluster.nodeClient(2)
        defer { deaf.close() }
        func view() async -> [String: String] {
            guard let health = try? await deaf.call(StorageMethods.health, WireHealthRequest()) else { return [:] }
            return Dictionary(health.details["member_states", default: ""].split(separator: ",").compactMap { pair in
                let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
                return parts.count == 2 ? (parts[0], parts[1]) : nil
            }, uniquingKeysWith: { $1 })
        }
        try await waitUntil("node 3 to see every member up") { await view() == Dictionary(uniqueKeysWithValues: addresses.map { ($0, "up") }) }
        // Node 2 dies, is declared down (no ring change), and comes back.
        _ = try await cluster.node(1).stop(signal: SIGKILL)
        try await cluster.waitForMembers([addresses[1]], state: .down)
        try await waitUntil("node 3 to see node 2 down", timeout: .seconds(5)) { await view()[addresses[1]] == "down" }
        try await cluster.startNode(1)
        try await cluster.waitForMembers([addresses[1]], state: .up)
        try await waitUntil("node 3 to see node 2 up again", timeout: .seconds(5)) { await view()[addresses[1]] == "up" }
        try await cluster.stop()
    }

    @Test func aSIGTERMStoppedNodeStaysAMemberAndTheRingIsUnchanged() async throws {
        let cluster = try LocalCluster(nodes: 2)
        try await cluster.start()
        try await cluster.waitForMembers([cluster.nodeAddress(0), cluster.nodeAddress(1)], state: .up)
        let before = try await ring(cluster)
        #expect(try await cluster.node(0).stop() == 0)
        try await cluster.waitForMembers([cluster.nodeAddress(0)], state: .down)
        let after = try await ring(cluster)
        #expect(after.ring.ringEpoch == before.ring.ringEpoch)
        #expect(after.ring.members.map(\.address) == before.ring.members.map(\.address))
        try await cluster.stop()
    }

    @Test func placementRestartKeepsMembershipAndEpochAndDoesNotDeclareEveryoneDown() async throws {
        // Longer timeouts here, so a loaded machine cannot fake a missed heartbeat.
        let cluster = try LocalCluster(nodes: 3, suspectAfter: 1.5, downAfter: 3)
        try await cluster.start()
        let addresses = (0..<3).map(cluster.nodeAddress)
        try await cluster.waitForMembers(addresses, state: .up)
        // The forming cluster's last ring_settled must come before the watcher
        // starts, or it is one of the two events it counts (seen in a full run).
        try await cluster.waitUntilSettled(nodes: [0, 1, 2])
        let before = try await cluster.members()

        // A watcher started before the restart keeps going across it.
        let watch = try ServiceProcess("ringctl", ["watch", "--json", "--count", "2", "--topic", "membership", "--topic", "ring",
                                                   "--placement-events", cluster.placementEvents, "--lock-events", cluster.lockEvents]
                                                  + cluster.ringctlTarget())
        try await waitUntil("the watcher's snapshot") { watch.log.contains("snapshot_ring") }
        #expect(try await cluster.placement.stop() == 0)
        try await cluster.startPlacement()
        let after = try await cluster.members()
        #expect(after.epoch == before.epoch)
        #expect(Set(after.members.keys) == Set(addresses))
        #expect(after.members.values.allSatisfy { $0.state == .up })
        // Heartbeats resume within the suspect timeout: still all up well past it.
        let recorder = try EventRecorder(cluster, topics: ["membership"])
        try await recorder.waitUntilConnected(cluster)
        try await Task.sleep(for: .seconds(cluster.suspectAfter * 2))
        #expect(recorder.events.filter { ["member_suspect", "member_down"].contains($0.type) }.isEmpty)
        let (_, members) = try await cluster.members()
        #expect(members.values.allSatisfy { $0.state == .up })

        // The watcher sees a join that happens after the restart.
        let fourth = cluster.addNode()
        try await cluster.startNode(fourth)
        #expect(try await watch.waitForExit() == 0, "\(watch.log)")
        let events = try jsonLines(watch.log).filter { !(($0["type"] as? String) ?? "").hasPrefix("snapshot") }
        #expect(events.map { $0["type"] as? String } == ["member_joined", "ring_changed"])
        #expect(events.first?["address"] as? String == cluster.nodeAddress(fourth))
        try await cluster.stop()
    }

    @Test func aLateSubscriberSeesTheSnapshotThenOnlyNewerEvents() async throws {
        let cluster = try LocalCluster(nodes: 3)
        try await cluster.start()
        let addresses = (0..<3).map(cluster.nodeAddress)
        try await cluster.waitForMembers(addresses, state: .up)
        let watch = try ServiceProcess("ringctl", ["watch", "--json", "--count", "3", "--topic", "membership",
                                                   "--placement-events", cluster.placementEvents, "--lock-events", cluster.lockEvents]
                                                  + cluster.ringctlTarget())
        // It subscribes before it asks for the snapshot, so once the snapshot
        // is printed every later event reaches it.
        try await waitUntil("the watcher's snapshot") { watch.log.contains("snapshot_ring") }
        let fourth = cluster.addNode()
        try await cluster.startNode(fourth)
        // A node answers Health before its join has reached placement: killed
        // before that, it never joins and no event follows.
        try await cluster.waitForMembers([cluster.nodeAddress(fourth)], state: .up)
        try await cluster.node(fourth).stop(signal: SIGKILL)
        #expect(try await watch.waitForExit() == 0, "\(watch.log)")
        let lines = try jsonLines(watch.log)
        let snapshot = lines.filter { $0["type"] as? String == "snapshot_member" }
        #expect(Set(snapshot.compactMap { $0["address"] as? String }) == Set(addresses))
        let snapshotEpoch = snapshot.first?["epoch"] as? Int ?? 0
        let events = lines.filter { !(($0["type"] as? String) ?? "").hasPrefix("snapshot") }
        #expect(events.map { $0["type"] as? String } == ["member_joined", "member_suspect", "member_down"])
        #expect(events.allSatisfy { ($0["epoch"] as? Int ?? 0) > snapshotEpoch })
        #expect(events.allSatisfy { $0["time"] is String && $0["topic"] is String })
        try await cluster.stop()
    }

    @Test func badMembershipRequestsGetClearErrorsAndChangeNothing() async throws {
        let cluster = try LocalCluster(nodes: 1)
        try await cluster.start()
        let member = cluster.nodeAddress(0)
        try await cluster.waitForMembers([member], state: .up)
        let before = try await cluster.members()
        let placement = cluster.ringctlTarget()
        let cases: [([String], String)] = [
            (["join", member], "already a member"),
            (["leave", "127.0.0.1:1"], "not a member"),
            (["remove", "127.0.0.1:1"], "not a member"),
            (["join", "not-an-address"], "not a valid host:port"),
            (["join", "127.0.0.1:70000"], "not a valid host:port"),
        ]
        for (arguments, message) in cases {
            let run = try await ToolRun.run("ringctl", arguments + placement)
            #expect(run.status != 0, "\(arguments)")
            #expect(run.stderr.contains(message), "\(arguments): \(run.stderr)")
        }
        let after = try await cluster.members()
        #expect(after.epoch == before.epoch)
        // Membership is unchanged (whether the node has caught up yet may have moved on meanwhile).
        func membership(_ members: [String: WireMember]) -> [String: WireMember] {
            members.mapValues { member in
                var member = member
                member.caughtUp = false
                return member
            }
        }
        #expect(membership(after.members) == membership(before.members))

        // A heartbeat from a removed member is refused; the node says so and stays out.
        // The node is up, so the remove needs --force.
        let removed = try await ToolRun.run("ringctl", ["remove", member, "--force"] + placement)
        #expect(removed.status == 0, "\(removed.stderr)")
        try await waitUntil("the node to notice its removal") { cluster.node(0).log.contains("node.removed") }
        #expect(try await cluster.members().members.isEmpty)
        #expect(cluster.node(0).isRunning)
        try await cluster.stop()
    }

    @Test func removeRefusesAnUpMemberUnlessForced() async throws {
        // Failure detection far slower than the test: the live node stays up throughout.
        let cluster = try LocalCluster(nodes: 2, suspectAfter: 30, downAfter: 60)
        try await cluster.start()
        let addresses = (0..<2).map(cluster.nodeAddress)
        let live = addresses[1]
        try await cluster.waitForMembers(addresses, state: .up)
        let before = try await cluster.members()
        let placement = cluster.ringctlTarget()

        let refused = try await ToolRun.run("ringctl", ["remove", live] + placement)
        #expect(refused.status == 1)
        #expect(refused.stdout.isEmpty)
        #expect(refused.stderr == "ringctl: cannot remove \(live): FAILED_PRECONDITION: \(live) is up: remove is for a dead member; "
            + "use leave to take a live one out (it hands its arcs off first), or remove --force\n")
        let after = try await cluster.members()
        #expect(after.epoch == before.epoch)
        #expect(after.members[live]?.state == .up)
        #expect(Set(try await ring(cluster).ring.members.map(\.address)) == Set(addresses))

        let forced = try await ToolRun.run("ringctl", ["remove", live, "--force"] + placement)
        #expect(forced.status == 0, "\(forced.stderr)")
        #expect(forced.stdout.hasPrefix("removed \(live) at epoch "))
        #expect(try await cluster.members().members.keys.sorted() == [addresses[0]])
        #expect(try await ring(cluster).ring.members.map(\.address) == [addresses[0]])
        try await waitUntil("the removed node to notice") { cluster.node(1).log.contains("node.removed") }
        try await cluster.stop()
    }

    @Test func gracefulLeaveLeavesTheRingThenTheMemberIsRemoved() async throws {
        let cluster = try LocalCluster(nodes: 3)
        try await cluster.start()
        let leaver = cluster.nodeAddress(2)
        try await cluster.waitForMembers((0..<3).map(cluster.nodeAddress), state: .up)
        let recorder = try EventRecorder(cluster, topics: ["membership", "ring"])
        try await recorder.waitUntilConnected(cluster)
        let run = try await ToolRun.run("ringctl", ["leave", leaver] + cluster.ringctlTarget())
        #expect(run.status == 0, "\(run.stderr)")
        _ = try await recorder.waitFor(type: "member_removed", address: leaver)
        #expect(recorder.events(for: leaver).map(\.type) == ["member_leaving", "member_removed"])
        #expect(recorder.events.filter { $0.type == "ring_changed" }.count == 1)
        let ring = try await ring(cluster)
        #expect(!ring.ring.members.map(\.address).contains(leaver))
        try await cluster.stop()
    }

    @Test func ringOwnersFromTheLiveRingMatchTheOfflineComputation() async throws {
        let cluster = try LocalCluster(nodes: 3)
        try await cluster.start()
        let addresses = (0..<3).map(cluster.nodeAddress)
        try await cluster.waitForMembers(addresses, state: .up)
        let keys = (0..<50).map { "key-\($0)" }
        let live = try await ToolRun.run("ringctl", ["ring", "owners"] + cluster.ringctlTarget() + keys)
        let offline = try await ToolRun.run("ringctl", ["ring", "owners", "--members", addresses.joined(separator: ","), "--replicas", "3"] + keys)
        #expect(live.status == 0, "\(live.stderr)")
        #expect(live.stdout == offline.stdout)
        #expect(live.stdout.split(separator: "\n").count == 50)
        try await cluster.stop()
    }

    // MARK: Helpers

    func nodeHealth(_ cluster: LocalCluster, _ index: Int) async throws -> WireHealthReply {
        let client = try cluster.nodeClient(index)
        defer { client.close() }
        var reply = WireHealthReply()
        try await waitUntil("node \(index) to follow the ring") {
            reply = try await client.call(StorageMethods.health, WireHealthRequest())
            return reply.details["member_state"] == "up" && reply.details["ring_members"] != "0"
        }
        return reply
    }

    func ring(_ cluster: LocalCluster) async throws -> WireGetRingReply {
        let client = try cluster.rpc(cluster.placementEndpoint)
        defer { client.close() }
        return try await client.call(PlacementMethods.getRing, WireGetRingRequest())
    }

    /// The JSON objects among the lines of `text` (stderr lines are skipped).
    func jsonLines(_ text: String) throws -> [[String: Any]] {
        try text.split(separator: "\n").filter { $0.hasPrefix("{") }.map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any], "not JSON: \($0)")
        }
    }
}
