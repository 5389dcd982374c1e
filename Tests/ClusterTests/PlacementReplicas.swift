import Foundation
import RPC
import RingProtocol
import TestKit

#if canImport(Glibc)
import Glibc
#endif

/// Placement's replicas in a `LocalCluster` made replicated by
/// `replicatePlacement(on:replicas:leaderTTL:)`: where they listen, their
/// etcd store, and their processes (nil: not started, or killed and reaped).
final class PlacementReplicaSet: @unchecked Sendable {
    let store: String
    let leaderTTL: Int
    let endpoints: [String]
    let events: [String]
    var processes: [ServiceProcess?]

    init(store: String, leaderTTL: Int, endpoints: [String], events: [String]) {
        self.store = store
        self.leaderTTL = leaderTTL
        self.endpoints = endpoints
        self.events = events
        processes = Array(repeating: nil, count: endpoints.count)
    }
}

/// Starting, asking and killing placement's replicas.
extension LocalCluster {
    private var replicaSet: PlacementReplicaSet {
        get throws {
            guard let placementReplicas else { throw FixtureError("placement is not replicated: call replicatePlacement(on:) first") }
            return placementReplicas
        }
    }

    /// Replica `replica`'s process (it must have been started).
    func placementReplica(_ replica: Int) -> ServiceProcess { placementReplicas!.processes[replica]! }

    /// Starts (or restarts) replica `replica` on its ports and data directory
    /// and waits until it answers Health (a follower does too).
    func startPlacementReplica(_ replica: Int) async throws {
        let set = try replicaSet
        set.processes[replica] = try ServiceProcess("ringstore-placement", placementOptions(replica: replica))
        try await waitHealthy(set.endpoints[replica], PlacementMethods.health)
    }

    /// Replica `replica`'s Health details (`role`, and a follower's `leader`); nil when it does not answer.
    func placementReplicaDetails(_ replica: Int) async throws -> [String: String]? {
        let client = try rpc(try replicaSet.endpoints[replica], caller: "replica-probe")
        defer { client.close() }
        let reply = try? await client.call(PlacementMethods.health, WireHealthRequest(), options: CallOptions(timeout: .milliseconds(500)))
        return reply?.details
    }

    /// The running replicas whose Health says they lead.
    func placementLeaders() async throws -> [Int] {
        let set = try replicaSet
        var leaders: [Int] = []
        for replica in set.endpoints.indices where set.processes[replica]?.isRunning == true {
            if try await placementReplicaDetails(replica)?["role"] == "leader" { leaders.append(replica) }
        }
        return leaders
    }

    /// Waits until exactly one running replica other than `excluded` leads, and
    /// returns it.
    func waitForPlacementLeader(excluding excluded: Int? = nil, timeout: Duration = .seconds(20)) async throws -> Int {
        var leader = -1
        try await waitUntil("a placement replica other than \(excluded.map(String.init) ?? "none") to lead", timeout: timeout,
                            interval: .milliseconds(25)) {
            let leaders = try await placementLeaders()
            guard leaders.count == 1, leaders[0] != excluded else { return false }
            leader = leaders[0]
            return true
        }
        return leader
    }

    /// Kills replica `replica` with SIGKILL and waits until it is gone.
    func killPlacementReplica(_ replica: Int) async throws {
        try await placementReplica(replica).stop(signal: SIGKILL)
    }
}
