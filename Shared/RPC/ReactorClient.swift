import Basics
import Logging
import RingProtocol
import SwiftProtobuf
import ZeroMQ

/// A client of one service endpoint owned by a reactor: its DEALER socket is
/// polled by the reactor, requests are sent and replies completed on the
/// reactor thread, with no task or thread per call. For the calls a reactor
/// service makes to its peers (replica writes and reads, migration batches,
/// digests, reports to placement).
///
/// Each call has a deadline; a request that finds no connection waits for one
/// until its deadline and then fails UNAVAILABLE with `neverSent` (it is safe
/// to retry). The socket is watched (`zmq_socket_monitor`): when the
/// connection drops, every request sent on it fails at once with UNAVAILABLE,
/// possibly applied, instead of waiting for its deadline. There are no
/// retries: the callers (quorums, hints, migration credit, heartbeats) decide
/// what a failure means.
///
/// Used only on its reactor's thread; `close()` it before dropping it.
public final class ReactorClient {
    public let endpoint: String
    public let caller: String
    private let reactor: Reactor
    private let logger: Logger
    private let socket: ZMQSocket
    private let monitor: ZMQSocketMonitor?
    private var pending: [UInt64: Pending] = [:]
    private var unsent: [Unsent] = []
    private var nextID: UInt64 = 0
    private var sweepTimer: Int?
    private var closed = false

    private struct Pending {
        let path: String
        let deadline: ContinuousClock.Instant
        let complete: (Result<[UInt8], RPCError>) -> Void
    }

    private struct Unsent {
        let id: UInt64
        let frames: [ZMQFrame]
        let pending: Pending
    }

    /// How often waiting requests are checked against their deadlines and
    /// unsent ones retried, while any are outstanding.
    static let sweepInterval = Duration.milliseconds(10)

    /// Connects (in the background) to `endpoint` and registers with `reactor`.
    public init(reactor: Reactor, endpoint: String, caller: String, logger: Logger? = nil,
                security: ClientSecurity? = nil) throws(ZMQError) {
        self.reactor = reactor
        self.endpoint = endpoint
        self.caller = caller
        self.logger = logger ?? reactor.logger
        (socket, monitor) = try ZMQSocket.connectedDealer(context: reactor.context, endpoint: endpoint, security: security)
        // Weak: a client closed (and dropped) during a turn may still have its
        // socket in that turn's ready list; the reactor drops it at the turn's end.
        reactor.addReader(socket) { [weak self] in self?.receiveReplies() }
        if let monitor {
            reactor.addReader(monitor.socket) { [weak self] in self?.readConnectionEvents() }
        }
    }

    /// Requests sent or waiting for a connection.
    public var inFlight: Int { pending.count + unsent.count }

    /// Calls `method`; `then` runs on the reactor thread with the response or
    /// the error, exactly once, never before this call returns.
    public func call<Request, Response>(
        _ method: RPCMethod<Request, Response>,
        _ request: Request,
        timeout: Duration,
        then: @escaping (Result<Response, RPCError>) -> Void
    ) {
        let body: [UInt8]
        do {
            body = try request.serializedBytes()
        } catch {
            let failure = RPCError.invalidArgument("cannot encode \(Request.protoMessageName): \(error)")
            reactor.after(.zero) { then(.failure(failure)) }
            return
        }
        let endpoint = endpoint
        callRaw(path: method.path, body: body, timeout: timeout) { result in
            then(result.flatMap { bytes in
                do {
                    return .success(try Response(serializedBytes: bytes))
                } catch {
                    return .failure(.internalError("undecodable \(Response.protoMessageName) from \(endpoint)"))
                }
            })
        }
    }

    /// Calls a method by name with an encoded body; `then` gets the reply body.
    public func callRaw(path: String, body: [UInt8], timeout: Duration, then: @escaping (Result<[UInt8], RPCError>) -> Void) {
        guard !closed else {
            let endpoint = endpoint
            reactor.after(.zero) { then(.failure(.unavailable("connection to \(endpoint) closed"))) }
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
        header.timeoutMicros = UInt64(max(1, timeout.wholeMicroseconds))
        let frames: [ZMQFrame]
        do {
            frames = try Envelope.request(header, body: body)
        } catch {
            reactor.after(.zero) { then(.failure(.internalError("cannot encode the request header: \(error)"))) }
            return
        }
        let waiting = Pending(path: path, deadline: reactor.now + timeout, complete: then)
        if unsent.isEmpty, send(frames) {
            pending[id] = waiting
        } else {
            unsent.append(Unsent(id: id, frames: frames, pending: waiting))
        }
        armSweep()
    }

    /// Stops polling the socket and fails every outstanding request with
    /// UNAVAILABLE; with `notify` false (the owner is being torn down and its
    /// callbacks must not run) they are dropped instead.
    public func close(notify: Bool = true) {
        guard !closed else { return }
        closed = true
        if let sweepTimer { reactor.cancelTimer(sweepTimer) }
        reactor.removeReader(socket)
        if let monitor { reactor.removeReader(monitor.socket) }
        let failure = RPCError.unavailable("connection to \(endpoint) closed")
        let waiting = Array(pending.values) + unsent.map(\.pending)
        pending.removeAll()
        unsent.removeAll()
        if notify {
            for request in waiting { request.complete(.failure(failure)) }
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

    // MARK: Reactor side

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
            if reply.header.code == .ok {
                request.complete(.success(reply.body))
            } else {
                request.complete(.failure(RPCError(reply: reply.header)))
            }
        }
    }

    /// A dropped connection fails what was sent on it (replies that arrived
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
        for (_, request) in lost.sorted(by: { $0.key < $1.key }) {
            request.complete(.failure(.unavailable("connection to \(endpoint) lost with \(request.path) in flight; it may have been applied")))
        }
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

    /// Sends what waited for a connection and fails what passed its deadline.
    private func sweep() {
        let now = reactor.now
        var sent = 0
        for item in unsent {
            guard item.pending.deadline > now, send(item.frames) else { break }
            pending[item.id] = item.pending
            sent += 1
        }
        unsent.removeFirst(sent)
        var expired: [(UInt64, Pending, neverSent: Bool)] = []
        for (id, request) in pending where request.deadline <= now { expired.append((id, request, false)) }
        for (id, _, _) in expired { pending[id] = nil }
        while let first = unsent.first, first.pending.deadline <= now {
            expired.append((first.id, first.pending, true))
            unsent.removeFirst()
        }
        // Unsent requests behind one still in time keep their order; they expire on a later sweep.
        for (_, request, neverSent) in expired.sorted(by: { $0.0 < $1.0 }) {
            if neverSent {
                request.complete(.failure(RPCError(.unavailable, "no connection to \(endpoint)", neverSent: true)))
            } else {
                request.complete(.failure(.deadlineExceeded("no reply from \(endpoint) to \(request.path) within the deadline")))
            }
        }
    }
}
