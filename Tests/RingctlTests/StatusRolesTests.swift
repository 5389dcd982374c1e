import Foundation
import RPC
import RingProtocol
@testable import RingctlCommands
import RingstoreClient
import Testing
import TestKit

/// `ringctl status` with a replicated control plane: every placement and
/// lock replica asked on its own, shown with its role and pid.
@Suite(.timeLimit(.minutes(1)))  // hang guards; no test measures time
struct StatusRolesTests {
    /// A service answering Health only, as a replica with `details` (role, leader) and `pid`.
    final class HealthOnly {
        let server: RPCServer
        init(reactor: Reactor, method: RPCMethod<WireHealthRequest, WireHealthReply>, service: String, pid: Int32,
             details: [String: String]) throws {
            server = try RPCServer(reactor: reactor, endpoint: "tcp://127.0.0.1:*")
            let address = Endpoint.address(of: server.endpoint)
            server.register(method) { _, _ in
                .reply(WireHealthReply.with {
                    $0.status = .serving
                    $0.service = service
                    $0.address = address
                    $0.version = "test"
                    $0.pid = pid
                    $0.details = details
                })
            }
        }

        static func start(_ method: RPCMethod<WireHealthRequest, WireHealthReply>, service: String, pid: Int32,
                          details: [String: String] = [:]) async throws -> ReactorHarness {
            try await ReactorHarness { reactor in
                let replica = try HealthOnly(reactor: reactor, method: method, service: service, pid: pid, details: details)
                return (replica, replica.server.endpoint)
            }
        }
    }

    @Test func eachReplicaIsShownWithItsRoleAndPid() async throws {
        let leader = try await HealthOnly.start(PlacementMethods.health, service: "placement", pid: 101, details: ["role": "leader"])
        let follower = try await HealthOnly.start(PlacementMethods.health, service: "placement", pid: 102,
                                                  details: ["role": "follower", "leader": leader.endpoint])
        // Today's single lock service says nothing of roles: it is the leader.
        let lock = try await HealthOnly.start(LockMethods.health, service: "lock", pid: 201)
        let deadLock = FreePort.endpoint()
        let endpoints = ClusterEndpoints(placement: "\(leader.endpoint),\(follower.endpoint)", locks: "\(lock.endpoint),\(deadLock)", nodes: [])
        let context = try ClientContext()
        let results = await HealthCheck.run(HealthCheck.targets(for: endpoints), context: context, caller: "test", timeout: .milliseconds(500))
        #expect(results.map(\.endpoint) == [leader.endpoint, follower.endpoint, lock.endpoint, deadLock])
        #expect(results.map(\.replicaRole) == ["leader", "follower", "leader", "unreachable"])
        #expect(HealthCheck.everyServiceHasALeader(results))
        #expect(!StatusCommand.settled(results, ring: nil), "a replica is unreachable")

        let lines = try results.map { result in
            try #require(try JSONSerialization.jsonObject(with: Data(StatusFormatter.json(result).utf8)) as? [String: Any])
        }
        #expect(lines.map { $0["service"] as? String } == ["placement", "placement", "lock", "lock"])
        #expect(lines.map { $0["role"] as? String } == ["leader", "follower", "leader", "unreachable"])
        #expect(lines.map { $0["pid"] as? Int } == [101, 102, 201, nil])
        #expect(lines.map { $0["leader"] as? String } == [leader.endpoint, leader.endpoint, lock.endpoint, nil])
        #expect(lines[3]["status"] as? String == "UNREACHABLE" && lines[3]["healthy"] as? Bool == false)

        let table = StatusFormatter.table(results).split(separator: "\n").map(String.init)
        #expect(table[0].contains("ROLE"))
        #expect(table[2].contains(" follower ") && table[2].contains("leader \(Endpoint.address(of: leader.endpoint))"), "\(table[2])")
        #expect(table[4].contains("unreachable"), "\(table[4])")

        context.shutdown()
        for harness in [leader, follower, lock] { try await harness.stop() }
    }

    @Test func withoutALeaderTheStatusIsNotSettled() async throws {
        let follower = try await HealthOnly.start(PlacementMethods.health, service: "placement", pid: 7,
                                                  details: ["role": "follower", "leader": ""])
        let context = try ClientContext()
        let results = await HealthCheck.run([.placement(follower.endpoint)], context: context, caller: "test", timeout: .seconds(2))
        #expect(results.first?.replicaRole == "follower" && results.first?.leader == "")
        #expect(results.allSatisfy(\.isSettled) && !HealthCheck.everyServiceHasALeader(results))
        #expect(!StatusCommand.settled(results, ring: nil))
        context.shutdown()
        try await follower.stop()
    }

    @Test func placementAndLocksTakeListsOfEndpoints() throws {
        let command = try StatusCommand.parse(["--placement", "a:7400,b:7402", "--locks", "tcp://c:7410", "--lock-events", "c:9000,d:9000"])
        let endpoints = command.cluster.endpoints
        #expect(endpoints.placement == ["tcp://a:7400", "tcp://b:7402"] && endpoints.placementEvents == ["tcp://a:7401", "tcp://b:7403"])
        #expect(endpoints.locks == ["tcp://c:7410"] && endpoints.lockEvents == ["tcp://c:9000", "tcp://d:9000"])
        DataCommandArgumentTests.expectRefused(["status", "--placement", " , "], "--placement: no endpoint in ' , '")
        DataCommandArgumentTests.expectRefused(["status", "--locks", "a:7410,b:x"], "--locks: endpoint 'tcp://b:x' has an invalid port 'x'")
    }
}
