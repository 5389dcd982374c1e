import Foundation
import Logging
import RingProtocol
import ZeroMQ

/// The event side of a service: a PUB socket on the reactor thread that
/// publishes `[topic][Event]` frames, numbering each topic's events from 1.
public final class EventPublisher {
    /// The endpoint actually bound.
    public let endpoint: String
    /// The address stamped on every event as its source.
    public let source: String
    /// This run of the process (its start time in microseconds); subscribers
    /// see sequence numbers restart when it changes.
    public let incarnation: UInt64
    private let socket: ZMQSocket
    private var sequences: [String: UInt64] = [:]
    private var observers: [(WireEvent) -> Void] = []
    private let logger: Logger
    /// With CURVE: the socket's connections (refused handshakes logged,
    /// subscribers cut off when a reload revokes keys).
    private let monitor: ZMQSocketMonitor?
    private let guardian: ConnectionGuard?

    /// Binds a PUB on `endpoint`. With `security`, only CURVE subscribers
    /// whose key is on the allowlist connect (and so receive anything), and
    /// when a reload removes keys every subscriber connection is closed: a
    /// PUB never learns which key a subscriber has, so all reconnect and only
    /// listed keys get back in. They see a sequence gap and resnapshot, as
    /// after any reconnect.
    public init(reactor: Reactor, endpoint: String, source: String, security: ServerSecurity? = nil) throws(ZMQError) {
        socket = try ZMQSocket(context: reactor.context, type: .pub)
        try security?.apply(to: socket)
        try socket.setSendHighWaterMark(100_000)
        guardian = security.map { _ in ConnectionGuard(logger: reactor.logger, socketKind: "events") }
        monitor = security == nil ? nil : try ZMQSocketMonitor(watching: socket, events: ConnectionGuard.events)
        self.endpoint = try socket.bind(endpoint)
        self.source = source
        guardian?.bound(to: self.endpoint)
        self.incarnation = UInt64(Date().timeIntervalSince1970 * 1_000_000)
        self.logger = reactor.logger
        if let monitor {
            reactor.addReader(monitor.socket) { [unowned self] in self.readConnectionEvents() }
        }
        security?.onRevoked { [weak self] keys in
            guard let self else { return }
            readConnectionEvents()
            guardian?.revoke(keys)
        }
    }

    private func readConnectionEvents() {
        guard let monitor, let guardian else { return }
        do {
            while let event = try monitor.next() { guardian.observe(event) }
        } catch {
            if error != .terminated { logger.error("events.monitor.failed", metadata: ["events.error": "\(error)"]) }
        }
    }

    /// The last sequence number of every topic published so far, which a
    /// snapshot reports so subscribers can skip older events.
    public var lastSequences: [String: UInt64] { sequences }

    /// Calls `handler` on the reactor thread with every event published from
    /// now on, right after it went out on the socket (placement's status
    /// page streams them).
    public func observe(_ handler: @escaping (WireEvent) -> Void) {
        observers.append(handler)
    }

    /// Publishes an event and returns it as sent. PUB never blocks: a slow
    /// subscriber past its high-water mark loses events, which is why
    /// subscribers follow the clone pattern.
    @discardableResult
    public func publish(topic: String, type: String, epoch: UInt64 = 0, details: WireEvent.OneOf_Details? = nil) -> WireEvent {
        let seq = sequences[topic, default: 0] + 1
        sequences[topic] = seq
        var event = WireEvent()
        event.topic = topic
        event.type = type
        event.epoch = epoch
        event.seq = seq
        event.timeUnixMicros = Int64(Date().timeIntervalSince1970 * 1_000_000)
        event.source = source
        event.incarnation = incarnation
        event.details = details
        do {
            let bytes: [UInt8] = try event.serializedBytes()
            _ = try socket.send([Array(topic.utf8), bytes], dontWait: true)
        } catch {
            logger.error("events.publish.failed", metadata: ["event.topic": "\(topic)", "event.error": "\(error)"])
        }
        for observer in observers { observer(event) }
        return event
    }
}
