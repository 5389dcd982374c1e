import Foundation
import RPC
import RingProtocol
import Testing
import TestKit

/// `ReactorClient` (a storage node's client of placement) against a
/// replicated service: the same failover rules as `RPCClient`, on a reactor.
@Suite(.timeLimit(.minutes(1)))  // hang guards; no test measures time
struct ReactorClientFailoverTests {
    private func startCaller(to endpoints: [String]) async throws -> ReactorHarness {
        try await ReactorHarness { reactor in
            (CallerHost(client: try ReactorClient(reactor: reactor, endpoints: endpoints, caller: "test")), endpoints[0])
        }
    }

    private func call(_ caller: ReactorHarness, _ method: RPCMethod<WireEchoRequest, WireEchoReply>, _ text: String,
                      timeout: Duration = .seconds(10), into outcomes: CallOutcomes) {
        let request = payload(text)
        caller.withOwner(as: CallerHost.self) { host in
            host.client.call(method, request, timeout: timeout) { outcomes.set(text, $0) }
        }
    }

    @Test func aNonIdempotentCallRefusedByAFollowerGoesToTheLeaderItNames() async throws {
        let leaderRecord = ReplicaRecord(), firstRecord = ReplicaRecord(), secondRecord = ReplicaRecord()
        let leader = try await ReplicaService.start("leader", record: leaderRecord)
        let first = try await ReplicaService.start("first", following: leader.endpoint, record: firstRecord)
        let second = try await ReplicaService.start("second", following: leader.endpoint, record: secondRecord)
        let caller = try await startCaller(to: [first.endpoint, second.endpoint, leader.endpoint])
        let outcomes = CallOutcomes()
        call(caller, ReplicaMethods.write, "w1", into: outcomes)
        try await waitUntil("the write to be answered") { outcomes.count == 1 }
        #expect(try outcomes["w1"]?.get().replica == "leader")
        #expect(leaderRecord.writes.count == 1 && firstRecord.refusals.count == 1 && secondRecord.refusals.count == 0)
        // The next call goes to the leader at once.
        call(caller, ReplicaMethods.write, "w2", into: outcomes)
        try await waitUntil("the second write to be answered") { outcomes.count == 2 }
        #expect(try outcomes["w2"]?.get().replica == "leader")
        #expect(leaderRecord.writes.count == 2 && firstRecord.refusals.count == 1)
        try await caller.stop()
        for harness in [leader, first, second] { try await harness.stop() }
    }

    @Test func aLeaderThatIsNotListedIsAddedFromTheRefusal() async throws {
        let leader = try await ReplicaService.start("leader")
        let follower = try await ReplicaService.start("follower", following: leader.endpoint)
        let caller = try await startCaller(to: [follower.endpoint])
        let outcomes = CallOutcomes()
        call(caller, ReplicaMethods.write, "w", into: outcomes)
        try await waitUntil("the write to be answered") { outcomes.count == 1 }
        #expect(try outcomes["w"]?.get().replica == "leader")
        try await caller.stop()
        try await leader.stop()
        try await follower.stop()
    }

    @Test func refusalsWithoutALeaderAndADeadReplicaAreSkipped() async throws {
        let aRecord = ReplicaRecord(), cRecord = ReplicaRecord()
        let a = try await ReplicaService.start("a", following: "", record: aRecord)
        let c = try await ReplicaService.start("c", record: cRecord)
        let caller = try await startCaller(to: [a.endpoint, FreePort.endpoint(), c.endpoint])
        let outcomes = CallOutcomes()
        call(caller, ReplicaMethods.write, "w", into: outcomes)
        try await waitUntil("the write to be answered") { outcomes.count == 1 }
        #expect(try outcomes["w"]?.get().replica == "c")
        #expect(aRecord.refusals.count >= 1 && cRecord.writes.count == 1)
        try await caller.stop()
        try await a.stop()
        try await c.stop()
    }

    @Test func anIdempotentCallInFlightSurvivesTheLeaderStoppingAndANonIdempotentOneFails() async throws {
        let oldRecord = ReplicaRecord(), newRecord = ReplicaRecord()
        let old = try await ReplicaService.start("old", park: true, record: oldRecord)
        let new = try await ReplicaService.start("new", following: old.endpoint, record: newRecord)
        let caller = try await startCaller(to: [old.endpoint, new.endpoint])
        let outcomes = CallOutcomes()
        call(caller, ReplicaMethods.read, "r", timeout: .seconds(30), into: outcomes)
        call(caller, ReplicaMethods.write, "w", timeout: .seconds(30), into: outcomes)
        try await waitUntil("both calls to be parked on the old leader") { oldRecord.parked.count == 2 }
        new.withOwner(as: ReplicaService.self) { $0.lead() }
        try await old.stop()
        try await waitUntil("both calls to end") { outcomes.count == 2 }
        #expect(try outcomes["r"]?.get().replica == "new")
        let error = outcomes.failure("w")
        #expect(error?.code == .unavailable && error?.message.contains("may have been applied") == true, "\(String(describing: error))")
        #expect(newRecord.writes.count == 0)
        try await caller.stop()
        try await new.stop()
    }
}
