import CAcceptLog
import Glibc
import Logging
import ZeroMQ

/// The TCP connections of one CURVE server socket (an RPC ROUTER or an event
/// PUB), as its socket monitor reports them, for two things the ZAP handler
/// cannot do:
///
/// - **Log refused handshakes with the peer's address.** libzmq refuses a
///   plaintext peer (or one with a wrong server key) at the mechanism check,
///   before ZAP: the monitor says HANDSHAKE_FAILED_PROTOCOL and, right after,
///   DISCONNECTED with the descriptor, whose address was read when it was
///   ACCEPTED. (A peer that does not speak ZMTP at all, an HTTP probe, closes
///   without a handshake event and is not logged.)
/// - **Close a revoked key's open connections** (`revoke`): a connection
///   whose requests came with a key no longer listed, and every connection
///   whose key is not known (on a PUB, subscribers never send one; on a
///   ROUTER, one that has not sent a request yet), is shut down
///   (`shutdown(2)`, so libzmq still owns and closes the descriptor). Listed
///   peers reconnect by themselves and pass the ZAP check again; the revoked
///   key's reconnects are refused.
///
/// Reactor-thread only, like the socket it watches.
final class ConnectionGuard {
    /// The events the monitor of a guarded socket must report.
    static let events: ZMQSocketEvent.Kind = [.accepted, .disconnected, .handshakeFailedProtocol, .handshakeFailedNoDetail]

    private struct Connection {
        let address: String
        var key: CurveKey?
    }

    private var open: [Int32: Connection] = [:]
    /// A handshake failure waiting for its connection's DISCONNECTED.
    private var failure: String?
    private var refusals = RefusalLog()
    private let logger: Logger
    private let socketKind: String
    /// The TCP port the socket is bound to (0 until `bound(to:)`).
    private var port: UInt32 = 0

    init(logger: Logger, socketKind: String) {
        self.logger = logger
        self.socketKind = socketKind
    }

    /// The socket is bound to `endpoint` (`tcp://host:port`): its accepts are
    /// the ones on that port.
    func bound(to endpoint: String) {
        port = endpoint.split(separator: ":").last.flatMap { UInt32($0) } ?? 0
    }

    /// The connections open now (for tests and Health).
    var openConnections: Int { open.count }

    /// Applies one monitor event.
    func observe(_ event: ZMQSocketEvent) {
        switch event.kind {
        case .accepted:
            open[event.value] = Connection(address: Self.acceptedAddress(event.value, port: port) ?? "unknown", key: nil)
        case .handshakeFailedProtocol, .handshakeFailedNoDetail:
            failure = event.handshakeFailure
        case .disconnected:
            let closed = open.removeValue(forKey: event.value)
            if let reason = failure {
                failure = nil
                refused(address: closed?.address ?? "unknown", reason: reason)
            }
        default:
            break
        }
    }

    /// A request on `descriptor` came with `key` (its ZAP User-Id).
    func identified(descriptor: Int32, key: CurveKey) {
        guard descriptor >= 0, open[descriptor]?.key == nil, open[descriptor] != nil else { return }
        open[descriptor]?.key = key
    }

    /// Shuts down the connections of `keys` and those whose key is unknown;
    /// returns how many. A descriptor is shut down only while it still has
    /// the peer address it was accepted with, so a descriptor libzmq closed
    /// and the process reused (before its DISCONNECTED was read) is left alone.
    @discardableResult
    func revoke(_ keys: Set<CurveKey>) -> Int {
        var closed = 0
        for (descriptor, connection) in open where connection.key.map(keys.contains) ?? true {
            guard Self.peerAddress(descriptor) == connection.address else { continue }
            if shutdown(descriptor, Int32(SHUT_RDWR)) == 0 {
                closed += 1
                logger.notice("security.connection.closed", metadata: [
                    "peer.address": "\(connection.address)", "security.socket": "\(socketKind)",
                    "security.reason": "\(connection.key == nil ? "key unknown: reconnect to be checked again" : "key removed from the allowlist")",
                ])
            }
        }
        return closed
    }

    private func refused(address: String, reason: String) {
        let host = address.lastIndex(of: ":").map { String(address[..<$0]) } ?? address
        if let suppressed = refusals.record(address: host, reason: reason, at: ContinuousClock.now) {
            logger.warning("security.handshake.refused", metadata: ["peer.address": "\(address)", "security.reason": "\(reason)",
                                                                     "security.socket": "\(socketKind)", "log.suppressed": "\(suppressed)"])
        }
    }

    /// `host:port` of the TCP peer on `descriptor` as `getpeername` says now.
    static func peerAddress(_ descriptor: Int32) -> String? { ConnectionAddress.peer(of: descriptor) }

    /// The address `descriptor` had when the listener on `port` accepted it
    /// (see CAcceptLog), else what `getpeername` says now.
    static func acceptedAddress(_ descriptor: Int32, port: UInt32) -> String? {
        ConnectionAddress.read { ringstore_accepted_address(descriptor, port, $0, $1) } ?? peerAddress(descriptor)
    }
}

/// Addresses of TCP sockets, as `a.b.c.d:port` or `[v6]:port`.
public enum ConnectionAddress {
    /// The peer of a connected socket; nil when it is not one.
    public static func peer(of descriptor: Int32) -> String? {
        read { ringstore_peer_address(descriptor, $0, $1) }
    }

    /// The local address of a socket (a listener's bound port).
    public static func local(of descriptor: Int32) -> String? {
        read { ringstore_local_address(descriptor, $0, $1) }
    }

    static func read(_ fill: (UnsafeMutablePointer<CChar>, Int) -> Int32) -> String? {
        var buffer = [CChar](repeating: 0, count: 64)
        guard fill(&buffer, buffer.count) == 1 else { return nil }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
