import ZeroMQ

extension ZMQSocket {
    /// A client's DEALER connected (in the background) to `endpoint`, and the
    /// monitor watching it for dropped connections (created before connecting,
    /// so no disconnect goes unseen; `nil` if libzmq refused it). Requests are
    /// queued only on a live connection (immediate), up to 100,000 each way;
    /// a lost connection is retried every 50 ms. With `security`, CURVE.
    static func connectedDealer(context: ZMQContext, endpoint: String, security: ClientSecurity?) throws(ZMQError) -> (ZMQSocket, ZMQSocketMonitor?) {
        let socket = try ZMQSocket(context: context, type: .dealer)
        try security?.apply(to: socket)
        try socket.setImmediate(true)
        try socket.setSendHighWaterMark(100_000)
        try socket.setReceiveHighWaterMark(100_000)
        try socket.setReconnectInterval(milliseconds: 50)
        let monitor = try? ZMQSocketMonitor(watching: socket, events: .disconnected)
        try socket.connect(endpoint)
        return (socket, monitor)
    }
}
