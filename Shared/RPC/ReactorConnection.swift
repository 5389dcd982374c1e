import Basics
import Logging
import RingProtocol
import ZeroMQ

/// One DEALER socket of a `ReactorClient`, polled by the reactor: sends one
/// attempt of a request and reports how it ended (an `AttemptResult`), on the
/// reactor thread, never before `send` returns. The client decides what comes
/// next.
///
/// A request that finds no connection waits for one until its `sendBy`
/// (`.notSent`); a sent one waits for its reply until its deadline
/// (`.timedOut`). The socket is watched (`zmq_socket_monitor`): when the
/// connection drops, every request sent on it ends at once (`.disconnected`).
final class ReactorConnection {
    let endpoint: String
    private let reactor: Reactor
    private let logger: Logger
    private let socket: ZMQSocket
    private let monitor: ZMQSocketMonitor?
    private var pending: [UInt64: Pending] = [:]
    private var unsent: [Unsent] = []
    private var nextID: UInt64 = 0
    private var sweepTimer: Int?
    private(set) var closed = false

    private struct Pending {
        let deadline: ContinuousClock.Instant
        let complete: (AttemptResult) -> Void
    }

    private struct Unsent {
        let id: UInt64
        let frames: [ZMQFrame]
        let sendBy: ContinuousClock.Instant
        let pending: Pending
    }

    /// How often waiting requests are checked against their deadlines and
    /// unsent ones retried, while any are outstanding.
    static let sweepInterval = Duration.milliseconds(10)

    /// Connects (in the background) to `endpoint` and registers with `reactor`.
    init(reactor: Reactor, endpoint: String, logger: Logger, security: ClientSecurity?) throws(ZMQError) {
        self.reactor = reactor
        self.endpoint = endpoint
        self.logger = logger
        (socket, monitor) = try ZMQSocket.connectedDealer(context: reactor.context, endpoint: endpoint, security: security)
        // Weak: a connection closed (and dropped) during a turn may still have its
        // socket in that turn's ready list; the reactor drops it at the turn's end.
        reactor.addReader(socket) { [weak self] in self?.receiveReplies() }
        if let monitor {
            reactor.addReader(monitor.socket) { [weak self] in self?.readConnectionEvents() }
        }
    }

    /// Requests sent or waiting for a connection.
    var inFlight: Int { pending.count + unsent.count }

    /// Sends one attempt; `then` gets how it ended, exactly once, on the
    /// reactor thread, never before this returns.
    func send(path: String, body: [UInt8], caller: String, sendBy: ContinuousClock.Instant, deadline: ContinuousClock.Instant,
              then: @escaping (AttemptResult) -> Void) {
        guard !closed else {
            reactor.after(.zero) { then(.closed) }
            return
        }
        nextID &+= 1
        if nextID == 0 { nextID = 1 }
        let id = nextID
        var header = WireRequestHeader()
        header.version = wireProtocolVersion
        header.method = path
        header.requestID = id
        header.caller = caller
        header.timeoutMicros = UInt64(max(1, (deadline - reactor.now).wholeMicroseconds))
        let frames: [ZMQFrame]
        do {
            frames = try Envelope.request(header, body: body)
        } catch {
            logger.error("rpc.client.encode.failed", metadata: ["rpc.method": "\(path)", "rpc.error": "\(error)"])
            reactor.after(.zero) { then(.closed) }
            return
        }
        let waiting = Pending(deadline: deadline, complete: then)
        if unsent.isEmpty, send(frames) {
            pending[id] = waiting
        } else {
            unsent.append(Unsent(id: id, frames: frames, sendBy: sendBy, pending: waiting))
        }
        armSweep()
    }

    /// Stops polling the socket and ends every outstanding attempt `.closed`;
    /// with `notify` false (the owner is being torn down and its callbacks
    /// must not run) they are dropped instead.
    func close(notify: Bool) {
        guard !closed else { return }
        closed = true
        if let sweepTimer { reactor.cancelTimer(sweepTimer) }
        reactor.removeReader(socket)
        if let monitor { reactor.removeReader(monitor.socket) }
        let waiting = pending.sorted { $0.key < $1.key }.map(\.value) + unsent.map(\.pending)
        pending.removeAll()
        unsent.removeAll()
        if notify {
            for request in waiting { request.complete(.closed) }
        }
        // The reactor drops the sockets from its poll set at the end of this
        // turn; close them after that.
        let socket = socket, monitor = monitor
        reactor.after(.zero) {
            // The monitor first: see ZMQSocketMonitor.
            monitor?.close()
            socket.close()
        }
    }

    /// Sends without blocking; false when there is no connection (or it is full).
    private func send(_ frames: [ZMQFrame]) -> Bool {
        do {
            return try socket.send(frames, dontWait: true)
        } catch {
            if error != .terminated { logger.error("rpc.client.send.failed", metadata: ["rpc.endpoint": "\(endpoint)", "rpc.error": "\(error)"]) }
            return false
        }
    }

    private func receiveReplies() {
        while true {
            let frames: [ZMQFrame]?
            do {
                frames = try socket.receive(dontWait: true)
            } catch {
                if error != .terminated { logger.error("rpc.client.receive.failed", metadata: ["rpc.endpoint": "\(endpoint)", "rpc.error": "\(error)"]) }
                return
            }
            guard let frames else { return }
            guard let reply = Envelope.parseReply(frames) else {
                logger.notice("rpc.client.reply.malformed", metadata: ["rpc.endpoint": "\(endpoint)", "rpc.frames": "\(frames.count)"])
                continue
            }
            guard let request = pending.removeValue(forKey: reply.header.requestID) else {
                // A reply to a request that timed out or whose connection dropped.
                logger.debug("rpc.client.reply.late", metadata: ["rpc.request_id": "\(reply.header.requestID)"])
                continue
            }
            request.complete(.reply(reply))
        }
    }

    /// A dropped connection ends what was sent on it (replies that arrived
    /// before the drop are taken first); unsent requests wait for the reconnect.
    private func readConnectionEvents() {
        guard let monitor else { return }
        var dropped = false
        while true {
            do {
                guard let event = try monitor.next() else { break }
                if event.kind == .disconnected { dropped = true }
            } catch {
                if error != .terminated { logger.error("rpc.client.monitor.failed", metadata: ["rpc.error": "\(error)"]) }
                break
            }
        }
        guard dropped, !closed else { return }
        RPCMetrics.clientDisconnected(service: reactor.service)
        receiveReplies()
        guard !pending.isEmpty else { return }
        let lost = pending
        pending.removeAll()
        logger.info("rpc.client.disconnected", metadata: ["rpc.endpoint": "\(endpoint)", "rpc.requests_failed": "\(lost.count)"])
        for (_, request) in lost.sorted(by: { $0.key < $1.key }) { request.complete(.disconnected) }
    }

    private func armSweep() {
        guard sweepTimer == nil else { return }
        sweepTimer = reactor.after(Self.sweepInterval) { [weak self] in
            guard let self else { return }
            sweepTimer = nil
            sweep()
            if inFlight > 0 && !closed { armSweep() }
        }
    }

    /// Sends what waited for a connection and ends what passed its deadline.
    private func sweep() {
        let now = reactor.now
        var sent = 0
        for item in unsent {
            guard item.sendBy > now, send(item.frames) else { break }
            pending[item.id] = item.pending
            sent += 1
        }
        unsent.removeFirst(sent)
        var expired: [(UInt64, Pending, AttemptResult)] = []
        for (id, request) in pending where request.deadline <= now { expired.append((id, request, .timedOut)) }
        for (id, _, _) in expired { pending[id] = nil }
        while let first = unsent.first, first.sendBy <= now {
            expired.append((first.id, first.pending, .notSent))
            unsent.removeFirst()
        }
        // Unsent requests behind one still in time keep their order; they expire on a later sweep.
        for (_, request, result) in expired.sorted(by: { $0.0 < $1.0 }) { request.complete(result) }
    }
}
