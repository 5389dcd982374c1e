import Synchronization
import ZeroMQ

/// A client's CURVE credentials for one server: its own keypair and the
/// server's public key (a client talks only to the server holding it).
public struct ClientSecurity: Sendable, Equatable {
    public let keys: CurveKeyPair
    public let serverKey: CurveKey

    public init(keys: CurveKeyPair, serverKey: CurveKey) {
        self.keys = keys
        self.serverKey = serverKey
    }

    /// Sets CURVE up on a socket before it connects.
    func apply(to socket: ZMQSocket) throws(ZMQError) {
        try socket.setCurveClient(keys, server: serverKey)
    }
}

/// The allowlist a service enforces now; replaced on reload (SIGHUP) while
/// the reactor reads it, so it sits behind a lock.
public final class AllowlistSource: Sendable {
    private let current: Mutex<Allowlist>

    public init(_ allowlist: Allowlist) {
        current = Mutex(allowlist)
    }

    public var allowlist: Allowlist { current.withLock { $0 } }

    /// Replaces the allowlist: new handshakes and every request from then on
    /// are judged by it.
    public func replace(_ allowlist: Allowlist) {
        current.withLock { $0 = allowlist }
    }
}

/// CURVE on every server socket of one reactor (its RPC ROUTER, its event
/// PUB): the service's keypair, the allowlist, and the context's ZAP handler,
/// which must exist once per context.
public final class ServerSecurity {
    public let keys: CurveKeyPair
    public let allowlist: AllowlistSource
    private let zap: ZAPHandler

    /// Starts the ZAP handler of `reactor`'s context.
    public init(reactor: Reactor, keys: CurveKeyPair, allowlist: AllowlistSource) throws(ZMQError) {
        self.keys = keys
        self.allowlist = allowlist
        zap = try ZAPHandler(reactor: reactor) { allowlist.allowlist }
    }

    /// Handshakes the ZAP handler refused so far.
    public var refusedHandshakes: Int { zap.refusedCount }

    /// Makes `socket` a CURVE server authenticated by this ZAP handler; before `bind`.
    func apply(to socket: ZMQSocket) throws(ZMQError) {
        try socket.setCurveServer(keys)
        try socket.setZAPDomain("ringstore")
    }

    /// The listed entry of the peer a message came from (its ZAP User-Id is
    /// its public key); nil when it is not listed (any more).
    func peer(userID: String?) -> Allowlist.Entry? {
        guard let userID, let key = CurveKey(userID) else { return nil }
        return allowlist.allowlist.entry(for: key)
    }
}
