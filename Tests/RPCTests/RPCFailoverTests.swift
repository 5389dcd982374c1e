import Foundation
import RPC
import RingProtocol
import Testing
import TestKit
import ZeroMQ

/// `RPCClient` against a replicated service: real servers on loopback, a
/// leader and followers whose gate refuses with not_leader.
@Suite(.timeLimit(.minutes(1)))  // hang guards; no test measures time
struct RPCFailoverTests {
    @Test func aNonIdempotentCallRefusedByAFollowerGoesToTheLeaderItNamesAndIsAppliedOnce() async throws {
        let leaderRecord = ReplicaRecord(), firstRecord = ReplicaRecord(), secondRecord = ReplicaRecord()
        let leader = try await ReplicaService.start("leader", record: leaderRecord)
        let first = try await ReplicaService.start("first", following: leader.endpoint, record: firstRecord)
        let second = try await ReplicaService.start("second", following: leader.endpoint, record: secondRecord)
        // The leader listed as host:port: the hint (a full endpoint) must match it, not add a fourth.
        let client = try RPCClient(context: try ZMQContext(), endpoints: [first.endpoint, second.endpoint, Endpoint.address(of: leader.endpoint)],
                                   caller: "test")
        #expect(client.endpoint == first.endpoint)
        let reply = try await client.call(ReplicaMethods.write, payload("w1"))
        #expect(reply.replica == "leader")
        #expect(leaderRecord.writes.count == 1)
        // Straight from the first follower to the leader it named, not round the list.
        #expect(firstRecord.refusals.count == 1 && secondRecord.refusals.count == 0)
        #expect(firstRecord.writes.count == 0 && secondRecord.writes.count == 0)
        #expect(client.endpoint == leader.endpoint && client.endpoints.count == 3)
        // The next call goes to the leader at once.
        #expect(try await client.call(ReplicaMethods.write, payload("w2")).replica == "leader")
        #expect(leaderRecord.writes.count == 2 && firstRecord.refusals.count == 1)
        client.close()
        for harness in [leader, first, second] { try await harness.stop() }
    }

    @Test func aLeaderThatIsNotListedIsAddedFromTheRefusal() async throws {
        let leaderRecord = ReplicaRecord()
        let leader = try await ReplicaService.start("leader", record: leaderRecord)
        let follower = try await ReplicaService.start("follower", following: leader.endpoint)
        let client = try RPCClient(context: try ZMQContext(), endpoint: follower.endpoint, caller: "test")
        let reply = try await client.call(ReplicaMethods.write, payload("w"), options: CallOptions(timeout: .seconds(5)))
        #expect(reply.replica == "leader" && leaderRecord.writes.count == 1)
        #expect(client.endpoints == [follower.endpoint, leader.endpoint])
        #expect(client.endpoint == leader.endpoint)
        client.close()
        try await leader.stop()
        try await follower.stop()
    }

    @Test func refusalsWithoutALeaderMoveOnUntilAReplicaServes() async throws {
        let aRecord = ReplicaRecord(), bRecord = ReplicaRecord(), cRecord = ReplicaRecord()
        let a = try await ReplicaService.start("a", following: "", record: aRecord)
        let b = try await ReplicaService.start("b", following: "", record: bRecord)
        let c = try await ReplicaService.start("c", record: cRecord)
        let client = try RPCClient(context: try ZMQContext(), endpoints: [a.endpoint, b.endpoint, c.endpoint], caller: "test")
        let reply = try await client.call(ReplicaMethods.write, payload("w"), options: CallOptions(timeout: .seconds(10)))
        #expect(reply.replica == "c" && cRecord.writes.count == 1)
        #expect(aRecord.refusals.count >= 1 && bRecord.refusals.count >= 1)
        #expect(aRecord.writes.count == 0 && bRecord.writes.count == 0)
        #expect(client.endpoint == c.endpoint)
        client.close()
        for harness in [a, b, c] { try await harness.stop() }
    }

    @Test func withNoLeaderElectedTheCallFailsAtItsDeadlineAsARefusal() async throws {
        let aRecord = ReplicaRecord(), bRecord = ReplicaRecord()
        let a = try await ReplicaService.start("a", following: "", record: aRecord)
        let b = try await ReplicaService.start("b", following: "", record: bRecord)
        let client = try RPCClient(context: try ZMQContext(), endpoints: [a.endpoint, b.endpoint], caller: "test")
        do {
            _ = try await client.call(ReplicaMethods.write, payload("w"), options: CallOptions(timeout: .milliseconds(400)))
            Issue.record("no replica leads: the call must fail")
        } catch {
            #expect(error.code == .unavailable && error.notLeader && error.leader.isEmpty, "\(error)")
        }
        // Asked again and again (with pauses) until the deadline, both replicas.
        #expect(aRecord.refusals.count >= 1 && bRecord.refusals.count >= 1)
        client.close()
        try await a.stop()
        try await b.stop()
    }

    @Test func aReplicaThatNeverListensIsSkippedEvenForANonIdempotentCall() async throws {
        let leaderRecord = ReplicaRecord()
        let leader = try await ReplicaService.start("leader", record: leaderRecord)
        let dead = FreePort.endpoint()
        let client = try RPCClient(context: try ZMQContext(), endpoints: [dead, leader.endpoint], caller: "test")
        let reply = try await client.call(ReplicaMethods.write, payload("w"), options: CallOptions(timeout: .seconds(10)))
        #expect(reply.replica == "leader" && leaderRecord.writes.count == 1)
        #expect(client.endpoint == leader.endpoint)
        client.close()
        try await leader.stop()
    }

    @Test func anIdempotentCallInFlightSurvivesTheLeaderStoppingWhenAnotherReplicaTakesOver() async throws {
        let oldRecord = ReplicaRecord(), newRecord = ReplicaRecord()
        let old = try await ReplicaService.start("old", park: true, record: oldRecord)
        let new = try await ReplicaService.start("new", following: old.endpoint, record: newRecord)
        let client = try RPCClient(context: try ZMQContext(), endpoints: [old.endpoint, new.endpoint], caller: "test")
        let call = Task { try await client.call(ReplicaMethods.read, payload("r"), options: CallOptions(timeout: .seconds(30))) }
        try await waitUntil("the read to be parked on the old leader") { oldRecord.parked.count == 1 }
        new.withOwner(as: ReplicaService.self) { $0.lead() }
        try await old.stop()
        #expect(try await call.value.replica == "new")
        #expect(newRecord.reads.count >= 1 && client.endpoint == new.endpoint)
        client.close()
        try await new.stop()
    }

    @Test func aNonIdempotentCallInFlightWhenTheLeaderGoesFailsAndTheNextCallStartsAtTheNextReplica() async throws {
        let oldRecord = ReplicaRecord(), newRecord = ReplicaRecord()
        let old = try await ReplicaService.start("old", park: true, record: oldRecord)
        let new = try await ReplicaService.start("new", record: newRecord)
        let client = try RPCClient(context: try ZMQContext(), endpoints: [old.endpoint, new.endpoint], caller: "test")
        let call = Task { () -> RPCError? in
            do throws(RPCError) {
                _ = try await client.call(ReplicaMethods.write, payload("w"), options: CallOptions(timeout: .seconds(30)))
                return nil
            } catch {
                return error
            }
        }
        try await waitUntil("the write to be parked on the old leader") { oldRecord.parked.count == 1 }
        try await old.stop()
        let error = await call.value
        #expect(error?.code == .unavailable && error?.message.contains("may have been applied") == true, "\(String(describing: error))")
        #expect(error?.neverSent == false && error?.notLeader == false)
        // Not sent again: it may have been applied.
        #expect(newRecord.writes.count == 0)
        #expect(client.endpoint == new.endpoint)
        #expect(try await client.call(ReplicaMethods.write, payload("w2")).replica == "new")
        #expect(newRecord.writes.count == 1)
        client.close()
        try await new.stop()
    }

    @Test func aClientOfOneEndpointStillWaitsForItsConnection() async throws {
        // A single endpoint waits the whole deadline for its connection (no
        // short per-endpoint wait): the server comes up late and is used.
        let endpoint = FreePort.endpoint()
        let client = try RPCClient(context: try ZMQContext(), endpoint: endpoint, caller: "test")
        let call = Task { try await client.call(ReplicaMethods.write, payload("w"), options: CallOptions(timeout: .seconds(20))) }
        let record = ReplicaRecord()
        let late = try await ReactorHarness { reactor in
            let service = try ReplicaService(reactor: reactor, name: "late", record: record, endpoint: endpoint)
            return (service, service.server.endpoint)
        }
        #expect(try await call.value.replica == "late" && record.writes.count == 1)
        client.close()
        try await late.stop()
    }
}
