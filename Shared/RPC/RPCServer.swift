import Logging
import RingProtocol
import SwiftProtobuf
import ZeroMQ

/// Where a request came from and how to answer it, possibly later.
///
/// A handler that cannot answer at once (a lock waiter, a quorum write) keeps
/// the context and calls `RPCServer.reply(to:_:)` when it can.
public struct RequestContext: Sendable {
    /// The ROUTER's routing id of the calling connection.
    public let routingID: [UInt8]
    public let requestID: UInt64
    public let method: String
    /// Who called: with CURVE the name the allowlist gives the caller's key
    /// (whatever its header says), otherwise the header's `caller`.
    public let caller: String
    /// The caller's allowlist entry (key, role, name) with CURVE; nil without.
    public let authenticated: Allowlist.Entry?
    /// When the caller stops waiting, by this process's clock; `nil` for none.
    public let deadline: ContinuousClock.Instant?
    /// The connection the request came in on, when the server watches its
    /// peers (`watchPeers`); `onPeerGone` reports it once it closed.
    public let peer: PeerConnection?
    /// When the server read the request (its answer's latency counts from here).
    public let received: ContinuousClock.Instant

    public init(routingID: [UInt8], requestID: UInt64, method: String, caller: String, deadline: ContinuousClock.Instant?,
                peer: PeerConnection? = nil, authenticated: Allowlist.Entry? = nil, received: ContinuousClock.Instant = .now) {
        self.received = received
        self.routingID = routingID
        self.requestID = requestID
        self.method = method
        self.caller = caller
        self.authenticated = authenticated
        self.deadline = deadline
        self.peer = peer
    }
}

/// What became of a reply.
public enum ReplyDelivery: Sendable, Equatable {
    /// Queued for the caller's connection.
    case sent
    /// The caller's connection is gone: nobody will ever read the reply.
    case peerGone
    /// Not sent: the caller's queue was full, or the reply could not be built.
    case dropped
}

/// What a handler did with a request.
public enum HandlerOutcome<Response: SwiftProtobuf.Message> {
    /// Answer now with this response.
    case reply(Response)
    /// Answer now with this error.
    case failure(RPCError)
    /// The handler kept the `RequestContext` and will answer later.
    case parked
}

/// The request side of a service: a ROUTER socket on a reactor, dispatching
/// each request to the handler registered for its method name.
///
/// Malformed input never reaches a handler: it is answered with
/// INVALID_ARGUMENT (UNIMPLEMENTED for an unknown method) when the frames carry
/// a routing envelope, and otherwise dropped with a log line.
///
/// With `watchPeers` the server also tells which TCP connection each request
/// came in on (`RequestContext.peer`) and reports connections that closed
/// (`onPeerGone`), so a handler that parks requests (a lock waiter) can drop
/// those whose caller is gone. It learns this from libzmq's socket monitor
/// (ACCEPTED and DISCONNECTED events, which carry the connection's
/// descriptor) and each message's source descriptor (`ZMQ_SRCFD`); see
/// `PeerTracker` for how reused descriptors are told apart. (libzmq's
/// ZMQ_ROUTER_NOTIFY would say this directly, but it is a draft API that
/// Debian's libzmq is built without.)
public final class RPCServer {
    /// The endpoint actually bound (with the real port for `:*`).
    public let endpoint: String
    private let socket: ZMQSocket
    private let reactor: Reactor
    private var logger: Logger
    private var handlers: [String: (role: Allowlist.Role, handle: (RequestContext, [UInt8]) -> Void)] = [:]
    private let security: ServerSecurity?
    private let monitor: ZMQSocketMonitor?
    private let watchPeers: Bool
    private var peers = PeerTracker()
    /// With CURVE: logs refused handshakes, closes revoked keys' connections.
    private let guardian: ConnectionGuard?
    private var peerGoneHandlers: [(PeerConnection) -> Void] = []
    /// Counters for `Health` details and tests.
    public private(set) var requestsServed: UInt64 = 0
    public private(set) var malformedRequests: UInt64 = 0
    /// Requests refused with PERMISSION_DENIED (a role too low, a key no longer listed).
    public private(set) var deniedRequests: UInt64 = 0
    private let metrics: RPCMetrics

    /// Binds a ROUTER on `endpoint` and serves it from `reactor`. Frames larger
    /// than `maxMessageBytes` make libzmq drop the offending connection. With
    /// `watchPeers`, requests carry their connection and `onPeerGone` reports
    /// closed connections. With `security`, only CURVE peers whose key is on
    /// the allowlist connect, and each request needs the role its method was
    /// registered with.
    public init(reactor: Reactor, endpoint: String, maxMessageBytes: Int64 = 8 << 20, watchPeers: Bool = false,
                security: ServerSecurity? = nil) throws(ZMQError) {
        self.reactor = reactor
        self.logger = reactor.logger
        self.security = security
        metrics = RPCMetrics(service: reactor.service)
        socket = try ZMQSocket(context: reactor.context, type: .router)
        try security?.apply(to: socket)
        try socket.setMaximumMessageSize(maxMessageBytes)
        try socket.setRouterMandatory(true)
        try socket.setSendHighWaterMark(100_000)
        try socket.setReceiveHighWaterMark(100_000)
        self.watchPeers = watchPeers
        guardian = security.map { _ in ConnectionGuard(logger: reactor.logger, socketKind: "rpc") }
        // Before the bind, so that no connection is accepted unseen.
        let peerEvents: ZMQSocketEvent.Kind = watchPeers ? [.accepted, .disconnected] : []
        let events = peerEvents.union(security != nil ? ConnectionGuard.events : [])
        monitor = events.isEmpty ? nil : try ZMQSocketMonitor(watching: socket, events: events)
        self.endpoint = try socket.bind(endpoint)
        logger[metadataKey: "rpc.endpoint"] = "\(self.endpoint)"
        guardian?.bound(to: self.endpoint)
        reactor.addReader(socket) { [unowned self] in self.drain() }
        if let monitor {
            reactor.addReader(monitor.socket) { [unowned self] in self.notifyGone(self.readPeerEvents()) }
        }
        security?.onRevoked { [weak self] keys in self?.revoke(keys) }
    }

    /// Asked with each authenticated request's method before its handler
    /// runs: an error refuses the request with it (a follower replica refuses
    /// what only its leader may answer). Nil, or a nil answer, serves it.
    public var gate: ((String) -> RPCError?)?

    /// Calls `handler` on the reactor thread for every connection that closed
    /// (only with `watchPeers`). A connection may be reported more than once
    /// (a request read after its connection closed reports it again once
    /// handled), so handlers must be idempotent.
    public func onPeerGone(_ handler: @escaping (PeerConnection) -> Void) {
        peerGoneHandlers.append(handler)
    }

    /// Registers the handler for `method`, callable (with CURVE on) by peers
    /// whose role allows `role`; a later registration replaces it.
    public func register<Request, Response>(
        _ method: RPCMethod<Request, Response>,
        role: Allowlist.Role = .client,
        _ handler: @escaping (RequestContext, Request) -> HandlerOutcome<Response>
    ) {
        metrics.register(method.path)
        handlers[method.path] = (role, { [unowned self] context, body in
            let request: Request
            do {
                request = try Request(serializedBytes: body)
            } catch {
                self.malformedRequests += 1
                self.logger.notice("rpc.request.undecodable", metadata: ["rpc.method": "\(context.method)", "rpc.caller": "\(context.caller)"])
                self.fail(context, .invalidArgument("undecodable \(Request.protoMessageName) body for \(context.method)"))
                return
            }
            switch handler(context, request) {
            case .reply(let response): self.reply(to: context, .success(response))
            case .failure(let error): self.fail(context, error)
            case .parked: break
            }
        })
    }

    /// Answers a request, now or after it was parked. Returns what became of
    /// the reply (`peerGone` when the caller's connection has closed).
    @discardableResult
    public func reply<Response: SwiftProtobuf.Message>(to context: RequestContext, _ result: Result<Response, RPCError>) -> ReplyDelivery {
        switch result {
        case .success(let response):
            do {
                let body: [UInt8] = try response.serializedBytes()
                metrics.answered(method: context.method, code: .ok, elapsed: reactor.now - context.received)
                return send(Envelope.reply(to: context.routingID, requestID: context.requestID, status: .ok, message: "", body: body))
            } catch {
                fail(context, .internalError("cannot encode \(Response.protoMessageName): \(error)"))
                return .dropped
            }
        case .failure(let error):
            return fail(context, error)
        }
    }

    /// Answers a request with an error status.
    @discardableResult
    public func fail(_ context: RequestContext, _ error: RPCError) -> ReplyDelivery {
        metrics.answered(method: context.method, code: error.code, elapsed: reactor.now - context.received)
        return send(Envelope.reply(to: context.routingID, requestID: context.requestID, status: error.code, message: error.message, body: [],
                                   notLeader: error.notLeader, leader: error.leader))
    }

    @discardableResult
    private func send(_ frames: [ZMQFrame]) -> ReplyDelivery {
        do {
            if try !socket.send(frames, dontWait: true) {
                logger.warning("rpc.reply.dropped", metadata: ["rpc.reason": "peer queue full"])
                return .dropped
            }
            return .sent
        } catch let error where error == .hostUnreachable {
            logger.debug("rpc.reply.dropped", metadata: ["rpc.reason": "caller disconnected"])
            return .peerGone
        } catch {
            logger.error("rpc.reply.failed", metadata: ["rpc.error": "\(error)"])
            return .dropped
        }
    }

    /// Handles every request waiting on the socket, up to a batch per turn so that
    /// timers and other sockets are not starved.
    ///
    /// With peers watched, the batch is read first and the monitor's events
    /// after it, so that every message's own connection is known when it is
    /// labelled (see `PeerTracker`); connections that closed are reported
    /// after the batch was handled, and so is the connection of a request that
    /// was read only after its connection had closed.
    private func drain() {
        var batch: [(frames: [ZMQFrame], source: Int32, user: String?)] = []
        let watched = monitor != nil
        let secured = security != nil
        drainWaiting(logger: logger, failure: "rpc.receive.failed", receive: { () throws(ZMQError) in
            secured ? try socket.receiveWithPeer(dontWait: true)
                : watched ? try socket.receiveWithSource(dontWait: true).map { ($0.frames, $0.sourceDescriptor, nil) }
                : try socket.receive(dontWait: true).map { ($0, -1, nil) }
        }, handle: { message in
            batch.append((message.frames, message.sourceDescriptor, message.userID))
        })
        guard monitor != nil else {
            for message in batch { handle(message.frames, peer: nil, key: nil) }
            return
        }
        var gone = readPeerEvents()
        for message in batch {
            let key = message.user.flatMap(CurveKey.init)
            if let guardian, let key { guardian.identified(descriptor: message.source, key: key) }
            let peer = watchPeers ? peers.peer(descriptor: message.source) : nil
            handle(message.frames, peer: peer?.peer, key: key)
            if let peer, !peer.open { gone.append(peer.peer) }
        }
        notifyGone(gone)
    }

    /// Closes the open connections of keys a reload took off the allowlist
    /// (and those whose key is not known yet: they reconnect and are checked
    /// again), after applying the connection events waiting.
    private func revoke(_ keys: Set<CurveKey>) {
        notifyGone(readPeerEvents())
        guardian?.revoke(keys)
    }

    /// Applies the monitor's waiting events; returns the connections that closed.
    private func readPeerEvents() -> [PeerConnection] {
        guard let monitor else { return [] }
        var gone: [PeerConnection] = []
        while true {
            let event: ZMQSocketEvent?
            do {
                event = try monitor.next()
            } catch {
                if error != .terminated { logger.error("rpc.monitor.failed", metadata: ["rpc.error": "\(error)"]) }
                return gone
            }
            guard let event else { return gone }
            guardian?.observe(event)
            guard watchPeers else { continue }
            if event.kind == .accepted {
                if let previous = peers.accepted(descriptor: event.value) { gone.append(previous) }
            } else if event.kind == .disconnected {
                if let closed = peers.disconnected(descriptor: event.value) { gone.append(closed) }
            }
        }
    }

    private func notifyGone(_ gone: [PeerConnection]) {
        guard !gone.isEmpty else { return }
        metrics.disconnected(count: Set(gone).count)
        var seen: Set<PeerConnection> = []
        for peer in gone where seen.insert(peer).inserted {
            logger.debug("rpc.peer.gone", metadata: ["rpc.peer": "\(peer)"])
            for handler in peerGoneHandlers { handler(peer) }
        }
    }

    private func handle(_ frames: [ZMQFrame], peer: PeerConnection?, key: CurveKey?) {
        let request: Envelope.Request
        do {
            request = try Envelope.parseRequest(frames)
        } catch {
            malformedRequests += 1
            if let routingID = error.routingID {
                logger.notice("rpc.request.malformed", metadata: ["rpc.reason": "\(error.reason)"])
                send(Envelope.reply(to: routingID, requestID: error.requestID, status: .invalidArgument, message: error.reason, body: []))
            } else {
                logger.notice("rpc.frame.dropped", metadata: ["rpc.reason": "\(error.reason)", "rpc.frames": "\(frames.count)"])
            }
            return
        }
        let header = request.header
        let now = reactor.now
        let deadline = header.timeoutMicros == 0 ? nil : now + .microseconds(Int64(clamping: header.timeoutMicros))
        let entry = key.flatMap { security?.allowlist.allowlist.entry(for: $0) }
        let context = RequestContext(routingID: request.routingID, requestID: header.requestID,
                                     method: header.method, caller: entry?.name ?? header.caller, deadline: deadline, peer: peer,
                                     authenticated: entry, received: now)
        guard let handler = handlers[header.method] else {
            malformedRequests += 1
            logger.notice("rpc.method.unknown", metadata: ["rpc.method": "\(header.method)", "rpc.caller": "\(header.caller)"])
            fail(context, .unimplemented("unknown method \(header.method)"))
            return
        }
        if security != nil {
            guard let entry else {
                deniedRequests += 1
                logger.notice("rpc.denied", metadata: ["rpc.method": "\(header.method)", "rpc.reason": "key no longer allowed"])
                fail(context, RPCError(.permissionDenied, "your key is no longer on this service's allowlist"))
                return
            }
            guard entry.role.allows(handler.role) else {
                deniedRequests += 1
                logger.notice("rpc.denied", metadata: ["rpc.method": "\(header.method)", "rpc.caller": "\(entry.name)",
                                                       "rpc.role": "\(entry.role)"])
                fail(context, RPCError(.permissionDenied, "\(header.method) needs the \(handler.role) role; key \(entry.name) has \(entry.role)"))
                return
            }
        }
        if let gate, let refusal = gate(header.method) {
            fail(context, refusal)
            return
        }
        requestsServed += 1
        handler.handle(context, request.body)
    }
}
