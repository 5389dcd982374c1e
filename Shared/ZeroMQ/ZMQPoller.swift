import Basics
import CZeroMQ

/// What a poller waits for on an item.
public struct ZMQPollEvents: OptionSet, Sendable {
    public let rawValue: Int16
    public init(rawValue: Int16) { self.rawValue = rawValue }

    /// A message (or data) can be received without blocking.
    public static let readable = ZMQPollEvents(rawValue: ringstore_zmq_pollin())
    /// A message can be sent without blocking (for DEALER with `immediate`: connected).
    public static let writable = ZMQPollEvents(rawValue: ringstore_zmq_pollout())
}

/// Waits until any of a set of sockets or file descriptors is ready.
///
/// A poller belongs to the thread that owns its sockets. Items are identified
/// by the index `add` returned; `poll` reports which indices are ready.
public final class ZMQPoller {
    private var items: [zmq_pollitem_t] = []
    // Keeps the polled sockets alive (and their handles valid) while registered.
    private var sockets: [ZMQSocket?] = []

    public init() {}

    /// Watches `socket` for `events` (by default incoming messages); returns its index.
    @discardableResult
    public func add(_ socket: ZMQSocket, events: ZMQPollEvents = .readable) -> Int {
        items.append(zmq_pollitem_t(socket: socket.rawHandle, fd: -1, events: events.rawValue, revents: 0))
        sockets.append(socket)
        return items.count - 1
    }

    /// Watches a plain file descriptor (an eventfd, a pipe) for readability.
    @discardableResult
    public func add(fileDescriptor fd: Int32) -> Int {
        items.append(zmq_pollitem_t(socket: nil, fd: fd, events: ringstore_zmq_pollin(), revents: 0))
        sockets.append(nil)
        return items.count - 1
    }

    /// Stops watching the item at `index`; the items after it move down by one.
    public func remove(at index: Int) {
        items.remove(at: index)
        sockets.remove(at: index)
    }

    /// The index of the plain file descriptor `fd`, if it is watched.
    public func index(ofFileDescriptor fd: Int32) -> Int? {
        items.indices.first { items[$0].socket == nil && items[$0].fd == fd }
    }

    /// The index of `socket`, if it is watched.
    public func index(of socket: ZMQSocket) -> Int? {
        sockets.firstIndex { $0 === socket }
    }

    /// Changes what the item at `index` is watched for.
    public func setEvents(_ events: ZMQPollEvents, at index: Int) {
        items[index].events = events.rawValue
    }

    /// The number of registered items.
    public var count: Int { items.count }

    /// Blocks until an item is ready or `timeout` passes (`nil`: no limit).
    /// Returns the ready indices, empty on timeout; `readyEvents(at:)` tells which
    /// events fired. Throws `ZMQError.terminated`
    /// once the context is shut down, which ends a reactor loop.
    public func poll(timeout: Duration?) throws(ZMQError) -> [Int] {
        let milliseconds: Int
        if let timeout {
            milliseconds = Int(max(0, min(timeout.millisecondsRoundedUp, Int64(Int32.max))))
        } else {
            milliseconds = -1
        }
        let count = Int32(items.count)
        let ready = try zmqCall("zmq_poll") {
            items.withUnsafeMutableBufferPointer { buffer in zmq_poll(buffer.baseAddress, count, milliseconds) }
        }
        guard ready > 0 else { return [] }
        var indices: [Int] = []
        indices.reserveCapacity(Int(ready))
        for index in items.indices where items[index].revents != 0 {
            indices.append(index)
        }
        return indices
    }

    /// The events that fired for `index` in the last `poll`.
    public func readyEvents(at index: Int) -> ZMQPollEvents {
        ZMQPollEvents(rawValue: items[index].revents)
    }
}
