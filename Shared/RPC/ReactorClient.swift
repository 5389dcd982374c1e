import Basics
import Foundation
import Logging
import RingProtocol
import SwiftProtobuf
import ZeroMQ

/// A client of one service owned by a reactor: its DEALER sockets are polled
/// by the reactor, requests are sent and replies completed on the reactor
/// thread, with no task or thread per call. For the calls a reactor service
/// makes to its peers (replica writes and reads, migration batches, digests)
/// and to placement (joins, heartbeats, reports).
///
/// Each call has a deadline; a request that finds no connection waits for one
/// until its deadline and then fails UNAVAILABLE with `neverSent` (it is safe
/// to retry). The sockets are watched (`zmq_socket_monitor`): when a
/// connection drops, every request sent on it fails at once with
/// UNAVAILABLE, possibly applied, instead of waiting for its deadline. A
/// client of one endpoint does not retry: the callers (quorums, hints,
/// migration credit, heartbeats) decide what a failure means.
///
/// A client of a replicated service (placement's replicas) has one socket per
/// endpoint and fails over by the rules `RPCClient` follows (``FailoverCall``):
/// a follower's refusal goes to the leader it names (or, with no leader
/// elected, to the next endpoint after a pause), a request that found no
/// connection within a short wait goes to the next endpoint, and a request
/// that may have been applied is sent again only for an idempotent method.
///
/// Used only on its reactor's thread; `close()` it before dropping it.
public final class ReactorClient {
    public let caller: String
    private let reactor: Reactor
    private let logger: Logger
    private let security: ClientSecurity?
    private var targets: FailoverTargets
    /// One per endpoint of `targets`, in its order.
    private var connections: [ReactorConnection]
    /// Calls pausing before their next attempt: the timer and the completion.
    private var pausing: [Int: (timer: Int, fail: (RPCError) -> Void)] = [:]
    private var nextPause = 0
    private var outstanding = 0
    private var closed = false

    /// Connects (in the background) to `endpoint` and registers with `reactor`.
    public convenience init(reactor: Reactor, endpoint: String, caller: String, logger: Logger? = nil,
                            security: ClientSecurity? = nil) throws(ZMQError) {
        try self.init(reactor: reactor, endpoints: [endpoint], caller: caller, logger: logger, security: security)
    }

    /// Connects (in the background) to every endpoint of a replicated service;
    /// calls start at the first. An empty list is EINVAL.
    public init(reactor: Reactor, endpoints: [String], caller: String, logger: Logger? = nil,
                security: ClientSecurity? = nil) throws(ZMQError) {
        guard !endpoints.isEmpty else { throw ZMQError(code: EINVAL, operation: "connect: no endpoint") }
        self.reactor = reactor
        self.caller = caller
        self.logger = logger ?? reactor.logger
        self.security = security
        targets = FailoverTargets(endpoints)
        var connections: [ReactorConnection] = []
        do {
            for endpoint in targets.endpoints {
                connections.append(try ReactorConnection(reactor: reactor, endpoint: endpoint, logger: self.logger, security: security))
            }
        } catch {
            for connection in connections { connection.close(notify: false) }
            throw error
        }
        self.connections = connections
    }

    /// The endpoint calls go to first now (the leader, as far as this client knows).
    public var endpoint: String { targets.current }

    /// Every endpoint of the service, including leaders that replies named.
    public var endpoints: [String] { targets.endpoints }

    /// Calls not completed yet (sent, waiting for a connection, or pausing before another attempt).
    public var inFlight: Int { outstanding }

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
        callRaw(path: method.path, idempotent: method.idempotent, body: body, timeout: timeout) { [weak self] result in
            then(result.flatMap { bytes in
                do {
                    return .success(try Response(serializedBytes: bytes))
                } catch {
                    return .failure(.internalError("undecodable \(Response.protoMessageName) from \(self?.endpoint ?? "the service")"))
                }
            })
        }
    }

    /// Calls a method by name with an encoded body; `then` gets the reply body.
    public func callRaw(path: String, idempotent: Bool = false, body: [UInt8], timeout: Duration,
                        then: @escaping (Result<[UInt8], RPCError>) -> Void) {
        guard !closed else {
            let endpoint = endpoint
            reactor.after(.zero) { then(.failure(.unavailable("connection to \(endpoint) closed"))) }
            return
        }
        outstanding += 1
        let call = FailoverCall(path: path, idempotent: idempotent, timeout: timeout, now: reactor.now, retriesUnavailable: false)
        attempt(call, at: targets.preferred, body: body) { [weak self] result in
            self?.outstanding -= 1
            then(result)
        }
    }

    /// Stops polling the sockets and fails every outstanding request with
    /// UNAVAILABLE; with `notify` false (the owner is being torn down and its
    /// callbacks must not run) they are dropped instead.
    public func close(notify: Bool = true) {
        guard !closed else { return }
        closed = true
        let paused = pausing.sorted { $0.key < $1.key }.map(\.value)
        pausing.removeAll()
        for call in paused { reactor.cancelTimer(call.timer) }
        for connection in connections { connection.close(notify: notify) }
        if notify {
            let failure = RPCError.unavailable("connection to \(endpoint) closed")
            for call in paused { call.fail(failure) }
        }
    }

    /// Sends `call` to the endpoint at `index`, then follows its outcome.
    private func attempt(_ call: FailoverCall, at index: Int, body: [UInt8], then: @escaping (Result<[UInt8], RPCError>) -> Void) {
        let connection = connections[index]
        let (sendBy, replyBy) = call.attemptDeadlines(now: reactor.now, endpoints: connections.count)
        connection.send(path: call.path, body: body, caller: caller, sendBy: sendBy, deadline: replyBy) { [weak self] result in
            if case .reply(let reply) = result, reply.header.code == .ok {
                then(.success(reply.body))
                return
            }
            guard let self else { return }
            var call = call
            switch call.next(after: result, at: index, targets: self, now: reactor.now) {
            case .fail(let error):
                then(.failure(error))
            case .send(let next, let pause):
                if next != index {
                    logger.debug("rpc.client.failover", metadata: ["rpc.method": "\(call.path)", "rpc.from": "\(connection.endpoint)",
                                                                    "rpc.to": "\(connections[next].endpoint)"])
                }
                resend(call, at: next, after: pause, body: body, then: then)
            }
        }
    }

    private func resend(_ call: FailoverCall, at index: Int, after pause: Duration, body: [UInt8],
                        then: @escaping (Result<[UInt8], RPCError>) -> Void) {
        guard pause > .zero else {
            attempt(call, at: index, body: body, then: then)
            return
        }
        nextPause += 1
        let key = nextPause
        let timer = reactor.after(pause) { [weak self] in
            guard let self, pausing.removeValue(forKey: key) != nil else { return }
            attempt(call, at: index, body: body, then: then)
        }
        pausing[key] = (timer, { then(.failure($0)) })
    }
}

extension ReactorClient: FailoverEndpoints {
    var count: Int { connections.count }

    func endpoint(at index: Int) -> String { targets.endpoints[index] }

    func moveOn(from index: Int) -> Int { targets.moveOn(from: index) }

    func follow(leader: String) -> Int? {
        let endpoint = Endpoint.endpoint(for: leader)
        guard Endpoint.problem(with: endpoint) == nil else { return nil }
        if let index = targets.index(of: endpoint) {
            targets.prefer(index)
            return index
        }
        guard !closed, targets.endpoints.count < FailoverTargets.maxEndpoints,
              let connection = try? ReactorConnection(reactor: reactor, endpoint: endpoint, logger: logger, security: security),
              let index = targets.add(endpoint)
        else { return nil }
        connections.append(connection)
        targets.prefer(index)
        logger.info("rpc.client.leader.added", metadata: ["rpc.endpoint": "\(endpoint)"])
        return index
    }
}
