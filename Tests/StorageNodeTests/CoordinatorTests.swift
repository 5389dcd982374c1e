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
            #expect(error.code == .unavailable)
            #expect(error.message.contains("2 of 3"))
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
}
