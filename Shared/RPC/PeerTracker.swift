/// One connection of a client to a server's ROUTER socket, as the server saw
/// it: unique for the server's life, even when the operating system reuses
/// the connection's descriptor for a later connection.
public struct PeerConnection: Hashable, Sendable, CustomStringConvertible {
    public let id: UInt64

    public init(id: UInt64) { self.id = id }

    public var description: String { "peer#\(id)" }
}

/// Which connection each request came in on, and which connections closed,
/// from the socket monitor's ACCEPTED and DISCONNECTED events (which carry a
/// descriptor) and each message's source descriptor (`ZMQ_SRCFD`).
///
/// Descriptors are reused, so the tracker numbers connections itself: every
/// ACCEPTED starts a new `PeerConnection` on its descriptor. The server reads
/// a batch of messages first and the monitor's events after it (`RPCServer`),
/// and then labels each message with the newest connection of its descriptor.
/// libzmq (with one I/O thread, as Ringstore's contexts have) emits a
/// connection's ACCEPTED before it reads anything from it, so the events read
/// after a message always include its own connection's ACCEPTED: a message is
/// never labelled with an older connection that closed, and so a live
/// client's request is never taken for a gone one. The one mistake left goes
/// the other way, and only when a message of a closing connection is read in
/// the same batch as the next connection on its descriptor is accepted: it is
/// labelled with the new connection, and what it parked waits for its own
/// deadline as it did before peers were tracked.
struct PeerTracker {
    private var connections: [Int32: (peer: PeerConnection, open: Bool)] = [:]
    private var lastID: UInt64 = 0

    /// A connection was accepted on `descriptor`. Returns the previous
    /// connection on it when that one never reported its close (it is gone).
    mutating func accepted(descriptor: Int32) -> PeerConnection? {
        let previous = connections[descriptor]
        lastID += 1
        connections[descriptor] = (PeerConnection(id: lastID), true)
        if let previous, previous.open { return previous.peer }
        return nil
    }

    /// The connection on `descriptor` closed. Returns it, unless it was
    /// unknown or already closed.
    mutating func disconnected(descriptor: Int32) -> PeerConnection? {
        guard let current = connections[descriptor], current.open else { return nil }
        connections[descriptor] = (current.peer, false)
        return current.peer
    }

    /// The newest connection on `descriptor` and whether it is still open;
    /// nil for a message with no descriptor (inproc) or from a connection
    /// accepted before tracking began.
    func peer(descriptor: Int32) -> (peer: PeerConnection, open: Bool)? {
        guard descriptor >= 0 else { return nil }
        return connections[descriptor]
    }
}
