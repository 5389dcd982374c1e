import Basics
import Logging
import RingProtocol
import Foundation
import SwiftProtobuf
import Synchronization
import ZeroMQ

/// A client of one service over DEALER sockets: many requests in flight on
/// one connection, replies matched by request id, deadlines, and retries with
/// backoff for idempotent methods only. A request in flight when the
/// connection drops fails at once with UNAVAILABLE, marked as possibly
/// applied (an idempotent one is retried instead).
///
/// A replicated service (placement, the lock service: one leader, followers)
/// has several endpoints, one connection each; calls go to the preferred one,
/// the client's guess of the leader, and fail over by ``FailoverCall``'s
/// rules: a follower's refusal is sent again to the leader it names (or,
/// while none is elected, to the next endpoint after a pause) whatever the
/// method, a request that found no connection goes to the next endpoint, and
/// one that may have been applied is sent again only for an idempotent method.
///
/// Thread-safe: any task may call it concurrently.
public final class RPCClient: Sendable {
    /// The identity sent in every request header.
    public let caller: String
    private let context: ZMQContext
    private let logger: Logger
    private let security: ClientSecurity?
    private let state: Mutex<State>

    private struct State {
        var targets: FailoverTargets
        /// One per endpoint of `targets`, in its order.
        var connections: [ClientConnection]
        var closed = false
    }

    /// Connects (in the background) to `endpoint`. The context may be shared by
    /// many clients of one process.
    /// With `security`, the connection is CURVE-encrypted and authenticated.
    public convenience init(context: ZMQContext, endpoint: String, caller: String, logger: Logger = Logger(label: "ringstore.rpc.client"),
                            security: ClientSecurity? = nil) throws(ZMQError) {
        try self.init(context: context, endpoints: [endpoint], caller: caller, logger: logger, security: security)
    }

    /// Connects (in the background) to every endpoint of a replicated service
    /// (`host:port` or full endpoints); calls start at the first. An empty
    /// list is EINVAL.
    public init(context: ZMQContext, endpoints: [String], caller: String, logger: Logger = Logger(label: "ringstore.rpc.client"),
                security: ClientSecurity? = nil) throws(ZMQError) {
        guard !endpoints.isEmpty else { throw ZMQError(code: EINVAL, operation: "connect: no endpoint") }
        self.caller = caller
        self.context = context
        self.logger = logger
        self.security = security
        let targets = FailoverTargets(endpoints)
        var connections: [ClientConnection] = []
        do {
            for endpoint in targets.endpoints {
                connections.append(try ClientConnection(context: context, endpoint: endpoint, logger: logger, security: security))
            }
        } catch {
            for connection in connections { connection.close() }
            throw error
        }
        state = Mutex(State(targets: targets, connections: connections))
    }

    deinit { close() }

    /// The endpoint calls go to first now (the leader, as far as this client
    /// knows), e.g. `tcp://127.0.0.1:7400`.
    public var endpoint: String { state.withLock { $0.targets.current } }

    /// Every endpoint of the service, including leaders that replies named.
    public var endpoints: [String] { state.withLock { $0.targets.endpoints } }

    /// Whether ``close()`` was called: every call fails from then on.
    public var isClosed: Bool { state.withLock { $0.closed } }

    /// Ends the connections; calls in flight fail with UNAVAILABLE.
    public func close() {
        let connections = state.withLock { state in
            state.closed = true
            return state.connections
        }
        for connection in connections { connection.close() }
    }

    /// Calls `method` and returns its response, or throws `RPCError`.
    public func call<Request, Response>(
        _ method: RPCMethod<Request, Response>,
        _ request: Request,
        options: CallOptions = .default
    ) async throws(RPCError) -> Response {
        let body: [UInt8]
        do {
            body = try request.serializedBytes()
        } catch {
            throw .invalidArgument("cannot encode \(Request.protoMessageName): \(error)")
        }
        let reply = try await callRaw(path: method.path, idempotent: method.idempotent, body: body, options: options)
        do {
            return try Response(serializedBytes: reply)
        } catch {
            throw .internalError("undecodable \(Response.protoMessageName) from \(endpoint)")
        }
    }

    /// Calls `method` and returns the outcome as a `Result`, for callers that
    /// hand it to another thread (a reactor) rather than handle it here.
    public func result<Request, Response>(
        _ method: RPCMethod<Request, Response>,
        _ request: Request,
        options: CallOptions = .default
    ) async -> Result<Response, RPCError> {
        do {
            return .success(try await call(method, request, options: options))
        } catch {
            return .failure(error)
        }
    }

    /// Calls a method by name with an encoded body; the building block of `call`,
    /// also used to send deliberately odd requests in tests.
    public func callRaw(path: String, idempotent: Bool, body: [UInt8], options: CallOptions = .default) async throws(RPCError) -> [UInt8] {
        let clock = ContinuousClock()
        var call = FailoverCall(path: path, idempotent: idempotent, timeout: options.timeout, now: clock.now,
                                maxAttempts: options.maxAttempts, attemptTimeout: options.attemptTimeout, retriesUnavailable: true,
                                initialBackoff: options.initialBackoff, maxBackoff: options.maxBackoff)
        var index = state.withLock { $0.targets.preferred }
        while true {
            let (connection, count) = state.withLock { ($0.connections[index], $0.connections.count) }
            let now = clock.now
            let (sendBy, replyBy) = call.attemptDeadlines(now: now, endpoints: count)
            let result = await attempt(on: connection, path: path, body: body, sendBy: sendBy, replyBy: replyBy, clock: clock)
            if case .reply(let reply) = result, reply.header.code == .ok { return reply.body }
            switch call.next(after: result, at: index, targets: self, now: clock.now) {
            case .fail(let error):
                throw error
            case .send(let next, let pause):
                if next != index {
                    logger.debug("rpc.client.failover", metadata: ["rpc.method": "\(path)", "rpc.from": "\(connection.endpoint)",
                                                                    "rpc.to": "\(endpoint(at: next))"])
                }
                index = next
                if pause > .zero {
                    do { try await Task.sleep(for: pause) } catch { throw .cancelled("call to \(path) cancelled") }
                }
            }
        }
    }

    private func attempt(on connection: ClientConnection, path: String, body: [UInt8], sendBy: ContinuousClock.Instant,
                         replyBy: ContinuousClock.Instant, clock: ContinuousClock) async -> AttemptResult {
        let id = connection.nextRequestID()
        var header = WireRequestHeader()
        header.version = wireProtocolVersion
        header.method = path
        header.requestID = id
        header.caller = caller
        let remaining = replyBy - clock.now
        header.timeoutMicros = UInt64(max(1, remaining.wholeMicroseconds))
        let frames: [ZMQFrame]
        do {
            frames = try Envelope.request(header, body: body)
        } catch {
            return .closed
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                connection.submit(.init(id: id, frames: frames, sendBy: sendBy, deadline: replyBy, continuation: continuation))
            }
        } onCancel: {
            connection.cancel(id)
        }
    }
}

extension RPCClient: FailoverEndpoints {
    var count: Int { state.withLock { $0.connections.count } }

    func endpoint(at index: Int) -> String { state.withLock { $0.targets.endpoints[index] } }

    func moveOn(from index: Int) -> Int { state.withLock { $0.targets.moveOn(from: index) } }

    func follow(leader: String) -> Int? {
        let endpoint = Endpoint.endpoint(for: leader)
        guard Endpoint.problem(with: endpoint) == nil else { return nil }
        let known = state.withLock { state -> Int? in
            guard let index = state.targets.index(of: endpoint) else { return nil }
            state.targets.prefer(index)
            return index
        }
        if let known { return known }
        // A leader not listed: connect to it, unless the list is full or the client closed meanwhile.
        guard let made = try? ClientConnection(context: context, endpoint: endpoint, logger: logger, security: security) else { return nil }
        let (index, spare) = state.withLock { state -> (Int?, ClientConnection?) in
            if state.closed { return (nil, made) }
            if let index = state.targets.index(of: endpoint) {
                state.targets.prefer(index)
                return (index, made)
            }
            guard let index = state.targets.add(endpoint) else { return (nil, made) }
            state.connections.append(made)
            state.targets.prefer(index)
            return (index, nil)
        }
        spare?.close()
        if index != nil { logger.info("rpc.client.leader.added", metadata: ["rpc.endpoint": "\(endpoint)"]) }
        return index
    }
}
