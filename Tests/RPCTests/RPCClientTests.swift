import Foundation
import RPC
import RingProtocol
import Testing
import TestKit
import ZeroMQ

@Suite struct RPCClientTests {
    @Test func callReturnsTheResponse() async throws {
        let harness = try await TestService.start()
        let client = try RPCClient(context: try ZMQContext(), endpoint: harness.endpoint, caller: "test")
        let reply = try await client.call(TestMethods.echo, payload("hello"))
        #expect(reply.payload == Data("hello".utf8))
        client.close()
        try await harness.stop()
    }

    @Test func manyRequestsInFlightOnOneConnection() async throws {
        let harness = try await TestService.start()
        let client = try RPCClient(context: try ZMQContext(), endpoint: harness.endpoint, caller: "test")
        let replies = try await withThrowingTaskGroup(of: (Int, Data).self) { group in
            for index in 0..<500 {
                group.addTask { (index, try await client.call(TestMethods.echo, payload("n\(index)")).payload) }
            }
            var replies: [Int: Data] = [:]
            for try await (index, data) in group { replies[index] = data }
            return replies
        }
        #expect(replies.count == 500)
        #expect(replies.allSatisfy { index, data in data == Data("n\(index)".utf8) })
        client.close()
        try await harness.stop()
    }

    @Test func outOfOrderRepliesAreMatchedByRequestID() async throws {
        let parkedCount = Counter()
        let service = try await TestService.start(parkedCount: parkedCount)
        let client = try RPCClient(context: try ZMQContext(), endpoint: service.endpoint, caller: "test")
        try await withThrowingTaskGroup(of: (String, Data).self) { group in
            for name in ["a", "b", "c", "d", "e"] {
                group.addTask { (name, try await client.call(TestMethods.parked, payload(name)).payload) }
            }
            // All five are parked before any is answered; then they are answered newest first.
            try await waitUntil("five parked requests") { parkedCount.count == 5 }
            service.withOwner(as: TestService.self) { $0.releaseParked() }
            for try await (name, data) in group {
                #expect(data == Data(name.utf8))
            }
        }
        client.close()
        try await service.stop()
    }

    @Test(.timeLimit(.minutes(1)))  // a hang guard; the status code is the check
    func deadlineExceededWhenTheServerNeverAnswers() async throws {
        let harness = try await TestService.start()
        let client = try RPCClient(context: try ZMQContext(), endpoint: harness.endpoint, caller: "test")
        await #expect(throws: RPCError.self) {
            _ = try await client.call(TestMethods.blackHole, payload("x"), options: CallOptions(timeout: .milliseconds(200)))
        }
        do {
            _ = try await client.call(TestMethods.blackHole, payload("x"), options: CallOptions(timeout: .milliseconds(200)))
        } catch {
            #expect(error.code == .deadlineExceeded)
        }
        // The connection is still good afterwards.
        #expect(try await client.call(TestMethods.echo, payload("after")).payload == Data("after".utf8))
        client.close()
        try await harness.stop()
    }

    @Test func idempotentCallsAreRetriedOnUnavailable() async throws {
        let calls = Counter()
        let harness = try await TestService.start(failures: 2, calls: calls)
        let client = try RPCClient(context: try ZMQContext(), endpoint: harness.endpoint, caller: "test")
        let reply = try await client.call(TestMethods.flakyRead, payload("retry me"),
                                          options: CallOptions(initialBackoff: .milliseconds(5)))
        #expect(reply.payload == Data("retry me".utf8))
        #expect(calls.count == 3)
        client.close()
        try await harness.stop()
    }

    @Test func nonIdempotentCallsAreNeverRetried() async throws {
        let calls = Counter()
        let harness = try await TestService.start(failures: 2, calls: calls)
        let client = try RPCClient(context: try ZMQContext(), endpoint: harness.endpoint, caller: "test")
        do {
            _ = try await client.call(TestMethods.flakyWrite, payload("once"), options: CallOptions(initialBackoff: .milliseconds(5)))
            Issue.record("a failing non-idempotent call must not succeed by retrying")
        } catch {
            #expect(error.code == .unavailable)
            #expect(!error.neverSent)  // the server said UNAVAILABLE: it was sent
        }
        #expect(calls.count == 1)
        client.close()
        try await harness.stop()
    }

    @Test func idempotentRetryStopsAtMaxAttempts() async throws {
        let calls = Counter()
        let harness = try await TestService.start(failures: 100, calls: calls)
        let client = try RPCClient(context: try ZMQContext(), endpoint: harness.endpoint, caller: "test")
        do {
            _ = try await client.call(TestMethods.flakyRead, payload("x"),
                                      options: CallOptions(maxAttempts: 4, initialBackoff: .milliseconds(1)))
            Issue.record("expected UNAVAILABLE")
        } catch {
            #expect(error.code == .unavailable)
        }
        #expect(calls.count == 4)
        client.close()
        try await harness.stop()
    }

    @Test func unreachableServerIsUnavailableNotAHang() async throws {
        let endpoint = FreePort.endpoint()
        let client = try RPCClient(context: try ZMQContext(), endpoint: endpoint, caller: "test")
        do {
            _ = try await client.call(TestMethods.echo, payload("x"), options: CallOptions(timeout: .milliseconds(300)))
            Issue.record("expected UNAVAILABLE")
        } catch {
            #expect(error.code == .unavailable)
            #expect(error.neverSent)
        }
        client.close()
    }

    @Test(.timeLimit(.minutes(1)))  // a hang guard; the status code is the check
    func cancellingTheTaskCancelsTheCall() async throws {
        let parkedCount = Counter()
        let harness = try await TestService.start(parkedCount: parkedCount)
        let client = try RPCClient(context: try ZMQContext(), endpoint: harness.endpoint, caller: "test")
        let task = Task {
            try await client.call(TestMethods.parked, payload("x"), options: CallOptions(timeout: .seconds(30)))
        }
        try await waitUntil("the call to reach the server") { parkedCount.count == 1 }
        task.cancel()
        await Self.expectCancelled(task)
        client.close()
        try await harness.stop()
    }

    /// `task` ends in CANCELLED.
    private static func expectCancelled<Value>(_ task: Task<Value, any Error>, sourceLocation: SourceLocation = #_sourceLocation) async {
        do {
            _ = try await task.value
            Issue.record("expected cancellation", sourceLocation: sourceLocation)
        } catch let error as RPCError {
            #expect(error.code == .cancelled, sourceLocation: sourceLocation)
        } catch {
            Issue.record("expected an RPCError, got \(error)", sourceLocation: sourceLocation)
        }
    }

    @Test func alreadyCancelledTaskFailsAtOnce() async throws {
        let harness = try await TestService.start()
        let client = try RPCClient(context: try ZMQContext(), endpoint: harness.endpoint, caller: "test")
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await client.call(TestMethods.blackHole, payload("x"), options: CallOptions(timeout: .seconds(30)))
        }
        await Self.expectCancelled(task)
        client.close()
        try await harness.stop()
    }

    @Test func closedClientFailsCallsPromptly() async throws {
        let harness = try await TestService.start()
        let client = try RPCClient(context: try ZMQContext(), endpoint: harness.endpoint, caller: "test")
        client.close()
        do {
            _ = try await client.call(TestMethods.echo, payload("x"), options: CallOptions(timeout: .seconds(30)))
            Issue.record("expected UNAVAILABLE")
        } catch {
            #expect(error.code == .unavailable)
        }
        try await harness.stop()
    }

    @Test func aDroppedConnectionFailsTheCallsInFlightAtOnceAsPossiblyApplied() async throws {
        let parkedCount = Counter()
        let harness = try await TestService.start(parkedCount: parkedCount)
        let client = try RPCClient(context: try ZMQContext(), endpoint: harness.endpoint, caller: "test")
        let calls = ["p", "q"].map { name in
            Task { () -> RPCError? in
                do throws(RPCError) {
                    _ = try await client.call(TestMethods.parked, payload(name), options: CallOptions(timeout: .seconds(60)))
                    return nil
                } catch {
                    return error
                }
            }
        }
        try await waitUntil("two parked requests") { parkedCount.count == 2 }
        let clock = ContinuousClock()
        let stopped = clock.now
        try await harness.stop()
        for call in calls {
            let error = await call.value
            // Their deadline is a minute away: only the disconnect can have failed them.
            #expect(error?.code == .unavailable)
            #expect(error?.message.contains("may have been applied") == true, "\(String(describing: error))")
            #expect(error?.neverSent == false)
        }
        let took = clock.now - stopped
        #expect(took < .seconds(20), "failed after \(took)")
        client.close()
    }

    /// A client closed just before its server goes away (as tests that kill a
    /// node do) must not stall the context it shares with other clients.
    @Test func clientsClosedAsTheirServerStopsLeaveTheContextWorking() async throws {
        let context = try ZMQContext()
        for round in 0..<20 {
            let harness = try await TestService.start()
            let client = try RPCClient(context: context, endpoint: harness.endpoint, caller: "test")
            #expect(try await client.call(TestMethods.echo, payload("r\(round)")).payload == Data("r\(round)".utf8))
            client.close()
            try await harness.stop()
        }
        let harness = try await TestService.start()
        let client = try RPCClient(context: context, endpoint: harness.endpoint, caller: "test")
        #expect(try await client.call(TestMethods.echo, payload("after"), options: CallOptions(timeout: .seconds(10))).payload == Data("after".utf8))
        client.close()
        try await harness.stop()
    }
}
