import Foundation
import PlacementService
import RPC
import RingProtocol
import StorageEngine
import StorageNode
import Testing
import TestKit
import ZeroMQ

/// The coordinator in process: placement and three nodes run as reactors on
/// threads of this test process, talking over real ZeroMQ sockets on loopback.
final class InProcessCluster: @unchecked Sendable {
    let placementEndpoint = FreePort.endpoint()
    let placementEvents = FreePort.endpoint()
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("coordinator-\(UUID().uuidString)")
    var placement: ReactorHarness!
    var nodes: [ReactorHarness?] = []
    var nodeEndpoints: [String] = []
    let context: ZMQContext
    let settings: MembershipSettings
    /// Adjusts every node's options (e.g. migration batch size).
    var configureNode: @Sendable (inout StorageNodeOptions) -> Void = { _ in }

    init(settings: MembershipSettings = MembershipSettings(suspectAfter: .milliseconds(400), downAfter: .seconds(1))) throws {
        context = try ZMQContext()
        self.settings = settings
    }

    func startPlacement() async throws {
        let options = PlacementOptions(listen: placementEndpoint, publish: placementEvents,
                                       dataDirectory: directory.appendingPathComponent("placement"),
                                       settings: settings)
        placement = try await ReactorHarness { reactor in
            let server = try PlacementServer(reactor: reactor, options: options)
            server.start()
            return (server, server.rpc.endpoint)
        }
    }

    /// Starts placement and `count` nodes (on `nodeEndpoints` where set, free ports otherwise).
    func start(nodes count: Int) async throws {
        try await startPlacement()
        for index in 0..<count {
            if nodeEndpoints.count <= index { nodeEndpoints.append(FreePort.endpoint()) }
            nodes.append(try await startNode(index))
        }
        let client = try RPCClient(context: context, endpoint: placementEndpoint, caller: "test")
        defer { client.close() }
        try await waitUntil("three members in the ring") {
            try await client.call(PlacementMethods.getRing, WireGetRingRequest()).ring.members.count == count
        }
        for index in 0..<count {
            let node = try self.client(index)
            defer { node.close() }
            try await waitUntil("node \(index) to follow the ring") {
                try await node.call(StorageMethods.health, WireHealthRequest()).details["ring_members"] == "\(count)"
            }
        }
    }

    func startNode(_ index: Int) async throws -> ReactorHarness {
        var configured = StorageNodeOptions(listen: nodeEndpoints[index], placement: placementEndpoint, placementEvents: placementEvents,
                                         heartbeatInterval: .milliseconds(100),
                                         dataDirectory: directory.appendingPathComponent("node-\(index)"), sync: .normal,
                                         replicaTimeout: .milliseconds(500))
        configureNode(&configured)
        let options = configured
        return try await ReactorHarness { reactor in
            let server = try StorageNodeServer(reactor: reactor, options: options)
            server.start()
            return (server, server.rpc.endpoint)
        }
    }

    func client(_ index: Int) throws -> RPCClient {
        try RPCClient(context: context, endpoint: nodeEndpoints[index], caller: "test")
    }

    func stop() async throws {
        for node in nodes.compactMap({ $0 }) { try await node.stop() }
        try await placement.stop()
        try? FileManager.default.removeItem(at: directory)
    }
}

@Suite(.serialized) struct CoordinatorTests {
    func put(_ client: RPCClient, _ key: String, _ value: String, configure: (inout WirePutRequest) -> Void = { _ in })
        async throws(RPCError) -> WirePutReply {
        var request = WirePutRequest.with {
            $0.key = Data(key.utf8)
            $0.value = Data(value.utf8)
        }
        configure(&request)
        return try await client.call(StorageMethods.put, request)
    }

    @Test func quorumWritesAndReadsThroughAnyNode() async throws {
        let cluster = try InProcessCluster()
        try await cluster.start(nodes: 3)
        let clients = try (0..<3).map(cluster.client)
        defer { clients.forEach { $0.close() } }
        let reply = try await put(clients[0], "alpha", "1")
        #expect(reply.acks >= 2)
        for client in clients {
            let read = try await client.call(StorageMethods.get, WireGetRequest.with { $0.key = Data("alpha".utf8) })
            #expect(read.found && read.value == Data("1".utf8) && read.replies >= 2)
        }
        // W=3 waits for all three.
        #expect(try await put(clients[1], "beta", "2") { $0.quorum.w = 3 }.acks == 3)
        try await cluster.stop()
    }

    @Test func conditionalPutsCompareTheCurrentVersion() async throws {
        let cluster = try InProcessCluster()
        try await cluster.start(nodes: 3)
        let client = try cluster.client(0)
        defer { client.close() }
        let first = try await put(client, "counter", "1") { $0.ifAbsent = true }
        await #expect(throws: RPCError.self) { try await put(client, "counter", "x") { $0.ifAbsent = true } }
        do {
            _ = try await put(client, "counter", "x") { $0.ifVersion = WireVersion.with { $0.timestamp = 1; $0.writer = 1 } }
            Issue.record("a stale version must be refused")
        } catch {
            #expect(error.code == .failedPrecondition)
        }
        let second = try await put(client, "counter", "2") { $0.ifVersion = first.version }
        #expect(second.version.timestamp > first.version.timestamp)
        let read = try await client.call(StorageMethods.get, WireGetRequest.with { $0.key = Data("counter".utf8) })
        #expect(read.value == Data("2".utf8))
        try await cluster.stop()
    }

    @Test func aBatchedReplicaReadAnswersEveryKeyInOrderAndRefusesBadBatches() async throws {
        let cluster = try InProcessCluster()
        try await cluster.start(nodes: 3)
        let client = try cluster.client(0)
        defer { client.close() }
        // W=3: every replica, node 0 included, has both before the read.
        _ = try await put(client, "a", "1") { $0.quorum.w = 3 }
        _ = try await put(client, "c", "3") { $0.quorum.w = 3 }
        let keys = ["a", "b", "c", "a"].map { Data($0.utf8) }
        let reply = try await client.call(StorageMethods.replicaRead, WireReplicaReadRequest.with { $0.keys = keys })
        #expect(reply.answers.map(\.found) == [true, false, true, true])
        #expect(reply.answers.map(\.record.value) == [Data("1".utf8), Data(), Data("3".utf8), Data("1".utf8)])
        #expect(reply.answers[0].record.key == Data("a".utf8) && reply.answers[2].record.key == Data("c".utf8))
        // A plain one-key read still answers in the old fields.
        let single = try await client.call(StorageMethods.replicaRead, WireReplicaReadRequest.with { $0.key = Data("c".utf8) })
        #expect(single.found && single.record.value == Data("3".utf8) && single.answers.isEmpty)
        for (bad, reason) in [([Data("a".utf8), Data()], "the key is empty"),
                              ((0..<129).map { Data("k\($0)".utf8) }, "129 keys in one ReplicaRead")] {
            do {
                _ = try await client.call(StorageMethods.replicaRead, WireReplicaReadRequest.with { $0.keys = bad })
                Issue.record("a batch with \(reason) must be refused")
            } catch {
                #expect(error.code == .invalidArgument && error.message.contains(reason), "\(error)")
            }
        }
        try await cluster.stop()
    }

    @Test func aStoppedReplicaGetsHintsAndQuorumsStillHold() async throws {
        let cluster = try InProcessCluster()
        try await cluster.start(nodes: 3)
        let client = try cluster.client(0)
        defer { client.close() }
        try await cluster.nodes[2]?.stop()
        cluster.nodes[2] = nil
        for index in 0..<20 {
            #expect(try await put(client, "k\(index)", "v\(index)") { $0.quorum.w = 2 }.acks == 2)
        }
        do {
            _ = try await put(client, "needs-three", "x") { $0.quorum.w = 3 }
            Issue.record("W=3 with a replica down must fail")
        } catch {
            // Either the two live replicas acknowledged first ("2 of 3"), or the
            // coordinator already knew node 2 was down and failed at once ("0 of 3"):
            // both name the missing replica and the quorum.
            #expect(error.code == .unavailable)
            #expect(error.message.contains("3 needed"))
            #expect(error.message.contains(cluster.nodeEndpoints[2].replacingOccurrences(of: "tcp://", with: "")))
        }
        try await waitUntil("hints for the stopped node") {
            try await client.call(StorageMethods.stats, WireStatsRequest()).hintsPending == 21
        }
        // Back up: the hints drain into it.
        cluster.nodes[2] = try await cluster.startNode(2)
        try await waitUntil("hints to drain", timeout: .seconds(20)) {
            try await client.call(StorageMethods.stats, WireStatsRequest()).hintsPending == 0
        }
        let restarted = try cluster.client(2)
        defer { restarted.close() }
        #expect(try await restarted.call(StorageMethods.stats, WireStatsRequest()).liveKeys == 21)
        try await cluster.stop()
    }

    @Test func oneClientsOverwritesThroughAlternatingCoordinatorsStayInOrder() async throws {
        let cluster = try InProcessCluster()
        try await cluster.start(nodes: 3)
        let clients = try (0..<3).map(cluster.client)
        defer { clients.forEach { $0.close() } }
        // The client library's session context: the highest version timestamp seen, sent with each write.
        var seen: UInt64 = 0
        var previous = WireVersion()
        var outOfOrder: [Int] = []
        let writes = 10_000
        for index in 0..<writes {
            let reply = try await put(clients[index % 3], "hot", "\(index)") { $0.seenTimestamp = seen; $0.quorum.w = 1 }
            if (reply.version.timestamp, reply.version.writer) <= (previous.timestamp, previous.writer) { outOfOrder.append(index) }
            previous = reply.version
            seen = max(seen, reply.version.timestamp)
        }
        #expect(outOfOrder.isEmpty, "writes ordered before their predecessor: \(outOfOrder.prefix(10)) of \(outOfOrder.count)")
        // The last write wins on every replica.
        for client in clients {
            let read = try await client.call(StorageMethods.get, WireGetRequest.with { $0.key = Data("hot".utf8); $0.quorum.r = 3 })
            #expect(read.value == Data("\(writes - 1)".utf8))
        }
        try await cluster.stop()
    }

    @Test func timestampsTooFarAheadAreRefusedAndDoNotDragTheClock() async throws {
        let cluster = try InProcessCluster()
        cluster.configureNode = { $0.maxClockDrift = .seconds(5) }
        try await cluster.start(nodes: 3)
        let client = try cluster.client(0)
        defer { client.close() }
        let nowMillis = UInt64(Date().timeIntervalSince1970 * 1000)
        let anHourAhead = (nowMillis + 3_600_000) << 16
        // A client's session context an hour ahead.
        do {
            _ = try await put(client, "k", "v") { $0.seenTimestamp = anHourAhead }
            Issue.record("a session timestamp an hour ahead was accepted")
        } catch {
            #expect(error.code == .invalidArgument && error.message.contains("ahead"), "\(error)")
        }
        // A replica write stamped an hour ahead (it would pin the key for an hour).
        do {
            _ = try await client.call(StorageMethods.replicaWrite, WireReplicaWriteRequest.with {
                $0.records = [WireRecord.with {
                    $0.key = Data("k".utf8)
                    $0.value = Data("from the future".utf8)
                    $0.version = WireVersion.with { $0.timestamp = anHourAhead; $0.writer = 1 }
                }]
            })
            Issue.record("a replica write an hour ahead was accepted")
        } catch {
            #expect(error.code == .invalidArgument && error.message.contains("ahead"), "\(error)")
        }
        // Within the drift is fine.
        _ = try await put(client, "k", "near") { $0.seenTimestamp = (nowMillis + 1000) << 16 }
        // The clock was not dragged: a new write is stamped near the wall clock, and wins.
        let reply = try await put(client, "k", "now")
        let stampedMillis = reply.version.timestamp >> 16
        #expect(stampedMillis < UInt64(Date().timeIntervalSince1970 * 1000) + 5_000, "stamped \(stampedMillis), now \(nowMillis)")
        let read = try await client.call(StorageMethods.get, WireGetRequest.with { $0.key = Data("k".utf8) })
        #expect(read.value == Data("now".utf8))
        try await cluster.stop()
    }
}
