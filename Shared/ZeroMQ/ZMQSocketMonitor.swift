import CZeroMQ
import Synchronization

/// A connection event of a monitored socket (libzmq's `zmq_socket_monitor`).
public struct ZMQSocketEvent: Sendable, Equatable {
    /// Which events to watch, and which one happened.
    public struct Kind: OptionSet, Sendable, Hashable {
        public let rawValue: Int32
        public init(rawValue: Int32) { self.rawValue = rawValue }

        /// A listening socket accepted a connection; the value is its descriptor.
        public static let accepted = Kind(rawValue: ZMQ_EVENT_ACCEPTED)
        /// A connection closed (the peer went away or broke the protocol); the
        /// value is the descriptor it had.
        public static let disconnected = Kind(rawValue: ZMQ_EVENT_DISCONNECTED)
        /// A handshake broke the protocol (a plaintext peer at a CURVE socket,
        /// a wrong server key); the value is a `ZMQ_PROTOCOL_ERROR_*` code.
        /// libzmq reports the connection's `disconnected` right after it.
        public static let handshakeFailedProtocol = Kind(rawValue: ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)
        /// A handshake failed for another reason (the value is an errno).
        public static let handshakeFailedNoDetail = Kind(rawValue: ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)
    }

    public let kind: Kind
    /// The event's value: for `accepted` and `disconnected`, the connection's descriptor.
    public let value: Int32
    /// The endpoint the event is about.
    public let endpoint: String

    public init(kind: Kind, value: Int32, endpoint: String) {
        self.kind = kind
        self.value = value
        self.endpoint = endpoint
    }

    /// What a `handshakeFailedProtocol` event's value means, in words.
    public var handshakeFailure: String {
        switch value {
        case ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH: return "plaintext peer (CURVE required)"
        case ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC: return "CURVE handshake failed (a wrong server key?)"
        default:
            // A peer that sees the mismatch first (a plaintext one often does)
            // hangs up, and this side only sees the connection go (EPIPE, ECONNRESET).
            return kind == .handshakeFailedProtocol ? "protocol error 0x\(String(UInt32(bitPattern: value), radix: 16))"
                                                   : "the peer broke off the handshake (errno \(value))"
        }
    }

    /// Reads the two frames libzmq sends for an event: `[event u16, value u32]`
    /// in the machine's byte order, then the endpoint. Nil for any other shape.
    public static func parse(_ frames: [ZMQFrame]) -> ZMQSocketEvent? {
        guard frames.count == 2, frames[0].count == 6 else { return nil }
        let (event, value) = frames[0].withUnsafeBytes { bytes in
            (bytes.loadUnaligned(fromByteOffset: 0, as: UInt16.self), bytes.loadUnaligned(fromByteOffset: 2, as: UInt32.self))
        }
        return ZMQSocketEvent(kind: Kind(rawValue: Int32(event)), value: Int32(bitPattern: value),
                              endpoint: String(decoding: frames[1], as: UTF8.self))
    }
}

/// Watches a socket's connections: libzmq publishes the chosen events on an
/// inproc PAIR socket, which this object owns and the owning thread polls
/// (`socket`) next to the watched socket.
///
/// Create it before the watched socket binds, so that no connection is
/// accepted unseen. Like every socket it belongs to one thread.
///
/// libzmq sends events with blocking sends from whichever thread notices them
/// (often its I/O thread): an event for a receiving end that is already closed
/// blocks that thread for good, and with it every connection of the context.
/// So ``close()`` stops the monitor before closing the receiving end, and it
/// must run before the watched socket closes (`deinit` does it too: the
/// monitor keeps the watched socket alive until then).
public final class ZMQSocketMonitor {
    /// The receiving end, for a poller.
    public let socket: ZMQSocket
    private let target: ZMQSocket
    private static let nextID = Atomic<UInt64>(0)

    public init(watching target: ZMQSocket, events: ZMQSocketEvent.Kind) throws(ZMQError) {
        let id = Self.nextID.wrappingAdd(1, ordering: .relaxed).newValue
        let address = "inproc://ringstore-monitor-\(id)"
        let handle = target.rawHandle
        try zmqCall("zmq_socket_monitor(\(address))") { zmq_socket_monitor(handle, address, events.rawValue) }
        self.target = target
        do {
            socket = try ZMQSocket(context: target.context, type: .pair)
            // Never drop an event for a full queue: a missed event would mislead
            // whoever keeps track of the connections.
            try socket.setReceiveHighWaterMark(0)
            try socket.connect(address)
        } catch {
            _ = zmq_socket_monitor(handle, nil, 0)
            throw error
        }
    }

    deinit { close() }

    /// Stops watching, then closes the receiving end; later calls do nothing.
    /// Call it before closing the watched socket.
    public func close() {
        guard !socket.isClosed else { return }
        if !target.isClosed { _ = zmq_socket_monitor(target.rawHandle, nil, 0) }
        socket.close()
    }

    /// The next event waiting, without blocking; nil when there is none.
    /// Messages of any other shape are skipped.
    public func next() throws(ZMQError) -> ZMQSocketEvent? {
        while let frames = try socket.receive(dontWait: true) {
            if let event = ZMQSocketEvent.parse(frames) { return event }
        }
        return nil
    }
}
