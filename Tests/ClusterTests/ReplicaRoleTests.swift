import Etcd
import Foundation
import RPC
import RingProtocol
import Testing
import TestKit
import ZeroMQ

#if canImport(Glibc)
import Glibc
#endif

/// Two placement replicas on one etcd, as real processes: what each says
/// about its role (Health, the operations port), what a follower answers,
/// and a graceful stop handing leadership over at once.
@Suite(.serialized, .timeLimit(.minutes(2))) struct ReplicaRoleTests {
    struct Replica {
        let endpoint: String
        let http: UInt16
        let process: ServiceProcess
    }

    static func start(_ etcd: EtcdCluster, data: URL, index: Int) throws -> Replica {
        let port = FreePort.allocate(), events = FreePort.allocate(), http = FreePort.allocate()
        let endpoint = "tcp://127.0.0.1:\(port)"
        let process = try ServiceProcess("ringstore-placement", [
            "--listen", endpoint, "--publish", "tcp://127.0.0.1:\(events)", "--insecure",
            "--data-dir", data.appendingPathComponent("p\(index)").path, "--http-listen", "127.0.0.1:\(http)",
            "--store", etcd.storeURL, "--leader-ttl", "2", "--etcd-prefix", "/roles",
        ])
        return Replica(endpoint: endpoint, http: http, process: process)
    }

    static func role(_ replica: Replica, context: ZMQContext) async -> String? {
        guard let client = try? RPCClient(context: context, endpoint: replica.endpoint, caller: "role-test") else { return nil }
        defer { client.close() }
        let options = CallOptions(timeout: .seconds(1))
        return try? await client.call(PlacementMethods.health, WireHealthRequest(), options: options).details["role"]
    }

    /// Join requests `replica` answered with `code`.
    static func joins(_ replica: Replica, code: String) throws -> Double {
        OperationsProcessTests.sample(try OperationsProcessTests.metrics(replica.http), "ringstore_rpc_requests_total",
                                      ["method": "/ringstore.v1.Placement/Join", "code": code])
    }

    static func metric(_ replica: Replica, _ line: String) -> Bool {
        (try? HTTPFetch.get(port: replica.http, "/metrics", timeout: .seconds(2)))?.body.contains(line) ?? false
    }

    @Test func aFollowerNamesTheLeaderEverywhereAndAStoppedLeaderHandsOverAtOnce() async throws {
        let etcd = try await EtcdCluster.start()
        defer { etcd.shutdown() }
        let data = FileManager.default.temporaryDirectory.appendingPathComponent("ringstore-roles-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: data) }
        let context = try ZMQContext()
        defer { context.shutdown() }
        let first = try Self.start(etcd, data: data, index: 1)
        try await waitUntil("the first replica to lead", timeout: .seconds(15)) { await Self.role(first, context: context) == "leader" }
        let second = try Self.start(etcd, data: data, index: 2)
        try await waitUntil("the second replica to follow", timeout: .seconds(15)) { await Self.role(second, context: context) == "follower" }

        // Health names the leader.
        let follower = try RPCClient(context: context, endpoint: second.endpoint, caller: "role-test")
        defer { follower.close() }
        let health = try await follower.call(PlacementMethods.health, WireHealthRequest())
        #expect(health.details["leader"] == first.endpoint)
        // A join sent to the follower is refused there (UNAVAILABLE, naming
        // the leader), and the client follows the name: the leader applies it, once.
        let joined = try await follower.call(PlacementMethods.join, WireJoinRequest.with { $0.address = "127.0.0.1:1"; $0.weight = 1 })
        #expect(joined.epoch == 1)
        #expect(try Self.joins(second, code: "UNAVAILABLE") == 1)
        #expect(try Self.joins(second, code: "OK") == 0)
        #expect(try Self.joins(first, code: "OK") == 1)

        // The operations port says the same.
        let cluster = try HTTPFetch.get(port: second.http, "/api/cluster", timeout: .seconds(2))
        #expect(cluster.status == 503)
        #expect(cluster.body.contains(first.endpoint))
        try await waitUntil("the leader gauge on both replicas") {
            Self.metric(first, "ringstore_leader{service=\"placement\"} 1") && Self.metric(second, "ringstore_leader{service=\"placement\"} 0")
        }

        // SIGTERM: the leader revokes its lease, the follower leads well within the 2 s TTL.
        let clock = ContinuousClock()
        let stopped = clock.now
        _ = try await first.process.stop(signal: SIGTERM)
        try await waitUntil("the second replica to lead", timeout: .seconds(10)) { await Self.role(second, context: context) == "leader" }
        #expect(clock.now - stopped < .seconds(2))
        // The new leader has the state: the join made through the old one.
        let leaderNow = try RPCClient(context: context, endpoint: second.endpoint, caller: "role-test")
        defer { leaderNow.close() }
        let members = try await leaderNow.call(PlacementMethods.getMembers, WireGetMembersRequest())
        #expect(members.epoch == 1)
        #expect(members.members.map(\.address) == ["127.0.0.1:1"])
        _ = try await second.process.stop(signal: SIGTERM)
    }
}
