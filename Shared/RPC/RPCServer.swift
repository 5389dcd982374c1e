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
    public let caller: String
    /// When the caller stops waiting, by this process's clock; `nil` for none.
    public let deadline: ContinuousClock.Instant?

    public init(routingID: [UInt8], requestID: UInt64, method: String, caller: String, deadline: ContinuousClock.Instant?) {
        self.routingID = routingID
        self.requestID = requestID
        self.method = method
        self.caller = caller
        self.deadline = deadline
    }
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
public final class RPCServer {
    /// The endpoint actually bound (with the real port for `:*`).
    public let endpoint: String
    private let socket: ZMQSocket
    private let reactor: Reactor
    private var logger: Logger
    private var handlers: [String: (RequestContext, [UInt8]) -> Void] = [:]
    /// Counters for `Health` details and tests.
    public private(set) var requestsServed: UInt64 = 0
    public private(set) var malformedRequests: UInt64 = 0

    /// Binds a ROUTER on `endpoint` and serves it from `reactor`. Frames larger
    /// than `maxMessageBytes` make libzmq drop the offending connection.
    public init(reactor: Reactor, endpoint: String, maxMessageBytes: Int64 = 8 << 20) throws(ZMQError) {
        self.reactor = reactor
        self.logger = reactor.logger
        socket = try ZMQSocket(context: reactor.context, type: .router)
        try socket.setMaximumMessageSize(maxMessageBytes)
        try socket.setRouterMandatory(true)
        try socket.setSendHighWaterMark(100_000)
        try socket.setReceiveHighWaterMark(100_000)
        self.endpoint = try socket.bind(endpoint)
        logger[metadataKey: "rpc.endpoint"] = "\(self.endpoint)"
        reactor.addReader(socket) { [unowned self] in self.drain() }
    }

    /// Registers the handler for `method`; a later registration replaces it.
    public func register<Request, Response>(
        _ method: RPCMethod<Request, Response>,
        _ handler: @escaping (RequestContext, Request) -> HandlerOutcome<Response>
    ) {
        handlers[method.path] = { [unowned self] context, body in
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
        }
    }

    /// Answers a request, now or after it was parked.
    public func reply<Response: SwiftProtobuf.Message>(to context: RequestContext, _ result: Result<Response, RPCError>) {
        switch result {
        case .success(let response):
            do {
                let body: [UInt8] = try response.serializedBytes()
                send(Envelope.reply(to: context.routingID, requestID: context.requestID, status: .ok, message: "", body: body))
            } catch {
                fail(context, .internalError("cannot encode \(Response.protoMessageName): \(error)"))
            }
        case .failure(let error):
            fail(context, error)
        }
    }

    /// Answers a request with an error status.
    public func fail(_ context: RequestContext, _ error: RPCError) {
        send(Envelope.reply(to: context.routingID, requestID: context.requestID, status: error.code, message: error.message, body: []))
    }

    private func send(_ frames: [ZMQFrame]) {
        do {
            if try !socket.send(frames, dontWait: true) {
                logger.warning("rpc.reply.dropped", metadata: ["rpc.reason": "peer queue full"])
            }
        } catch let error where error == .hostUnreachable {
            logger.debug("rpc.reply.dropped", metadata: ["rpc.reason": "caller disconnected"])
        } catch {
            logger.error("rpc.reply.failed", metadata: ["rpc.error": "\(error)"])
        }
    }

    /// Handles every request waiting on the socket, up to a batch per turn so that
    /// timers and other sockets are not starved.
    private func drain() {
        for _ in 0..<1024 {
            let frames: [ZMQFrame]?
            do {
                frames = try socket.receive(dontWait: true)
            } catch {
                if error != .terminated { logger.error("rpc.receive.failed", metadata: ["rpc.error": "\(error)"]) }
                return
            }
            guard let frames else { return }
            handle(frames)
        }
    }

    private func handle(_ frames: [ZMQFrame]) {
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
        let context = RequestContext(routingID: request.routingID, requestID: header.requestID,
                                     method: header.method, caller: header.caller, deadline: deadline)
        guard let handler = handlers[header.method] else {
            malformedRequests += 1
            logger.notice("rpc.method.unknown", metadata: ["rpc.method": "\(header.method)", "rpc.caller": "\(header.caller)"])
            fail(context, .unimplemented("unknown method \(header.method)"))
            return
        }
        requestsServed += 1
        handler(context, request.body)
    }
}
