import Foundation
import RPC
import RingProtocol
import Synchronization
import TestKit
import ZeroMQ

/// Methods of a service that exists only in these tests.
enum TestMethods {
    static let echo = RPCMethod<WireEchoRequest, WireEchoReply>(path: "/test.Test/Echo", idempotent: true)
    /// Answers UNAVAILABLE for its first `failures` calls; idempotent.
    static let flakyRead = RPCMethod<WireEchoRequest, WireEchoReply>(path: "/test.Test/FlakyRead", idempotent: true)
    /// The same, but not idempotent: must never be retried.
    static let flakyWrite = RPCMethod<WireEchoRequest, WireEchoReply>(path: "/test.Test/FlakyWrite", idempotent: false)
    /// Parks every request; `releaseParked` answers them in reverse order.
    static let parked = RPCMethod<WireEchoRequest, WireEchoReply>(path: "/test.Test/Parked", idempotent: false)
    /// Never answers.
    static let blackHole = RPCMethod<WireEchoRequest, WireEchoReply>(path: "/test.Test/BlackHole", idempotent: false)
}

/// A counter shared between the reactor thread and the test.
final class Counter: Sendable {
    private let value = Mutex(0)
    func increment() -> Int { value.withLock { $0 += 1; return $0 } }
    var count: Int { value.withLock { $0 } }
}

/// The server side of the tests, living on the reactor thread.
final class TestService {
    let server: RPCServer
    var parked: [(RequestContext, WireEchoRequest)] = []

    init(reactor: Reactor, failures: Int, calls: Counter, parkedCount: Counter) throws {
        server = try RPCServer(reactor: reactor, endpoint: "tcp://127.0.0.1:*", maxMessageBytes: 64 * 1024)
        server.register(TestMethods.echo) { _, request in
            .reply(WireEchoReply.with { $0.payload = request.payload })
        }
        let flaky: (RequestContext, WireEchoRequest) -> HandlerOutcome<WireEchoReply> = { _, request in
            if calls.increment() <= failures { return .failure(.unavailable("not yet")) }
            return .reply(WireEchoReply.with { $0.payload = request.payload })
        }
        server.register(TestMethods.flakyRead, flaky)
        server.register(TestMethods.flakyWrite, flaky)
        server.register(TestMethods.parked) { [unowned self] context, request in
            parked.append((context, request))
            _ = parkedCount.increment()
            return .parked
        }
        server.register(TestMethods.blackHole) { _, _ in .parked }
    }

    /// Answers every parked request, newest first.
    func releaseParked() {
        for (context, request) in parked.reversed() {
            server.reply(to: context, .success(WireEchoReply.with { $0.payload = request.payload }))
        }
        parked.removeAll()
    }

    static func start(failures: Int = 0, calls: Counter = Counter(), parkedCount: Counter = Counter()) async throws -> ReactorHarness {
        try await ReactorHarness { reactor in
            let service = try TestService(reactor: reactor, failures: failures, calls: calls, parkedCount: parkedCount)
            return (service, service.server.endpoint)
        }
    }
}

func payload(_ text: String) -> WireEchoRequest {
    WireEchoRequest.with { $0.payload = Data(text.utf8) }
}
