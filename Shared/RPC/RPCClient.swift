import Basics
import Logging
import RingProtocol
import SwiftProtobuf
import ZeroMQ

/// A client of one service endpoint over a DEALER socket: many requests in
/// flight on one connection, replies matched by request id, deadlines, and
/// retries with backoff for idempotent methods only. A request in flight when
/// the connection drops fails at once with UNAVAILABLE, marked as possibly
/// applied (an idempotent one is retried instead).
///
/// Thread-safe: any task may call it concurrently.
public final class RPCClient: Sendable {
    /// The endpoint this client connects to, e.g. `tcp://127.0.0.1:7400`.
    public let endpoint: String
    /// The identity sent in every request header.
    public let caller: String
    private let connection: ClientConnection

    /// Connects (in the background) to `endpoint`. The context may be shared by
    /// many clients of one process.
    /// With `security`, the connection is CURVE-encrypted and authenticated.
    public init(context: ZMQContext, endpoint: String, caller: String, logger: Logger = Logger(label: "ringstore.rpc.client"),
                security: ClientSecurity? = nil) throws(ZMQError) {
        self.endpoint = endpoint
        self.caller = caller
        connection = try ClientConnection(context: context, endpoint: endpoint, logger: logger, security: security)
    }

    deinit { connection.close() }

    /// Ends the connection; calls in flight fail with UNAVAILABLE.
    public func close() { connection.close() }

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
        let overall = clock.now + options.timeout
        var backoff = options.initialBackoff
        var attempt = 0
        while true {
            attempt += 1
            let now = clock.now
            var deadline = overall
            if idempotent, let perAttempt = options.attemptTimeout { deadline = min(overall, now + perAttempt) }
            let result = await self.attempt(path: path, body: body, deadline: deadline, clock: clock)
            let mayRetry = idempotent && attempt < options.maxAttempts && clock.now < overall
            switch result {
            case .reply(let reply):
                if reply.header.code == .ok { return reply.body }
                if reply.header.code == .unavailable && mayRetry { break }
                throw RPCError(reply: reply.header)
            case .notSent:
                if clock.now < overall && attempt < options.maxAttempts * 4 { break }
                throw RPCError(.unavailable, "no connection to \(endpoint)", neverSent: true)
            case .timedOut:
                if mayRetry { break }
                throw .deadlineExceeded("no reply from \(endpoint) to \(path) within \(options.timeout)")
            case .disconnected:
                // Safe to send again only when the method is idempotent.
                if mayRetry { break }
                throw .unavailable("connection to \(endpoint) lost with \(path) in flight; it may have been applied")
            case .closed:
                throw .unavailable("connection to \(endpoint) closed")
            case .cancelled:
                throw .cancelled("call to \(path) cancelled")
            }
            // Backoff with jitter, never past the overall deadline.
            let remaining = overall - clock.now
            guard remaining > .zero else { throw .deadlineExceeded("no reply from \(endpoint) to \(path) within \(options.timeout)") }
            let pause = min(remaining, backoff * Double.random(in: 0.5...1.0))
            do { try await Task.sleep(for: pause) } catch { throw .cancelled("call to \(path) cancelled") }
            backoff = min(options.maxBackoff, backoff * 2)
        }
    }

    private func attempt(path: String, body: [UInt8], deadline: ContinuousClock.Instant, clock: ContinuousClock) async -> AttemptResult {
        let id = connection.nextRequestID()
        var header = WireRequestHeader()
        header.version = wireProtocolVersion
        header.method = path
        header.requestID = id
        header.caller = caller
        let remaining = deadline - clock.now
        header.timeoutMicros = UInt64(max(1, remaining.wholeMicroseconds))
        let frames: [ZMQFrame]
        do {
            frames = try Envelope.request(header, body: body)
        } catch {
            return .closed
        }
        let connection = self.connection
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                connection.submit(.init(id: id, frames: frames, deadline: deadline, continuation: continuation))
            }
        } onCancel: {
            connection.cancel(id)
        }
    }
}
