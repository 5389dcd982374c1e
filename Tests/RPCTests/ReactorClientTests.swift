import Foundation
import RPC
import RingProtocol
import Synchronization
import Testing
import TestKit
import ZeroMQ

/// The outcomes of calls made on a reactor thread, for the test to read.
final class CallOutcomes: Sendable {
    private let results = Mutex<[String: Result<WireEchoReply, RPCError>]>([:])
    func set(_ key: String, _ result: Result<WireEchoReply, RPCError>) { results.withLock { $0[key] = result } }
    subscript(key: String) -> Result<WireEchoReply, RPCError>? { results.withLock { $0[key] } }
    var count: Int { results.withLock { $0.count } }

    /// The error `key`'s call failed with; records an issue when it did not fail.
    func failure(_ key: String, sourceLocation: SourceLocation = #_sourceLocation) -> RPCError? {
        guard case .failure(let error)? = self[key] else {
            Issue.record("the call \(key) must fail", sourceLocation: sourceLocation)
            return nil
        }
        return error
    }
}

/// Owns a reactor client on the caller's reactor thread.
final class CallerHost {
    let client: ReactorClient
    init(client: ReactorClient) { self.client = client }
}

@Suite struct ReactorClientTests {
    private func startCaller(to endpoint: String) async throws -> ReactorHarness {
        try await ReactorHarness { reactor in
            (CallerHost(client: try ReactorClient(reactor: reactor, endpoint: endpoint, caller: "test")), endpoint)
        }
    }

    private func call(_ caller: ReactorHarness, _ method: RPCMethod<WireEchoRequest, WireEchoReply>, _ text: String,
                      timeout: Duration, into outcomes: CallOutcomes) {
        let request = payload(text)
        caller.withOwner(as: CallerHost.self) { host in
            host.client.call(method, request, timeout: timeout) { outcomes.set(text, $0) }
        }
    }

    @Test func callsAreSentAndCompletedOnTheReactorThreadAndMatchedByID() async throws {
        let parkedCount = Counter()
        let service = try await TestService.start(parkedCount: parkedCount)
        let caller = try await startCaller(to: service.endpoint)
        let outcomes = CallOutcomes()
        for index in 0..<300 { call(caller, TestMethods.echo, "n\(index)", timeout: .seconds(10), into: outcomes) }
        // Five parked ones are answered newest first: replies out of order still find their calls.
        for name in ["a", "b", "c", "d", "e"] { call(caller, TestMethods.parked, name, timeout: .seconds(10), into: outcomes) }
        try await waitUntil("five parked requests") { parkedCount.count == 5 }
        service.withOwner(as: TestService.self) { $0.releaseParked() }
        try await waitUntil("every call answered") { outcomes.count == 305 }
        for text in (0..<300).map({ "n\($0)" }) + ["a", "b", "c", "d", "e"] {
            #expect(try outcomes[text]?.get().payload == Data(text.utf8))
        }
        try await caller.stop()
        try await service.stop()
    }

    @Test func aServerThatNeverAnswersMissesTheDeadline() async throws {
        let service = try await TestService.start()
        let caller = try await startCaller(to: service.endpoint)
        let outcomes = CallOutcomes()
        call(caller, TestMethods.blackHole, "x", timeout: .milliseconds(200), into: outcomes)
        try await waitUntil("the call to fail", timeout: .seconds(10)) { outcomes.count == 1 }
        guard let error = outcomes.failure("x") else { return }
        #expect(error.code == .deadlineExceeded)
        #expect(!error.neverSent)
        try await caller.stop()
        try await service.stop()
    }

    @Test func withNoServerTheCallFailsUnsentAtItsDeadline() async throws {
        let caller = try await startCaller(to: FreePort.endpoint())
        let outcomes = CallOutcomes()
        call(caller, TestMethods.echo, "x", timeout: .milliseconds(300), into: outcomes)
        try await waitUntil("the call to fail", timeout: .seconds(10)) { outcomes.count == 1 }
        guard let error = outcomes.failure("x") else { return }
        #expect(error.code == .unavailable)
        #expect(error.neverSent, "it never left this process, so it is safe to retry")
        try await caller.stop()
    }

    @Test func aDroppedConnectionFailsTheCallsInFlightAtOnceAsPossiblyApplied() async throws {
        let parkedCount = Counter()
        let service = try await TestService.start(parkedCount: parkedCount)
        let caller = try await startCaller(to: service.endpoint)
        let outcomes = CallOutcomes()
        for name in ["p", "q"] { call(caller, TestMethods.parked, name, timeout: .seconds(60), into: outcomes) }
        try await waitUntil("two parked requests") { parkedCount.count == 2 }
        let clock = ContinuousClock()
        let stopped = clock.now
        try await service.stop()
        try await waitUntil("the calls to fail", timeout: .seconds(20)) { outcomes.count == 2 }
        let took = clock.now - stopped
        // Their deadline is a minute away: only the disconnect can have failed them.
        #expect(took < .seconds(20), "failed after \(took)")
        for name in ["p", "q"] {
            guard let error = outcomes.failure(name) else { continue }
            #expect(error.code == .unavailable)
            #expect(error.message.contains("may have been applied"), "\(error.message)")
            #expect(!error.neverSent)
        }
        try await caller.stop()
    }

    @Test func closingFailsWhatIsOutstanding() async throws {
        let service = try await TestService.start()
        let caller = try await startCaller(to: service.endpoint)
        let outcomes = CallOutcomes()
        call(caller, TestMethods.blackHole, "x", timeout: .seconds(60), into: outcomes)
        caller.withOwner(as: CallerHost.self) { $0.client.close() }
        call(caller, TestMethods.echo, "after", timeout: .seconds(60), into: outcomes)
        try await waitUntil("both calls to fail", timeout: .seconds(10)) { outcomes.count == 2 }
        for name in ["x", "after"] {
            guard let error = outcomes.failure(name) else { continue }
            #expect(error.code == .unavailable && error.message.contains("closed"), "\(error)")
        }
        try await caller.stop()
        try await service.stop()
    }
}
