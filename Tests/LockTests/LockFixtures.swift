import Dispatch
import Foundation
import LockService
import RPC
import RingProtocol
import RingstoreClient
import Synchronization
import TestKit
import ZeroMQ

/// A lock service inside the test process (its reactor on a thread of its
/// own), on free loopback ports, with a temporary data directory that can
/// outlive a restart.
///
/// The first start binds ports the kernel picks at bind time (`:*`), so no
/// other connection can take them between choosing and binding; a restart
/// binds the same ones again.
final class InProcessLock: @unchecked Sendable {
    /// The request and event endpoints; real ports once started.
    private(set) var listen = "tcp://127.0.0.1:*"
    private(set) var publish = "tcp://127.0.0.1:*"
    let directory: URL
    let limits: LockLimits
    let context: ZMQContext
    private var harness: ReactorHarness?

    init(limits: LockLimits = LockLimits(maxTTL: .seconds(600), maxWait: .seconds(600))) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("ringstore-lock-\(UUID().uuidString)")
        self.limits = limits
        context = try ZMQContext()
    }

    deinit {
        try? FileManager.default.removeItem(at: directory)
    }

    var options: LockOptions {
        LockOptions(listen: listen, publish: publish, dataDirectory: directory, limits: limits)
    }

    /// Starts (or restarts) the service on the same ports and data directory.
    func start() async throws {
        let options = self.options
        let events = Box<String?>(nil)
        let started = try await ReactorHarness { reactor in
            let server = try LockServer(reactor: reactor, options: options)
            events.set(server.events.endpoint)
            return (server, server.rpc.endpoint)
        }
        harness = started
        listen = started.endpoint
        if let endpoint = events.current { publish = endpoint }
    }

    /// Starts the service on other endpoints with the same data directory:
    /// a replica taking over as leader with the state the old one left.
    func start(listen: String, publish: String) async throws {
        self.listen = listen
        self.publish = publish
        try await start()
    }

    /// Stops the service and waits until its sockets are closed.
    func stop() async throws {
        try await harness?.stop()
        harness = nil
    }

    /// Runs `work` on the service's reactor thread.
    func withServer(_ work: @escaping @Sendable (LockServer) -> Void) {
        harness?.withOwner(as: LockServer.self, work)
    }

    func client(_ owner: String, timeout: Duration = .seconds(5)) throws -> LockClient {
        try LockClient(context: ClientContext(context), endpoint: listen, owner: owner, callTimeout: timeout)
    }

    func rpc() throws -> RPCClient {
        try RPCClient(context: context, endpoint: listen, caller: "lock-tests")
    }
}

/// Collects events from a PUB endpoint on a background task.
final class EventLog: Sendable {
    private let subscription: EventSubscription
    private let received = Box<[ReceivedEvent]>([])
    private let task: Task<Void, Never>

    init(context: ZMQContext, endpoint: String, topics: [String]) throws {
        let subscription = try EventSubscription(context: context, endpoints: [endpoint], topics: topics)
        self.subscription = subscription
        let received = self.received
        task = Task {
            for await event in subscription.events { received.update { $0.append(event) } }
        }
    }

    deinit {
        subscription.close()
        task.cancel()
    }

    var events: [ReceivedEvent] { received.current }

    func close() { subscription.close() }

    /// Events of `topic` other than those about `exceptName`.
    func events(topic: String, exceptName: String? = nil) -> [ReceivedEvent] {
        events.filter { $0.topic == topic && (exceptName == nil || $0.event.lock.name != exceptName) }
    }

    /// Acquires and releases a probe lock until its events arrive, so that
    /// the subscription is known to be live (PUB drops what it sends before).
    func waitUntilLive(_ client: LockClient, probe: String = "probe") async throws {
        try await waitUntil("the event subscription to be live", timeout: .seconds(10), interval: .milliseconds(50)) {
            if events.contains(where: { $0.event.lock.name == probe }) { return true }
            let grant = try await client.acquire(probe, ttl: .seconds(5))
            try await client.release(probe, token: grant.token)
            return false
        }
    }
}

/// Blocks a thread (the service's reactor) until opened.
final class Gate: Sendable {
    private let semaphore = DispatchSemaphore(value: 0)
    private let entered = Mutex(false)

    func block() {
        entered.withLock { $0 = true }
        semaphore.wait()
    }

    var isBlocking: Bool { entered.withLock { $0 } }

    func open() { semaphore.signal() }
}

/// Linux's table of IPv4 TCP sockets (`/proc/net/tcp`), to see when the
/// service's side of a connection has closed.
enum TCPTable {
    /// Sockets on local port `port` that are established or whose peer has
    /// closed while this side has not yet (CLOSE_WAIT): the open connections
    /// a server on that port has.
    static func openConnections(localPort port: UInt16) -> Int {
        // Read to the end by hand: a /proc file reports size 0 and comes in pages.
        guard let handle = FileHandle(forReadingAtPath: "/proc/net/tcp") else { return -1 }
        defer { try? handle.close() }
        var data = Data()
        while let chunk = try? handle.read(upToCount: 65_536), !chunk.isEmpty { data.append(chunk) }
        let table = String(decoding: data, as: UTF8.self)
        let suffix = ":" + String(format: "%04X", port)
        return table.split(separator: "\n").dropFirst().filter { line in
            let fields = line.split(separator: " ")
            guard fields.count > 3 else { return false }
            return fields[1].hasSuffix(suffix) && (fields[3] == "01" || fields[3] == "08")
        }.count
    }
}

/// A counter any task may bump.
final class Tally: Sendable {
    private let value = Mutex(0)
    func bump() { value.withLock { $0 += 1 } }
    var count: Int { value.withLock { $0 } }
}

/// A value one task sets and another reads.
final class Box<Value: Sendable>: Sendable {
    private let value: Mutex<Value>
    init(_ value: Value) { self.value = Mutex(value) }
    func set(_ newValue: Value) { value.withLock { $0 = newValue } }
    var current: Value { value.withLock { $0 } }
    func update(_ body: (inout Value) -> Void) { value.withLock { body(&$0) } }
}

/// What an async call ended with, so a background task's outcome can be inspected.
func outcome<Value: Sendable>(_ body: @Sendable () async throws -> Value) async -> Result<Value, RPCError> {
    do {
        return .success(try await body())
    } catch let error as RPCError {
        return .failure(error)
    } catch {
        return .failure(RPCError(.unknown, "not an RPCError: \(error)"))
    }
}

extension Result {
    var failureCode: WireStatusCode? {
        if case .failure(let error) = self, let error = error as? RPCError { return error.code }
        return nil
    }

    var value: Success? {
        if case .success(let value) = self { return value }
        return nil
    }
}
