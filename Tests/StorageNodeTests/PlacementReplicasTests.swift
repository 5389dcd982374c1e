import Foundation
import PlacementService
import RPC
import RingProtocol
import StorageNode
import Synchronization
import Testing
import TestKit

/// Storage nodes given every replica of a replicated placement: they join and
/// follow the ring through whichever replica leads (the placement of these
/// tests plays the leader; a follower is a placement whose gate refuses
/// everything but Health and Echo, naming the leader).
@Suite(.serialized, .timeLimit(.minutes(2)))
struct PlacementReplicasTests {
    /// A placement on `listen` and `publish` with its data in `directory`; with
    /// `leader`, a follower that refuses every request but Health and Echo
    /// with not_leader naming it, counting the refusals.
    static func startPlacement(listen: String, publish: String, directory: URL, following leader: String? = nil,
                               refusals: Refusals = Refusals()) async throws -> ReactorHarness {
        let options = PlacementOptions(listen: listen, publish: publish, dataDirectory: directory,
                                       settings: MembershipSettings(suspectAfter: .milliseconds(400), downAfter: .seconds(1)))
        return try await ReactorHarness { reactor in
            let server = try PlacementServer(reactor: reactor, options: options)
            if let leader {
                server.rpc.gate = { method in
                    if method == PlacementMethods.health.path || method == PlacementMethods.echo.path { return nil }
                    refusals.count += 1
                    return .notLeader("placement", leader: leader)
                }
            }
            server.start()
            return (server, server.rpc.endpoint)
        }
    }

    @Test func nodesJoinThroughTheLeaderPastADeadReplicaAndAFollower() async throws {
        let cluster = try InProcessCluster()
        let follower = (listen: FreePort.endpoint(), publish: FreePort.endpoint())
        let refusals = Refusals()
        let followerHarness = try await Self.startPlacement(listen: follower.listen, publish: follower.publish,
                                                            directory: cluster.directory.appendingPathComponent("follower"),
                                                            following: cluster.placementEndpoint, refusals: refusals)
        let dead = (listen: FreePort.endpoint(), publish: FreePort.endpoint())
        let placement = [dead.listen, follower.listen, cluster.placementEndpoint]
        let events = [dead.publish, follower.publish, cluster.placementEvents]
        cluster.configureNode = { options in
            options.placement = placement
            options.placementEvents = events
        }
        // Waits until both are members and each node follows a ring of two.
        try await cluster.start(nodes: 2)
        #expect(refusals.count >= 1, "the nodes went through the follower to the leader it named")
        try await cluster.stop()
        try await followerHarness.stop()
    }

    @Test func aNodeFollowsTheRingThroughALeaderChange() async throws {
        let cluster = try InProcessCluster()
        let second = (listen: FreePort.endpoint(), publish: FreePort.endpoint())
        cluster.configureNode = { options in
            options.placement = [cluster.placementEndpoint, second.listen]
            options.placementEvents = [cluster.placementEvents, second.publish]
        }
        try await cluster.start(nodes: 1)
        // The leader goes; the second replica takes over with its state (here:
        // the same data directory) and a new event incarnation.
        try await cluster.placement.stop()
        let takeover = try await Self.startPlacement(listen: second.listen, publish: second.publish,
                                                     directory: cluster.directory.appendingPathComponent("placement"))
        cluster.nodeEndpoints.append(FreePort.endpoint())
        cluster.nodes.append(try await cluster.startNode(1))
        // Node 0 hears the new member from the new leader (its ring event or a fetch).
        let node = try cluster.client(0)
        defer { node.close() }
        try await waitUntil("node 0 to follow a ring of two from the new leader", timeout: .seconds(30)) {
            try await node.call(StorageMethods.health, WireHealthRequest()).details["ring_members"] == "2"
        }
        for harness in cluster.nodes.compactMap({ $0 }) { try await harness.stop() }
        try await takeover.stop()
        try? FileManager.default.removeItem(at: cluster.directory)
    }
}

/// Refusals a follower made, counted on its reactor thread, read by the test.
final class Refusals: Sendable {
    private let value = Mutex(0)
    var count: Int {
        get { value.withLock { $0 } }
        set { value.withLock { $0 = newValue } }
    }
}
