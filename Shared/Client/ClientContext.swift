import Foundation
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
    /// With credentials, every connection made from this context uses CURVE.
    public let credentials: Credentials?

    /// A new context. Fails only when ZeroMQ cannot start (out of file descriptors).
    public init(credentials: Credentials? = nil) throws(RingstoreError) {
        do {
            zmq = try ZMQContext()
        } catch {
            throw .unavailable("cannot start ZeroMQ: \(error)")
        }
        self.credentials = credentials
    }

    /// A context over one that already exists (the process's other sockets share it).
    package init(_ zmq: ZMQContext, credentials: Credentials? = nil) {
        self.zmq = zmq
        self.credentials = credentials
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
        try connect(context, endpoints: [endpoint], caller: caller)
    }

    /// A client of every replica of a replicated service (placement, the lock
    /// service) that follows its leader; INVALID_ARGUMENT for a malformed
    /// endpoint or an empty list.
    static func connect(_ context: ClientContext, endpoints: [String], caller: String) throws(RingstoreError) -> RPCClient {
        let endpoints = endpoints.map(Endpoint.endpoint(for:))
        guard !endpoints.isEmpty else { throw .invalidArgument("no endpoint to connect to") }
        do {
            return try RPCClient(context: context.zmq, endpoints: endpoints, caller: caller, security: context.credentials?.security)
        } catch {
            throw .invalidArgument("cannot connect to \(endpoints.joined(separator: ",")): \(error)")
        }
    }
}

/// A client's CURVE credentials: its keypair (a `.secret` file from `ringctl
/// keygen`, whose public key is on the services' allowlist) and the cluster's
/// server public key (the `.pub` file of the services' keypair).
public struct Credentials: Sendable {
    let security: ClientSecurity

    /// Reads both files; INVALID_ARGUMENT naming the file that is wrong.
    public init(keyFile: URL, serverKeyFile: URL) throws(RingstoreError) {
        do {
            security = ClientSecurity(keys: try KeyFiles.readPair(keyFile), serverKey: try KeyFiles.readPublicKey(serverKeyFile))
        } catch {
            throw .invalidArgument(error.description)
        }
    }

    /// This client's public key, as the allowlist lists it.
    public var publicKey: String { security.keys.publicKey.z85 }
}
