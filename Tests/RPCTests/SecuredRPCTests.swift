import Foundation
import Logging
import RPC
import RingProtocol
import Synchronization
import Testing
import TestKit
import ZeroMQ

/// A server with CURVE on: echo is open to every role, "admin echo" to admins
/// only, "node echo" to nodes and admins. Echo answers with the caller the
/// server saw.
final class SecuredEchoService {
    static let adminEcho = RPCMethod<WireEchoRequest, WireEchoReply>(path: "/test.Secured/AdminEcho", idempotent: true)
    static let nodeEcho = RPCMethod<WireEchoRequest, WireEchoReply>(path: "/test.Secured/NodeEcho", idempotent: true)

    let security: ServerSecurity
    let server: RPCServer

    init(reactor: Reactor, keys: CurveKeyPair, allowlist: AllowlistSource) throws {
        security = try ServerSecurity(reactor: reactor, keys: keys, allowlist: allowlist)
        server = try RPCServer(reactor: reactor, endpoint: "tcp://127.0.0.1:*", security: security)
        let answer = { (context: RequestContext, _: WireEchoRequest) -> HandlerOutcome<WireEchoReply> in
            .reply(WireEchoReply.with { $0.payload = Data(context.caller.utf8) })
        }
        server.register(TestMethods.echo, answer)
        server.register(Self.adminEcho, role: .admin, answer)
        server.register(Self.nodeEcho, role: .node, answer)
    }
}

@Suite(.serialized, .timeLimit(.minutes(1)))  // hang guards; no test measures time
struct SecuredRPCTests {
    struct Fixture {
        let harness: ReactorHarness
        let serverKeys: CurveKeyPair
        let allowlist: AllowlistSource
        let keys: [Allowlist.Role: CurveKeyPair]
        let context: ZMQContext

        func client(_ role: Allowlist.Role?, keys override: CurveKeyPair? = nil) throws -> RPCClient {
            let security = (override ?? role.flatMap { keys[$0] }).map { ClientSecurity(keys: $0, serverKey: serverKeys.publicKey) }
            return try RPCClient(context: context, endpoint: harness.endpoint, caller: "whatever the header says", security: security)
        }

        func stop() async throws {
            context.shutdown()
            try await harness.stop()
        }
    }

    static func start(logger: Logger? = nil) async throws -> Fixture {
        let serverKeys = try CurveKeyPair.generate()
        var keys: [Allowlist.Role: CurveKeyPair] = [:]
        for role in Allowlist.Role.allCases { keys[role] = try CurveKeyPair.generate() }
        let allowlist = AllowlistSource(Allowlist(Allowlist.Role.allCases.map { .init(key: keys[$0]!.publicKey, role: $0, name: "\($0)-key") }))
        let harness = try await ReactorHarness(logger: logger) { reactor in
            let service = try SecuredEchoService(reactor: reactor, keys: serverKeys, allowlist: allowlist)
            return (service, service.server.endpoint)
        }
        return Fixture(harness: harness, serverKeys: serverKeys, allowlist: allowlist, keys: keys, context: try ZMQContext())
    }

    static let quick = CallOptions(timeout: .seconds(5))
    static let short = CallOptions(timeout: .milliseconds(400), maxAttempts: 1)

    private static func caller(_ reply: WireEchoReply) -> String { String(decoding: reply.payload, as: UTF8.self) }

    @Test func eachRoleReachesItsMethodsAndIsDeniedTheOthers() async throws {
        let fixture = try await Self.start()
        let expectations: [(Allowlist.Role, RPCMethod<WireEchoRequest, WireEchoReply>, Bool)] = [
            (.client, TestMethods.echo, true), (.client, SecuredEchoService.nodeEcho, false), (.client, SecuredEchoService.adminEcho, false),
            (.node, TestMethods.echo, true), (.node, SecuredEchoService.nodeEcho, true), (.node, SecuredEchoService.adminEcho, false),
            (.admin, TestMethods.echo, true), (.admin, SecuredEchoService.nodeEcho, true), (.admin, SecuredEchoService.adminEcho, true),
        ]
        for (role, method, allowed) in expectations {
            let client = try fixture.client(role)
            defer { client.close() }
            do {
                let reply = try await client.call(method, WireEchoRequest(), options: Self.quick)
                #expect(allowed, "\(role) reached \(method.path)")
                // The caller is the allowlist's name for the key, not what the header claimed.
                #expect(Self.caller(reply) == "\(role)-key")
            } catch {
                #expect(!allowed, "\(role) was refused \(method.path): \(error)")
                #expect(error.code == .permissionDenied && error.message.contains("needs the"), "\(error)")
            }
        }
        try await fixture.stop()
    }

    @Test func withoutAListedKeyNothingIsAnswered() async throws {
        let fixture = try await Self.start()
        let plaintext = try fixture.client(nil)
        let stranger = try fixture.client(nil, keys: try CurveKeyPair.generate())
        defer { plaintext.close(); stranger.close() }
        for client in [plaintext, stranger] {
            await #expect(throws: RPCError.self) { try await client.call(TestMethods.echo, WireEchoRequest(), options: Self.short) }
        }
        // The server is fine: a listed key still gets through.
        let listed = try fixture.client(.client)
        defer { listed.close() }
        #expect(Self.caller(try await listed.call(TestMethods.echo, WireEchoRequest(), options: Self.quick)) == "client-key")
        try await fixture.stop()
    }

    @Test func aKeyTakenOffTheAllowlistIsDeniedOnItsOpenConnectionAndCannotConnectAgain() async throws {
        let fixture = try await Self.start()
        let admin = try fixture.client(.admin)
        defer { admin.close() }
        _ = try await admin.call(SecuredEchoService.adminEcho, WireEchoRequest(), options: Self.quick)
        // Reload without the admin key.
        fixture.allowlist.replace(Allowlist([.init(key: fixture.keys[.client]!.publicKey, role: .client, name: "client-key")]))
        do {
            _ = try await admin.call(TestMethods.echo, WireEchoRequest(), options: Self.quick)
            Issue.record("a removed key was answered on its open connection")
        } catch {
            #expect(error.code == .permissionDenied && error.message.contains("no longer"), "\(error)")
        }
        let again = try fixture.client(.admin)
        defer { again.close() }
        await #expect(throws: RPCError.self) { try await again.call(TestMethods.echo, WireEchoRequest(), options: Self.short) }
        let client = try fixture.client(.client)
        defer { client.close() }
        #expect(Self.caller(try await client.call(TestMethods.echo, WireEchoRequest(), options: Self.quick)) == "client-key")
        try await fixture.stop()
    }

    @Test func aPlaintextPeerAndAWrongServerKeyAreRefusedAndLoggedWithTheirAddress() async throws {
        let log = LogCapture()
        let fixture = try await Self.start(logger: log.logger())
        let plaintext = try fixture.client(nil)
        defer { plaintext.close() }
        await #expect(throws: RPCError.self) { try await plaintext.call(TestMethods.echo, WireEchoRequest(), options: Self.short) }
        try await waitUntil("the plaintext peer's refusal in the log") { !log.lines("security.handshake.refused").isEmpty }
        let line = try #require(log.lines("security.handshake.refused").first)
        // Whichever side sees the mechanism mismatch first: this one says so,
        // or the peer hangs up and this side sees the handshake broken off.
        let reason = line.metadata["security.reason"] ?? ""
        #expect(reason == "plaintext peer (CURVE required)" || reason.hasPrefix("the peer broke off the handshake"), "\(line.metadata)")
        #expect(line.metadata["peer.address"]?.hasPrefix("127.0.0.1:") == true, "\(line.metadata)")
        #expect(line.metadata["peer.address"].flatMap { $0.split(separator: ":").last }.flatMap { UInt16($0) } != nil, "with its port: \(line.metadata)")

        // A listed key that expects another server key fails the CURVE handshake itself.
        let wrong = try RPCClient(context: fixture.context, endpoint: fixture.harness.endpoint, caller: "wrong",
                                  security: ClientSecurity(keys: fixture.keys[.client]!, serverKey: try CurveKeyPair.generate().publicKey))
        defer { wrong.close() }
        await #expect(throws: RPCError.self) { try await wrong.call(TestMethods.echo, WireEchoRequest(), options: Self.short) }
        try await waitUntil("the wrong server key's refusal in the log") {
            log.lines("security.handshake.refused").contains { $0.metadata["security.reason"]?.contains("wrong server key") == true }
        }
        try await fixture.stop()
    }

    @Test func aReloadThatRemovesAKeyClosesItsOpenConnectionsAndKeepsTheListedOnes() async throws {
        let fixture = try await Self.start()
        let revoked = try RawPeer(fixture, keys: fixture.keys[.admin]!)
        let kept = try RawPeer(fixture, keys: fixture.keys[.client]!)
        defer { revoked.close(); kept.close() }
        #expect(try await revoked.echo() == .ok)
        #expect(try await kept.echo() == .ok)
        #expect(revoked.disconnects() == 0 && kept.disconnects() == 0)

        let remaining = Allowlist([.init(key: fixture.keys[.client]!.publicKey, role: .client, name: "client-key"),
                                   .init(key: fixture.keys[.node]!.publicKey, role: .node, name: "node-key")])
        fixture.harness.withOwner(as: SecuredEchoService.self) { $0.security.replace(remaining) }
        try await waitUntil("the removed key's connection to be closed by the server") { revoked.disconnects() >= 1 }
        // The listed key's connection was left alone: still answered, never dropped.
        #expect(try await kept.echo() == .ok)
        #expect(kept.disconnects() == 0)
        try await fixture.stop()
    }
}

/// A PUB with CURVE on, publishing a numbered event on demand.
final class SecuredPublisher {
    let security: ServerSecurity
    let publisher: EventPublisher

    init(reactor: Reactor, keys: CurveKeyPair, allowlist: AllowlistSource) throws {
        security = try ServerSecurity(reactor: reactor, keys: keys, allowlist: allowlist)
        publisher = try EventPublisher(reactor: reactor, endpoint: "tcp://127.0.0.1:*", source: "test", security: security)
        reactor.every(.milliseconds(20)) { [unowned self] in publisher.publish(topic: "ring", type: "tick") }
    }
}

@Suite(.timeLimit(.minutes(1)))  // hang guards; no test measures time
struct SecuredEventTests {
    @Test func onlyAListedSubscriberReceivesEvents() async throws {
        let serverKeys = try CurveKeyPair.generate()
        let listed = try CurveKeyPair.generate()
        let allowlist = AllowlistSource(Allowlist([.init(key: listed.publicKey, role: .client, name: "watcher")]))
        let harness = try await ReactorHarness { reactor in
            let publisher = try SecuredPublisher(reactor: reactor, keys: serverKeys, allowlist: allowlist)
            return (publisher, publisher.publisher.endpoint)
        }
        let context = try ZMQContext()
        let plaintext = try EventSubscription(context: context, endpoints: [harness.endpoint])
        let stranger = try EventSubscription(context: context, endpoints: [harness.endpoint],
                                             security: ClientSecurity(keys: try CurveKeyPair.generate(), serverKey: serverKeys.publicKey))
        let watcher = try EventSubscription(context: context, endpoints: [harness.endpoint],
                                            security: ClientSecurity(keys: listed, serverKey: serverKeys.publicKey))
        let counts = EventCounts()
        let readers = [("plaintext", plaintext), ("stranger", stranger), ("watcher", watcher)].map { name, subscription in
            Task { for await _ in subscription.events { counts.add(name) } }
        }
        // Events are published every 20 ms to whoever is connected; the listed
        // subscriber has had many while the others, connected as long, have none.
        try await waitUntil("the listed subscriber to receive 20 events") { counts["watcher"] >= 20 }
        #expect(counts["plaintext"] == 0 && counts["stranger"] == 0,
                "unlisted subscribers received \(counts["plaintext"]) and \(counts["stranger"]) events")
        for subscription in [plaintext, stranger, watcher] { subscription.close() }
        for reader in readers { reader.cancel() }
        context.shutdown()
        try await harness.stop()
    }

    @Test func aReloadThatRemovesASubscribersKeyCutsItOffWhileListedSubscribersReceiveOn() async throws {
        let serverKeys = try CurveKeyPair.generate()
        let staying = try CurveKeyPair.generate(), leaving = try CurveKeyPair.generate()
        let allowlist = AllowlistSource(Allowlist([.init(key: staying.publicKey, role: .client, name: "staying"),
                                                   .init(key: leaving.publicKey, role: .client, name: "leaving")]))
        let harness = try await ReactorHarness { reactor in
            let publisher = try SecuredPublisher(reactor: reactor, keys: serverKeys, allowlist: allowlist)
            return (publisher, publisher.publisher.endpoint)
        }
        let context = try ZMQContext()
        let subscriptions = try [("staying", staying), ("leaving", leaving)].map { name, keys in
            (name, try EventSubscription(context: context, endpoints: [harness.endpoint],
                                         security: ClientSecurity(keys: keys, serverKey: serverKeys.publicKey)))
        }
        let counts = EventCounts()
        let readers = subscriptions.map { name, subscription in Task { for await _ in subscription.events { counts.add(name) } } }
        try await waitUntil("both subscribers to receive events") { counts["staying"] >= 10 && counts["leaving"] >= 10 }

        harness.withOwner(as: SecuredPublisher.self) { $0.security.replace(Allowlist([.init(key: staying.publicKey, role: .client, name: "staying")])) }
        // Events come every 20 ms. The listed subscriber is cut off too (a PUB
        // cannot tell its subscribers' keys apart) and reconnects; the removed
        // one cannot, so its count stops while the other's goes on.
        var mark = counts["staying"]
        try await waitUntil("the listed subscriber to receive 30 more events") { counts["staying"] >= mark + 30 }
        let leftWith = counts["leaving"]
        mark = counts["staying"]
        try await waitUntil("the listed subscriber to receive 30 more events again") { counts["staying"] >= mark + 30 }
        #expect(counts["leaving"] == leftWith, "the removed key went on receiving: \(leftWith) then \(counts["leaving"])")
        for (_, subscription) in subscriptions { subscription.close() }
        for reader in readers { reader.cancel() }
        context.shutdown()
        try await harness.stop()
    }
}

/// Events received per subscriber, counted from their reader tasks.
final class EventCounts: Sendable {
    private let counts = Mutex<[String: Int]>([:])
    func add(_ name: String) { counts.withLock { $0[name, default: 0] += 1 } }
    subscript(name: String) -> Int { counts.withLock { $0[name, default: 0] } }
}

/// A DEALER speaking the RPC envelope by hand, with a monitor, so a test can
/// see its connection being closed by the server.
final class RawPeer {
    let socket: ZMQSocket
    let monitor: ZMQSocketMonitor
    private var nextID: UInt64 = 1
    private var closedCount = 0

    init(_ fixture: SecuredRPCTests.Fixture, keys: CurveKeyPair) throws {
        socket = try ZMQSocket(context: fixture.context, type: .dealer)
        try socket.setCurveClient(keys, server: fixture.serverKeys.publicKey)
        monitor = try ZMQSocketMonitor(watching: socket, events: .disconnected)
        try socket.connect(fixture.harness.endpoint)
    }

    /// Sends Echo and waits for its reply's status.
    func echo() async throws -> WireStatusCode {
        var header = WireRequestHeader()
        header.version = wireProtocolVersion
        header.method = TestMethods.echo.path
        header.requestID = nextID
        nextID += 1
        _ = try socket.send(try Envelope.request(header, body: []))
        var status: WireStatusCode?
        try await waitUntil("the echo reply", timeout: .seconds(10), interval: .milliseconds(5)) {
            if let frames = try socket.receive(dontWait: true) { status = Envelope.parseReply(frames)?.header.code }
            return status != nil
        }
        return status!
    }

    /// Connections of this peer the other side closed so far.
    func disconnects() -> Int {
        while let event = try? monitor.next() {
            if event.kind == .disconnected { closedCount += 1 }
        }
        return closedCount
    }

    func close() {
        monitor.close()
        socket.close()
    }
}
