import Logging
import RingProtocol
import ZeroMQ

/// A SUB socket on a reactor thread that hands each decoded event to a
/// handler on that thread; the in-reactor counterpart of `EventSubscription`.
public final class EventListener {
    private let socket: ZMQSocket
    private let logger: Logger
    private let handler: (ReceivedEvent) -> Void

    /// Connects to `endpoints` and subscribes to `topics` (empty: all).
    /// With `security`, over CURVE to publishers holding its server key.
    public init(reactor: Reactor, endpoints: [String], topics: [String], security: ClientSecurity? = nil,
                handler: @escaping (ReceivedEvent) -> Void) throws(ZMQError) {
        socket = try ZMQSocket(context: reactor.context, type: .sub)
        try security?.apply(to: socket)
        try socket.setReceiveHighWaterMark(100_000)
        try socket.setReconnectInterval(milliseconds: 100)
        if topics.isEmpty { try socket.subscribe() }
        for topic in topics { try socket.subscribe(topic) }
        for endpoint in endpoints { try socket.connect(endpoint) }
        logger = reactor.logger
        self.handler = handler
        reactor.addReader(socket) { [unowned self] in drain() }
    }

    private func drain() {
        drainWaiting(logger: logger, failure: "events.receive.failed", receive: { () throws(ZMQError) in
            try socket.receive(dontWait: true)
        }, handle: { frames in
            guard frames.count == 2, let event = try? WireEvent(serializedBytes: frames[1]) else {
                logger.notice("events.frame.dropped", metadata: ["events.frames": "\(frames.count)"])
                return
            }
            handler(ReceivedEvent(topic: String(decoding: frames[0], as: UTF8.self), event: event))
        })
    }
}
