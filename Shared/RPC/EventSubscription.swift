import Foundation
import Synchronization
import Logging
import RingProtocol
import ZeroMQ

/// An event as a subscriber received it.
public struct ReceivedEvent: Sendable {
    /// The topic frame.
    public let topic: String
    public let event: WireEvent
}

/// A SUB socket on its own thread, connected to one or more PUB endpoints,
/// delivering decoded events as an `AsyncStream`.
///
/// Subscribe first, then fetch a snapshot, then apply only events newer than
/// it (the clone pattern): events published before the subscription took
/// effect are not delivered.
public final class EventSubscription: Sendable {
    /// The events, in the order they arrived.
    public let events: AsyncStream<ReceivedEvent>
    private let waker: Waker
    private let stopped: StopFlag

    /// Connects to `endpoints` and subscribes to `topics` (empty: all topics).
    /// With `security`, over CURVE to publishers holding its server key.
    public init(context: ZMQContext, endpoints: [String], topics: [String] = [], logger: Logger = Logger(label: "ringstore.events"),
                security: ClientSecurity? = nil) throws(ZMQError) {
        let socket = try ZMQSocket(context: context, type: .sub)
        try security?.apply(to: socket)
        try socket.setReceiveHighWaterMark(100_000)
        try socket.setReconnectInterval(milliseconds: 100)
        if topics.isEmpty {
            try socket.subscribe()
        } else {
            for topic in topics { try socket.subscribe(topic) }
        }
        for endpoint in endpoints { try socket.connect(endpoint) }
        let waker = try Waker()
        self.waker = waker
        let stopped = StopFlag()
        self.stopped = stopped
        let (stream, continuation) = AsyncStream.makeStream(of: ReceivedEvent.self, bufferingPolicy: .unbounded)
        events = stream
        let transfer = UncheckedTransfer(socket)
        let thread = Thread {
            let socket = transfer.value
            let poller = ZMQPoller()
            poller.add(fileDescriptor: waker.fileDescriptor)
            poller.add(socket)
            receiving: while !stopped.value {
                do {
                    let ready = try poller.poll(timeout: nil)
                    if ready.contains(0) { waker.drain() }
                    while let frames = try socket.receive(dontWait: true) {
                        guard frames.count == 2, let event = try? WireEvent(serializedBytes: frames[1]) else {
                            logger.notice("events.frame.dropped", metadata: ["events.frames": "\(frames.count)"])
                            continue
                        }
                        continuation.yield(ReceivedEvent(topic: String(decoding: frames[0], as: UTF8.self), event: event))
                    }
                } catch {
                    break receiving
                }
            }
            socket.close()
            continuation.finish()
        }
        thread.name = "events"
        thread.start()
        continuation.onTermination = { [waker, stopped] _ in
            stopped.set()
            waker.wake()
        }
    }

    deinit { close() }

    /// Stops receiving and finishes the stream.
    public func close() {
        stopped.set()
        waker.wake()
    }
}

/// A flag that any thread may set and read.
final class StopFlag: Sendable {
    private let flag = Synchronization.Atomic<Bool>(false)
    var value: Bool { flag.load(ordering: .acquiring) }
    func set() { flag.store(true, ordering: .releasing) }
}
