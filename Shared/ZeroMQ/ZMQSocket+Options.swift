import CZeroMQ

/// The socket options Ringstore uses, as typed properties.
///
/// Setters throw through the same funnel as every other libzmq call, so they are
/// methods rather than settable properties.
extension ZMQSocket {
    /// The endpoint last bound or connected, with the real port for a `*` bind.
    public var lastEndpoint: String {
        get throws(ZMQError) {
            let bytes = try bytesOption(ZMQ_LAST_ENDPOINT, capacity: 256, "ZMQ_LAST_ENDPOINT")
            return String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    /// How long pending messages are kept after `close()`, in milliseconds
    /// (-1 forever, 0 drop at once).
    public func setLinger(milliseconds: Int32) throws(ZMQError) {
        try setOption(ZMQ_LINGER, milliseconds, "ZMQ_LINGER")
    }

    /// The queue limit of outgoing messages per peer.
    public func setSendHighWaterMark(_ messages: Int32) throws(ZMQError) {
        try setOption(ZMQ_SNDHWM, messages, "ZMQ_SNDHWM")
    }

    /// The queue limit of incoming messages per peer.
    public func setReceiveHighWaterMark(_ messages: Int32) throws(ZMQError) {
        try setOption(ZMQ_RCVHWM, messages, "ZMQ_RCVHWM")
    }

    /// How long a blocking receive waits before it returns `nil` (-1: forever).
    public func setReceiveTimeout(milliseconds: Int32) throws(ZMQError) {
        try setOption(ZMQ_RCVTIMEO, milliseconds, "ZMQ_RCVTIMEO")
    }

    /// How long a blocking send waits before it reports `wouldBlock` (-1: forever).
    public func setSendTimeout(milliseconds: Int32) throws(ZMQError) {
        try setOption(ZMQ_SNDTIMEO, milliseconds, "ZMQ_SNDTIMEO")
    }

    /// The identity a DEALER or REQ socket presents to a ROUTER (1 to 255 bytes).
    public func setRoutingID(_ id: [UInt8]) throws(ZMQError) {
        try setOption(ZMQ_ROUTING_ID, bytes: id, "ZMQ_ROUTING_ID")
    }

    /// The largest inbound frame accepted, in bytes; a peer sending more is
    /// disconnected by libzmq (-1: no limit).
    public func setMaximumMessageSize(_ bytes: Int64) throws(ZMQError) {
        let socket = rawHandle
        var value = bytes
        try zmqCall("zmq_setsockopt(ZMQ_MAXMSGSIZE)") {
            zmq_setsockopt(socket, ZMQ_MAXMSGSIZE, &value, MemoryLayout<Int64>.size)
        }
    }

    /// Queue messages only to completed connections, so a send to an absent peer
    /// fails at once instead of waiting in a queue.
    public func setImmediate(_ on: Bool) throws(ZMQError) {
        try setOption(ZMQ_IMMEDIATE, on ? 1 : 0, "ZMQ_IMMEDIATE")
    }

    /// Make a ROUTER report an unroutable peer (`hostUnreachable`) instead of
    /// silently dropping the message.
    public func setRouterMandatory(_ on: Bool) throws(ZMQError) {
        try setOption(ZMQ_ROUTER_MANDATORY, on ? 1 : 0, "ZMQ_ROUTER_MANDATORY")
    }

    /// Reconnect interval after a lost connection, in milliseconds.
    public func setReconnectInterval(milliseconds: Int32) throws(ZMQError) {
        try setOption(ZMQ_RECONNECT_IVL, milliseconds, "ZMQ_RECONNECT_IVL")
    }

    /// Subscribe a SUB socket to messages whose first frame starts with `prefix`
    /// (empty: everything).
    public func subscribe(_ prefix: [UInt8] = []) throws(ZMQError) {
        try setOption(ZMQ_SUBSCRIBE, bytes: prefix, "ZMQ_SUBSCRIBE")
    }

    /// Subscribe a SUB socket to a topic prefix given as a string.
    public func subscribe(_ prefix: String) throws(ZMQError) {
        try subscribe(Array(prefix.utf8))
    }

    /// Undo a `subscribe` with the same prefix.
    public func unsubscribe(_ prefix: [UInt8]) throws(ZMQError) {
        try setOption(ZMQ_UNSUBSCRIBE, bytes: prefix, "ZMQ_UNSUBSCRIBE")
    }

    // MARK: CURVE security (for later: encrypted, authenticated links)

    /// Make this socket a CURVE server (it needs its secret key set).
    public func setCurveServer(_ on: Bool) throws(ZMQError) {
        try setOption(ZMQ_CURVE_SERVER, on ? 1 : 0, "ZMQ_CURVE_SERVER")
    }

    /// This socket's long-term CURVE public key (32 bytes).
    public func setCurvePublicKey(_ key: [UInt8]) throws(ZMQError) {
        try setOption(ZMQ_CURVE_PUBLICKEY, bytes: key, "ZMQ_CURVE_PUBLICKEY")
    }

    /// This socket's long-term CURVE secret key (32 bytes).
    public func setCurveSecretKey(_ key: [UInt8]) throws(ZMQError) {
        try setOption(ZMQ_CURVE_SECRETKEY, bytes: key, "ZMQ_CURVE_SECRETKEY")
    }

    /// The server's public key a CURVE client expects (32 bytes).
    public func setCurveServerKey(_ key: [UInt8]) throws(ZMQError) {
        try setOption(ZMQ_CURVE_SERVERKEY, bytes: key, "ZMQ_CURVE_SERVERKEY")
    }

    /// Whether a message can be received now without blocking.
    public var canReceive: Bool {
        get throws(ZMQError) {
            try int32Option(ZMQ_EVENTS, "ZMQ_EVENTS") & Int32(ringstore_zmq_pollin()) != 0
        }
    }
}

/// A CURVE key pair, Z85-decoded to 32-byte keys.
public struct ZMQCurveKeyPair: Sendable {
    public let publicKey: [UInt8]
    public let secretKey: [UInt8]

    /// Generates a new key pair (libzmq must be built with CURVE support).
    public static func generate() throws(ZMQError) -> ZMQCurveKeyPair {
        var publicText = [CChar](repeating: 0, count: 41)
        var secretText = [CChar](repeating: 0, count: 41)
        try zmqCall("zmq_curve_keypair") { zmq_curve_keypair(&publicText, &secretText) }
        var publicKey = [UInt8](repeating: 0, count: 32)
        var secretKey = [UInt8](repeating: 0, count: 32)
        guard zmq_z85_decode(&publicKey, publicText) != nil,
              zmq_z85_decode(&secretKey, secretText) != nil
        else { throw ZMQError.last("zmq_z85_decode") }
        return ZMQCurveKeyPair(publicKey: publicKey, secretKey: secretKey)
    }
}
