import Foundation
import RPC
import Ring
import RingProtocol
import Testing
import TestKit
import ZeroMQ

/// Reads and writes on a real 3-node cluster (N=3, W=2, R=2).
@Suite(.serialized) struct StorageProcessTests {
    func put(_ client: RPCClient, _ key: [UInt8], _ value: [UInt8], w: UInt32 = 0) async throws(RPCError) -> WirePutReply {
        try await client.call(StorageMethods.put, WirePutRequest.with {
            $0.key = Data(key)
            $0.value = Data(value)
            $0.quorum.w = w
        })
    }

    func get(_ client: RPCClient, _ key: [UInt8], r: UInt32 = 0) async throws(RPCError) -> WireGetReply {
        try await client.call(StorageMethods.get, WireGetRequest.with {
            $0.key = Data(key)
            $0.quorum.r = r
        })
    }

    @Test func putGetDeleteFromAnyNodeWithBinaryKeysAndValues() async throws {
        let cluster = try LocalCluster(nodes: 3)
        try await cluster.startAndSettle()
        let clients = try (0..<3).map(cluster.nodeClient)
        defer { clients.forEach { $0.close() } }

        let reply = try await put(clients[0], Array("greeting".utf8), Array("hello".utf8))
        #expect(reply.acks >= 2)
        for client in clients {
            let value = try await get(client, Array("greeting".utf8))
            #expect(value.found && value.value == Data("hello".utf8))
            #expect(value.version == reply.version)
        }
        // Binary bytes round-trip exactly, including NUL, tab, newline and invalid UTF-8.
        let key: [UInt8] = [0x00, 0xFF, 0x09, 0x0A, 0xC3, 0x28]
        let value: [UInt8] = (0...255).map { UInt8($0) } + [0x00, 0x00]
        _ = try await put(clients[1], key, value)
        let read = try await get(clients[2], key)
        #expect([UInt8](read.value) == value)

        // Delete, then every node says not found.
        _ = try await clients[2].call(StorageMethods.delete, WireDeleteRequest.with { $0.key = Data("greeting".utf8) })
        for client in clients {
            #expect(try await get(client, Array("greeting".utf8)).found == false)
        }
        #expect(try await get(clients[0], Array("never-written".utf8)).found == false)
        try await cluster.stop()
    }

    @Test func tombstonesArePurgedAfterTheGracePeriod() async throws {
        let cluster = try LocalCluster(nodes: 3)
        cluster.nodeArguments = ["--tombstone-grace", "1"]
        try await cluster.startAndSettle()
        let client = try cluster.nodeClient(0)
        defer { client.close() }
        _ = try await put(client, Array("short-lived".utf8), Array("x".utf8), w: 3)
        _ = try await client.call(StorageMethods.delete, WireDeleteRequest.with { $0.key = Data("short-lived".utf8); $0.quorum.w = 3 })
        #expect(try await cluster.stats(0).tombstones == 1)
        try await waitUntil("the tombstones to be purged on every replica") {
            var total: UInt64 = 0
            for index in 0..<3 { total += try await cluster.stats(index).tombstones }
            return total == 0
        }
        #expect(try await get(client, Array("short-lived".utf8)).found == false)
        try await cluster.stop()
    }

    @Test func ringctlPutGetDelAndBulkModesRoundTrip() async throws {
        let cluster = try LocalCluster(nodes: 3)
        try await cluster.startAndSettle()
        let target = cluster.ringctlTarget()
        #expect(try await ToolRun.run("ringctl", ["put", "k", "v"] + target).status == 0)
        let got = try await ToolRun.run("ringctl", ["get", "k"] + target)
        #expect(got.status == 0 && got.stdout == "v\n")
        #expect(try await ToolRun.run("ringctl", ["del", "k"] + target).status == 0)
        let gone = try await ToolRun.run("ringctl", ["get", "k"] + target)
        #expect(gone.status == 1 && gone.stdout.isEmpty && gone.stderr.contains("not found"))

        let count = 2000
        let lines = (0..<count).map { "bulk-\($0)\tvalue-\($0)" }
        let put = try await ToolRun.run("ringctl", ["put", "--stdin"] + target, stdin: lines.joined(separator: "\n") + "\n")
        #expect(put.status == 0, "\(put.stderr)")
        #expect(Set(put.stdout.split(separator: "\n").map(String.init)) == Set((0..<count).map { "bulk-\($0)\tOK" }))
        let keys = (0..<count).map { "bulk-\($0)" } + ["never-put"]
        let get = try await ToolRun.run("ringctl", ["get", "--stdin"] + target, stdin: keys.joined(separator: "\n") + "\n")
        #expect(Set(get.stdout.split(separator: "\n").map(String.init)) == Set(lines + ["never-put\tNOT_FOUND"]))
        // Malformed input lines get an ERROR line each, and a non-zero exit.
        let bad = try await ToolRun.run("ringctl", ["put", "--stdin"] + target, stdin: "no-tab-here\n\tempty-key\nfine\tyes\n")
        #expect(bad.status != 0)
        #expect(bad.stdout.split(separator: "\n").filter { $0.contains("ERROR") }.count == 2)
        #expect(bad.stdout.contains("fine\tOK"))
        try await cluster.stop()
    }

    @Test func badRequestsAreRefusedAndNothingIsStored() async throws {
        let cluster = try LocalCluster(nodes: 3)
        try await cluster.startAndSettle()
        let client = try cluster.nodeClient(0)
        defer { client.close() }
        let cases: [(String, WirePutRequest)] = [
            ("empty key", WirePutRequest.with { $0.value = Data("v".utf8) }),
            ("oversize key", WirePutRequest.with { $0.key = Data(repeating: 1, count: 1025); $0.value = Data("v".utf8) }),
            ("oversize value", WirePutRequest.with { $0.key = Data("k".utf8); $0.value = Data(repeating: 1, count: (1 << 20) + 1) }),
            ("W above N", WirePutRequest.with { $0.key = Data("k".utf8); $0.quorum.w = 4 }),
            ("N above 16", WirePutRequest.with { $0.key = Data("k".utf8); $0.quorum.n = 17 }),
        ]
        for (name, request) in cases {
            do {
                _ = try await client.call(StorageMethods.put, request)
                Issue.record("\(name): accepted")
            } catch {
                #expect(error.code == .invalidArgument, "\(name): \(error)")
            }
        }
        let limit = try await put(client, Array("k".utf8), [UInt8](repeating: 7, count: 1 << 20))  // exactly the limit
        #expect(limit.acks >= 2)
        // Only the one valid key, on three replicas (W=2: the third may apply it after the reply).
        try await waitUntil("the valid key on all three replicas") {
            var keys: UInt64 = 0
            for index in 0..<3 { keys += try await cluster.stats(index).liveKeys }
            #expect(keys <= 3)
            return keys == 3
        }
        try await cluster.stop()
    }

    @Test func withOneNodeKilledQuorumsHoldHintsPileUpAndDrainOnRestart() async throws {
        let cluster = try LocalCluster(nodes: 3)
        try await cluster.startAndSettle()
        let client = try cluster.nodeClient(0)
        defer { client.close() }
        try await cluster.node(2).stop(signal: SIGKILL)
        // Once placement says it is down, coordinators hint at once instead of
        // waiting for the replica timeout.
        try await cluster.waitForMembers([cluster.nodeAddress(2)], state: .down)

        let keys = (0..<200).map { Array("missed-\($0)".utf8) }
        for key in keys {
            let reply = try await put(client, key, key + Array("-value".utf8), w: 2)
            #expect(reply.acks == 2)
        }
        for key in keys {
            let reply = try await get(client, key, r: 2)
            #expect(reply.found && [UInt8](reply.value) == key + Array("-value".utf8))
        }
        // One hint per missed write, all for the dead node, all on the coordinator.
        try await waitUntil("200 hints for the dead node") {
            try await cluster.stats(0).hintsByTarget[cluster.nodeAddress(2)] == 200
        }
        #expect(try await cluster.stats(0).hintsPending == 200)

        try await cluster.startNode(2)
        try await waitUntil("the hints to drain", timeout: .seconds(30)) {
            try await cluster.stats(0).hintsPending == 0
        }
        // The restarted node holds every write it missed.
        let restarted = try cluster.nodeClient(2)
        defer { restarted.close() }
        var missing: [String] = []
        for key in keys {
            let reply = try await restarted.call(StorageMethods.replicaRead, WireReplicaReadRequest.with { $0.key = Data(key) })
            if !(reply.found && [UInt8](reply.record.value) == key + Array("-value".utf8)) { missing.append(String(decoding: key, as: UTF8.self)) }
        }
        #expect(missing.isEmpty, "missing on the restarted node: \(missing)")
        try await cluster.stop()
    }

    @Test func missedWritesGoToTheNextMemberOnTheRingAsHints() async throws {
        let cluster = try LocalCluster(nodes: 4)
        try await cluster.startAndSettle()
        let dead = cluster.nodeAddress(3)
        try await cluster.node(3).stop(signal: SIGKILL)
        try await cluster.waitForMembers([dead], state: .down)
        let client = try cluster.nodeClient(0)
        defer { client.close() }
        // Where each key's hint should land: the first member past its 3 replicas.
        let ring = try HashRing(members: (0..<4).map { try RingMember(address: cluster.nodeAddress($0)) })
        var expected: [String: UInt64] = [:]
        let keys = (0..<120).map { Array("handoff-\($0)".utf8) }
        for key in keys {
            let order = try ring.preferenceList(forKey: key, replicas: 4).map(\.address)
            if order.prefix(3).contains(dead) { expected[order[3], default: 0] += 1 }
            _ = try await put(client, key, key, w: 2)
        }
        #expect(!expected.isEmpty)
        try await waitUntil("hints on the stand-ins") {
            var held: [String: UInt64] = [:]
            for index in 0..<3 { held[cluster.nodeAddress(index)] = try await cluster.stats(index).hintsByTarget[dead] }
            return held.filter { $0.value > 0 } == expected
        }
        try await cluster.startNode(3)
        try await waitUntil("the stand-ins to deliver their hints", timeout: .seconds(30)) {
            var pending: UInt64 = 0
            for index in 0..<3 { pending += try await cluster.stats(index).hintsPending }
            return pending == 0
        }
        let restarted = try cluster.nodeClient(3)
        defer { restarted.close() }
        for key in keys where try ring.preferenceList(forKey: key, replicas: 3).map(\.address).contains(dead) {
            let reply = try await restarted.call(StorageMethods.replicaRead, WireReplicaReadRequest.with { $0.key = Data(key) })
            #expect(reply.found && [UInt8](reply.record.value) == key)
        }
        try await cluster.stop()
    }

    @Test func aReplicaAnsweringGarbageCountsAsFailedAndNothingBreaks() async throws {
        let cluster = try LocalCluster(nodes: 3)
        try await cluster.startAndSettle()
        let fake = try GarbageReplica(serverKeys: cluster.keys?.server)
        let placement = try cluster.rpc(cluster.placementEndpoint)
        defer { placement.close() }
        _ = try await placement.call(PlacementMethods.join, WireJoinRequest.with { $0.address = fake.address })
        // Keep the fake member up: heartbeat on its behalf.
        let heartbeats = Task {
            while !Task.isCancelled {
                _ = try? await placement.call(PlacementMethods.heartbeat, WireHeartbeatRequest.with { $0.address = fake.address })
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
        defer { heartbeats.cancel() }
        let client = try cluster.nodeClient(0)
        defer { client.close() }
        try await waitUntil("node 0 to route to four members") {
            try await client.call(StorageMethods.health, WireHealthRequest()).details["ring_members"] == "4"
        }
        for index in 0..<40 {
            let key = Array("garbage-\(index)".utf8)
            #expect(try await put(client, key, key, w: 2).acks >= 2)
            let read = try await get(client, key, r: 2)
            #expect(read.found && [UInt8](read.value) == key)
        }
        #expect(fake.requestCount > 0)
        for index in 0..<3 { #expect(cluster.node(index).isRunning) }
        try await fake.stop()
        try await cluster.stop()
    }

    @Test func readRepairFixesAStaleReplica() async throws {
        let cluster = try LocalCluster(nodes: 3)
        try await cluster.startAndSettle()
        let clients = try (0..<3).map(cluster.nodeClient)
        defer { clients.forEach { $0.close() } }
        let key = Data("repair-me".utf8)
        let old = try await clients[0].call(StorageMethods.put, WirePutRequest.with { $0.key = key; $0.value = Data("old".utf8); $0.quorum.w = 3 })
        // A newer version reaches nodes 0 and 2 only, replica to replica, so no
        // coordinator stores a hint: only a read can repair node 1.
        let newer = WireRecord.with {
            $0.key = key
            $0.value = Data("new".utf8)
            $0.version.timestamp = old.version.timestamp + 1000
            $0.version.writer = 1
        }
        for index in [0, 2] {
            _ = try await clients[index].call(StorageMethods.replicaWrite, WireReplicaWriteRequest.with { $0.records = [newer] })
        }
        let before = try await clients[1].call(StorageMethods.replicaRead, WireReplicaReadRequest.with { $0.key = key })
        #expect(before.record.value == Data("old".utf8))

        let reply = try await get(clients[0], Array(key), r: 3)
        #expect(reply.found && reply.value == Data("new".utf8))
        try await waitUntil("node 1 to be repaired") {
            let read = try await clients[1].call(StorageMethods.replicaRead, WireReplicaReadRequest.with { $0.key = key })
            return read.found && read.record.value == Data("new".utf8) && read.record.version == newer.version
        }
        try await cluster.stop()
    }

    @Test(arguments: ["full", "normal"])
    func killingEveryNodeRightAfterAcknowledgedWritesLosesNone(sync: String) async throws {
        let cluster = try LocalCluster(nodes: 3)
        cluster.nodeArguments = ["--sync", sync]
        try await cluster.startAndSettle()
        let client = try cluster.nodeClient(0)
        let keys = (0..<300).map { Array("durable-\($0)".utf8) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for chunk in stride(from: 0, to: keys.count, by: 30) {
                group.addTask {
                    for key in keys[chunk..<min(chunk + 30, keys.count)] {
                        _ = try await put(client, key, key, w: 2)
                    }
                }
            }
            try await group.waitForAll()
        }
        client.close()
        // Every write above was acknowledged by two replicas: kill -9 everyone at once.
        for index in 0..<3 { try await cluster.node(index).stop(signal: SIGKILL) }
        for index in 0..<3 { try await cluster.startNode(index) }
        try await cluster.waitForMembers((0..<3).map(cluster.nodeAddress), state: .up)
        let reader = try cluster.nodeClient(1)
        defer { reader.close() }
        var missing = 0
        for key in keys {
            let reply = try await get(reader, key, r: 2)
            if !(reply.found && [UInt8](reply.value) == key) { missing += 1 }
        }
        #expect(missing == 0)
        try await cluster.stop()
    }
}
