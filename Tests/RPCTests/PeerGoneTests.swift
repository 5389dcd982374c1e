import Foundation
@testable import RPC
import RingProtocol
import Synchronization
import Testing
import TestKit
import ZeroMQ

/// A server that watches its peers: it parks every request, remembering the
/// connection it came in on, and records the connections reported gone.
final class PeerWatchingService {
    /// What the test reads from its own thread.
    final class Record: Sendable {
        let parked = Mutex<[(payload: String, peer: PeerConnection?)]>([])
        let gone = Mutex<[PeerConnection]>([])
        let deliveries = Mutex<[String: ReplyDelivery]>([:])

        func peer(of payload: String) -> PeerConnection? {
            parked.withLock { $0.first { $0.payload == payload }?.peer }
        }

        var goneNow: [PeerConnection] { gone.withLock { $0 } }
    }

    let server: RPCServer
    let record: Record
    var contexts: [String: RequestContext] = [:]

    init(reactor: Reactor, record: Record) throws {
        self.record = record
        server = try RPCServer(reactor: reactor, endpoint: "tcp://127.0.0.1:*", watchPeers: true)
        server.register(TestMethods.parked) { [unowned self] context, request in
            let payload = String(decoding: request.payload, as: UTF8.self)
            contexts[payload] = context
            record.parked.withLock { $0.append((payload, context.peer)) }
            return .parked
        }
        server.register(TestMethods.echo) { _, request in .reply(WireEchoReply.with { $0.payload = request.payload }) }
        server.onPeerGone { peer in record.gone.withLock { $0.append(peer) } }
    }

    /// Answers the parked request with `payload` (again, if asked again); the
    /// record says what became of the reply.
    func answer(_ payload: String) {
        guard let context = contexts[payload] else { return }
        let delivery = server.reply(to: context, .success(WireEchoReply.with { $0.payload = Data(payload.utf8) }))
        record.deliveries.withLock { $0[payload] = delivery }
    }

    static func start(record: Record) async throws -> ReactorHarness {
        try await ReactorHarness { reactor in
            let service = try PeerWatchingService(reactor: reactor, record: record)
            return (service, service.server.endpoint)
        }
    }
}

@Suite(.timeLimit(.minutes(1)))  // hang guards; no test measures time
struct PeerGoneTests {
    @Test func aClosedConnectionIsReportedOnceItsRequestsWereParkedAndALaterOneIsNot() async throws {
        let record = PeerWatchingService.Record()
        let harness = try await PeerWatchingService.start(record: record)
        let context = try ZMQContext()
        var previous: PeerConnection?
        for round in 0..<5 {
            // Each round's client most likely gets the descriptor the previous one had.
            let client = try RPCClient(context: context, endpoint: harness.endpoint, caller: "peer-\(round)")
            let call = Task { try? await client.call(TestMethods.parked, payload("r\(round)"), options: CallOptions(timeout: .seconds(30))) }
            try await waitUntil("request \(round) to be parked") { record.peer(of: "r\(round)") != nil }
            let peer = try #require(record.peer(of: "r\(round)"))
            #expect(peer != previous, "every connection is a new peer")
            #expect(!record.goneNow.contains(peer))
            client.close()
            _ = await call.value
            try await waitUntil("peer \(round) to be reported gone") { record.goneNow.contains(peer) }
            previous = peer
        }
        // Only the closed connections were reported, each once here.
        #expect(Set(record.goneNow).count == 5)
        try await harness.stop()
    }

    @Test func twoOpenConnectionsAreTwoPeersAndClosingOneReportsOnlyIt() async throws {
        let record = PeerWatchingService.Record()
        let harness = try await PeerWatchingService.start(record: record)
        let context = try ZMQContext()
        let first = try RPCClient(context: context, endpoint: harness.endpoint, caller: "first")
        let second = try RPCClient(context: context, endpoint: harness.endpoint, caller: "second")
        let calls = [Task { try? await first.call(TestMethods.parked, payload("a"), options: CallOptions(timeout: .seconds(30))) },
                     Task { try? await second.call(TestMethods.parked, payload("b"), options: CallOptions(timeout: .seconds(30))) }]
        try await waitUntil("both parked") { record.peer(of: "a") != nil && record.peer(of: "b") != nil }
        let a = try #require(record.peer(of: "a")), b = try #require(record.peer(of: "b"))
        #expect(a != b)
        second.close()
        try await waitUntil("the second peer to be reported gone") { record.goneNow.contains(b) }
        // A reply to the gone peer says so (once the socket has taken in the
        // close, which follows the report closely); one to the live peer is sent.
        try await waitUntil("a reply to the gone peer to say so") {
            harness.withOwner(as: PeerWatchingService.self) { $0.answer("b") }
            return record.deliveries.withLock { $0["b"] } == .peerGone
        }
        harness.withOwner(as: PeerWatchingService.self) { $0.answer("a") }
        try await waitUntil("the answer to the live peer") { record.deliveries.withLock { $0["a"] } != nil }
        #expect(record.deliveries.withLock { $0["a"] } == .sent)
        // The first connection still works and is still its own peer.
        #expect(try await first.call(TestMethods.echo, payload("still here")).payload == Data("still here".utf8))
        #expect(!record.goneNow.contains(a))
        first.close()
        for call in calls { _ = await call.value }
        try await harness.stop()
    }

    @Test func withoutWatchingRequestsCarryNoPeer() async throws {
        let parkedCount = Counter()
        let harness = try await TestService.start(parkedCount: parkedCount)
        let client = try RPCClient(context: try ZMQContext(), endpoint: harness.endpoint, caller: "test")
        let call = Task { try await client.call(TestMethods.parked, payload("x")) }
        try await waitUntil("the request to be parked") { parkedCount.count == 1 }
        let peers = Mutex<[PeerConnection?]?>(nil)
        harness.withOwner(as: TestService.self) { service in
            let seen = service.parked.map(\.0.peer)
            peers.withLock { $0 = seen }
            service.releaseParked()
        }
        #expect(try await call.value.payload == Data("x".utf8))
        #expect(peers.withLock { $0 } == [nil])
        client.close()
        try await harness.stop()
    }

    @Test func theTrackerNumbersConnectionsItselfSoAReusedDescriptorIsANewPeer() {
        var tracker = PeerTracker()
        #expect(tracker.peer(descriptor: 7) == nil, "unknown before its ACCEPTED")
        #expect(tracker.peer(descriptor: -1) == nil, "inproc messages have no descriptor")
        #expect(tracker.accepted(descriptor: 7) == nil)
        let first = tracker.peer(descriptor: 7)
        #expect(first?.open == true)
        #expect(tracker.disconnected(descriptor: 7) == first?.peer)
        #expect(tracker.disconnected(descriptor: 7) == nil, "reported once")
        #expect(tracker.peer(descriptor: 7)?.open == false, "a message read after the close is from a gone peer")
        #expect(tracker.accepted(descriptor: 7) == nil)
        let second = tracker.peer(descriptor: 7)
        #expect(second?.open == true && second?.peer != first?.peer)
        // An ACCEPTED on a descriptor whose close was never reported: the old connection is gone.
        #expect(tracker.accepted(descriptor: 7) == second?.peer)
        #expect(tracker.disconnected(descriptor: 9) == nil, "never accepted")
    }

    @Test func monitorEventsAreParsedAndOddShapesRefused() {
        var frame: [UInt8] = []
        withUnsafeBytes(of: UInt16(ZMQSocketEvent.Kind.disconnected.rawValue)) { frame += $0 }
        withUnsafeBytes(of: UInt32(42)) { frame += $0 }
        let event = ZMQSocketEvent.parse([frame, Array("tcp://127.0.0.1:5".utf8)])
        #expect(event == ZMQSocketEvent(kind: .disconnected, value: 42, endpoint: "tcp://127.0.0.1:5"))
        #expect(ZMQSocketEvent.parse([frame]) == nil)
        #expect(ZMQSocketEvent.parse([Array(frame.prefix(5)), []]) == nil)
        #expect(ZMQSocketEvent.parse([]) == nil)
    }
}
