import Foundation
import RPC
import Ring
import RingProtocol
import RingstoreClient
import Synchronization
import Testing
import TestKit
import ZeroMQ

/// Locks and fenced writes together on real processes: mutual exclusion for a
/// read-modify-write, and a fencing token that storage nodes enforce so a
/// holder whose lease ran out cannot overwrite its successor.
@Suite(.serialized, .timeLimit(.minutes(10))) struct FencedWriteTests {
    struct Write: Sendable {
        let token: UInt64
        let value: Int
    }

    /// What the clients did, shared between their tasks.
    final class Log: Sendable {
        let writes = Mutex<[Write]>([])
        let refused = Atomic<Int>(0)
    }

    @Test func eightClientsIncrementACounterUnderTheLockThroughALockServiceRestart() async throws {
        let cluster = try LocalCluster(nodes: 3)
        try await cluster.startAndSettle()
        let context = try ZMQContext()
        defer { context.shutdown() }
        let endpoints = ClusterEndpoints(placement: cluster.placementEndpoint, locks: cluster.lockEndpoint,
                                         nodes: (0..<3).map(cluster.nodeAddress))
        let log = Log()
        let clients = 8, rounds = 200
        let key = Array("counter".utf8)

        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<clients {
                group.addTask {
                    let locks = try LockClient(context: cluster.clientContext(context: context), endpoints: endpoints, owner: "client-\(index)")
                    let data = try KeyValueClient(context: cluster.clientContext(context: context), endpoints: endpoints, caller: "client-\(index)")
                    defer { locks.close(); data.close() }
                    var done = 0
                    while done < rounds {
                        // Errors while the lock service restarts: ask again.
                        guard let grant = try? await locks.acquire("counter", ttl: .seconds(10), wait: .seconds(30)) else { continue }
                        do {
                            let current = try await data.get(key: key)
                            let next = (current.found ? Int(String(decoding: current.value, as: UTF8.self)) ?? -1_000_000 : 0) + 1
                            _ = try await data.put(key: key, value: Array("\(next)".utf8), fence: ("counter", grant.token))
                            log.writes.withLock { $0.append(Write(token: grant.token, value: next)) }
                            done += 1
                        } catch let error as RPCError where error.code == .failedPrecondition {
                            log.refused.add(1, ordering: .relaxed)
                        } catch {}
                        try? await locks.release("counter", token: grant.token)
                    }
                }
            }
            // Kill the lock service mid-run and bring it back.
            group.addTask {
                try await waitUntil("a quarter of the increments", timeout: .seconds(300), interval: .milliseconds(50)) {
                    log.writes.withLock { $0.count } >= clients * rounds / 4
                }
                _ = try await cluster.lock.stop(signal: SIGKILL)
                try await cluster.startLock()
            }
            try await group.waitForAll()
        }

        let client = try KeyValueClient(context: cluster.clientContext(context: context), endpoints: endpoints, caller: "checker")
        defer { client.close() }
        let final = try await client.get(key: key)
        #expect(String(decoding: final.value, as: UTF8.self) == "\(clients * rounds)")
        // In token order, the writes counted 1, 2, 3, ...: tokens strictly increase
        // with the counter, none was reused, and no increment was lost.
        let ordered = log.writes.withLock { $0 }.sorted { $0.token < $1.token }
        #expect(ordered.count == clients * rounds)
        #expect(Set(ordered.map(\.token)).count == ordered.count)
        #expect(ordered.map(\.value) == Array(1...(clients * rounds)))
        #expect(log.refused.load(ordering: .relaxed) == 0, "no holder in these runs outlives its lease")
        try await cluster.stop()
    }

    @Test func aHolderPausedPastItsLeaseIsRefusedWhenItWritesWithItsOldToken() async throws {
        let cluster = try LocalCluster(nodes: 3)
        try await cluster.startAndSettle()
        let target = cluster.ringctlTarget()
        let options = target.joined(separator: " ")
        let ringctl = ServiceProcess.binDirectory.appendingPathComponent("ringctl").path
        let tokenFile = cluster.dataDirectory.appendingPathComponent("stale-token")
        // The stale holder: acquires with a 1 s lease, stops itself (SIGSTOP),
        // and writes with its token once continued.
        let script = """
            T=$(\(ringctl) lock acquire fenced --ttl 1 --owner stale \(options)) || exit 3
            echo $T > \(tokenFile.path)
            kill -STOP $$
            exec \(ringctl) put shared stale-write --fence fenced:$T \(options)
            """
        let stale = try ServiceProcess("/bin/sh", ["-c", script])
        try await waitUntil("the holder to stop itself", timeout: .seconds(20)) {
            let stat = (try? String(contentsOfFile: "/proc/\(stale.pid)/stat", encoding: .utf8)) ?? ""
            return stat.split(separator: " ").dropFirst(2).first == "T"
        }
        let staleToken = try #require(UInt64(String(contentsOf: tokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))

        // Its lease runs out while it is stopped; the next owner gets a higher token and writes.
        let acquired = try await ToolRun.run("ringctl", ["lock", "acquire", "fenced", "--ttl", "30", "--wait", "10", "--owner", "successor"]
                                                + target)
        #expect(acquired.status == 0, "\(acquired.stderr)")
        let token = try #require(UInt64(acquired.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(token > staleToken)
        let written = try await ToolRun.run("ringctl", ["put", "shared", "successor-write", "--fence", "fenced:\(token)"] + target)
        #expect(written.status == 0, "\(written.stderr)")

        // Continued, the stale holder writes with its old token and is refused.
        kill(stale.pid, SIGCONT)
        let status = try await stale.waitForExit()
        #expect(status != 0)
        let read = try await ToolRun.run("ringctl", ["get", "shared"] + target)
        #expect(read.stdout == "successor-write\n")
        // Every replica remembers the token: a lower one is refused through any node.
        for index in 0..<3 {
            let client = try cluster.nodeClient(index)
            defer { client.close() }
            let request = WirePutRequest.with {
                $0.key = Data("shared".utf8)
                $0.value = Data("late".utf8)
                $0.fence = WireFence.with { $0.name = "fenced"; $0.token = staleToken }
            }
            await #expect(throws: RPCError.self) { try await client.call(StorageMethods.put, request) }
            let replica = try await client.call(StorageMethods.replicaRead, WireReplicaReadRequest.with { $0.key = Data("shared".utf8) })
            #expect(replica.record.value == Data("successor-write".utf8))
        }
        // The same token again is fine (a holder may write many times).
        let again = try await ToolRun.run("ringctl", ["put", "shared", "second", "--fence", "fenced:\(token)"] + target)
        #expect(again.status == 0, "\(again.stderr)")
        let garbage = try await ToolRun.run("ringctl", ["put", "shared", "x", "--fence", "no-token"] + target)
        #expect(garbage.status != 0 && garbage.stderr.contains("NAME:TOKEN"))
        try await cluster.stop()
    }

    /// A record as a coordinator would send it now, fenced by `name`:`token`.
    static func record(_ key: String, _ value: String, token: UInt64, name: String) -> WireRecord {
        WireRecord.with {
            $0.key = Data(key.utf8)
            $0.value = Data(value.utf8)
            let milliseconds = UInt64(Date().timeIntervalSince1970 * 1000)
            $0.version = WireVersion.with { $0.timestamp = milliseconds << 16; $0.writer = 1 }
            $0.fence = WireFence.with { $0.name = name; $0.token = token }
        }
    }

    @Test func aReplicaThatMissedTheSuccessorsWriteRefusesTheStaleHolderOnceBackAndConvergesOnTheSuccessor() async throws {
        let cluster = try LocalCluster(nodes: 3)
        try await cluster.startAndSettle()
        func put(_ value: String, token: UInt64, through index: Int, w: UInt32 = 0) async throws(RPCError) {
            let client = try? cluster.nodeClient(index)
            defer { client?.close() }
            _ = try await client?.call(StorageMethods.put, WirePutRequest.with {
                $0.key = Data("shared".utf8)
                $0.value = Data(value.utf8)
                $0.quorum = WireQuorum.with { $0.w = w }
                $0.fence = WireFence.with { $0.name = "job"; $0.token = token }
            })
        }
        // The first holder (token 5) writes while every replica is up.
        try await put("holder-5", token: 5, through: 0)
        // Node 3 is stopped; the successor (token 6) writes through node 1 (W=2), node 3 gets a hint.
        _ = try await cluster.node(2).stop()
        try await cluster.waitForMembers([cluster.nodeAddress(2)], state: .down)
        try await put("successor-6", token: 6, through: 0)
        // Node 3 comes back and takes its hints (the successor's record, which carries token 6).
        try await cluster.startNode(2)
        let third = try cluster.nodeClient(2)
        defer { third.close() }
        let read = WireReplicaReadRequest.with { $0.key = Data("shared".utf8) }
        try await waitUntil("node 3 to receive the successor's write by hinted handoff", timeout: .seconds(20)) {
            try await third.call(StorageMethods.replicaRead, read).record.value == Data("successor-6".utf8)
        }
        // The stale holder (token 5, a later clock) writes through every node: every one refuses,
        // node 3 included, and a stale record sent straight to node 3 is refused too.
        for index in 0..<3 {
            do {
                try await put("stale-5", token: 5, through: index, w: 1)
                Issue.record("a stale fenced write through node \(index + 1) was acknowledged")
            } catch {
                #expect(error.code == .failedPrecondition && error.message.contains("stale"), "through node \(index + 1): \(error)")
            }
        }
        let direct = try await third.call(StorageMethods.replicaWrite, WireReplicaWriteRequest.with {
            $0.records = [Self.record("shared", "stale-5", token: 5, name: "job")]
        })
        #expect(direct.refusedBelow == [6])
        // After repair every replica holds the successor's value.
        for index in 0..<3 {
            let client = try cluster.nodeClient(index)
            defer { client.close() }
            _ = try await client.call(StorageMethods.repair, WireRepairRequest(), options: CallOptions(timeout: .seconds(20)))
        }
        for index in 0..<3 {
            let client = try cluster.nodeClient(index)
            defer { client.close() }
            let record = try await client.call(StorageMethods.replicaRead, read).record
            #expect(record.value == Data("successor-6".utf8), "node \(index + 1)")
            #expect(record.fence.token == 6, "node \(index + 1)")
        }
        try await cluster.stop()
    }

    @Test func aNewReplicaLearnsTheFencingTokensOfTheArcsItReceives() async throws {
        let cluster = try LocalCluster(nodes: 3)
        try await cluster.startAndSettle()
        let fourth = cluster.addNode()
        // A key that node 4 will replicate once it joins.
        let members = (0...fourth).map(cluster.nodeAddress)
        let ring = try HashRing(members: members.map { try RingMember(address: $0) })
        let key = try #require((0..<1000).map { "fenced-\($0)" }.first { key in
            try ring.preferenceList(forKey: key, replicas: 3).contains { $0.address == cluster.nodeAddress(fourth) }
        })
        let client = try cluster.nodeClient(0)
        defer { client.close() }
        func put(_ value: String, token: UInt64, through client: RPCClient) async throws(RPCError) {
            _ = try await client.call(StorageMethods.put, WirePutRequest.with {
                $0.key = Data(key.utf8)
                $0.value = Data(value.utf8)
                $0.fence = WireFence.with { $0.name = "job"; $0.token = token }
            })
        }
        try await put("holder-5", token: 5, through: client)

        try await cluster.startNode(fourth)
        try await cluster.waitUntilSettled(nodes: [0, 1, 2, 3])
        let newcomer = try cluster.nodeClient(fourth)
        defer { newcomer.close() }
        // Node 4 got the record and the token: a stale fenced write is refused there too.
        let held = try await newcomer.call(StorageMethods.replicaRead, WireReplicaReadRequest.with { $0.key = Data(key.utf8) })
        #expect(held.record.value == Data("holder-5".utf8))
        let refused = try await newcomer.call(StorageMethods.replicaWrite, WireReplicaWriteRequest.with {
            $0.records = [Self.record(key, "stale", token: 4, name: "job")]
        })
        #expect(refused.applied == [false] && refused.refusedBelow == [5], "node 4 must refuse a record fenced with a stale token")
        await #expect(throws: RPCError.self) { try await put("stale", token: 4, through: newcomer) }
        try await put("holder-6", token: 6, through: newcomer)
        try await cluster.stop()
    }
}
