import RPC
import ZeroMQ

/// How a call to the cluster failed: a status code (DESIGN.md's RPC status
/// codes, e.g. `.unavailable`, `.failedPrecondition`) and a message. The same
/// value the services answer with, so a client sees exactly what the server
/// said.
public typealias RingstoreError = RPCError

/// The transport every client of one process shares: one ZeroMQ context,
/// with its I/O threads. Make one, make clients from it, close the clients,
/// then ``shutdown()``.
public final class ClientContext: Sendable {
    package let zmq: ZMQContext

    /// A new context. Fails only when ZeroMQ cannot start (out of file descriptors).
    public init() throws(RingstoreError) {
        do {
            zmq = try ZMQContext()
        } catch {
            throw .unavailable("cannot start ZeroMQ: \(error)")
        }
    }

    /// A context over one that already exists (the process's other sockets share it).
    package init(_ zmq: ZMQContext) {
        self.zmq = zmq
    }

    /// Ends the context; call it after every client made from it is closed.
    public func shutdown() {
        zmq.shutdown()
    }
}

extension RPCClient {
    /// A client of `endpoint` made for the library's public API: a malformed
    /// endpoint is INVALID_ARGUMENT, as any other bad input.
    static func connect(_ context: ClientContext, endpoint: String, caller: String) throws(RingstoreError) -> RPCClient {
        do {
            return try RPCClient(context: context.zmq, endpoint: Endpoint.endpoint(for: endpoint), caller: caller)
        } catch {
            throw .invalidArgument("cannot connect to \(endpoint): \(error)")
        }
    }
}
