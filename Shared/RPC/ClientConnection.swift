import Foundation
import Logging
import Synchronization
import ZeroMQ

/// The outcome of one attempt of one request.
enum AttemptResult: Sendable {
    case reply(Envelope.Reply)
    /// The request never left this process: no connection before its deadline
    /// (or before the time it may wait for one).
    case notSent
    /// Sent, but no reply before the deadline.
    case timedOut
    /// Sent, then the connection dropped before a reply: it may have been applied.
    case disconnected
    case closed
    case cancelled
}

/// One DEALER socket and the thread that owns it, multiplexing any number of
/// requests in flight; callers on other threads hand requests over through a
/// locked queue and a waker, and get their replies matched by request id.
/// The socket is watched (`zmq_socket_monitor`): a dropped connection ends the
/// requests sent on it at once (``AttemptResult/disconnected``) instead of at
/// their deadline.
final class ClientConnection: Sendable {
    struct Outgoing: Sendable {
        let id: UInt64
        let frames: [ZMQFrame]
        /// Until when the request may wait for a connection (then `.notSent`).
        let sendBy: ContinuousClock.Instant
        /// Until when a sent request waits for its reply (then `.timedOut`).
        let deadline: ContinuousClock.Instant
        let continuation: CheckedContinuation<AttemptResult, Never>
    }

    private struct Shared {
        var outbox: [Outgoing] = []
        var cancelled: [UInt64] = []
        var closed = false
        var nextID: UInt64 = 0
    }

    let endpoint: String
    private let shared = Mutex(Shared())
    private let waker: Waker

    init(context: ZMQContext, endpoint: String, logger: Logger, security: ClientSecurity?) throws(ZMQError) {
        self.endpoint = endpoint
        waker = try Waker()
        // Create and connect the socket here so that a bad endpoint fails the
        // constructor; then hand it to its owning thread for good.
        let (socket, monitor) = try ZMQSocket.connectedDealer(context: context, endpoint: endpoint, security: security)
        let loop = ClientLoop(socket: socket, monitor: monitor, waker: waker, logger: logger, endpoint: endpoint)
        let transfer = UncheckedTransfer(loop)
        let thread = Thread { [self] in transfer.value.run(connection: self) }
        thread.name = "rpc-client \(endpoint)"
        thread.start()
    }

    /// A request id unique on this connection, never 0.
    func nextRequestID() -> UInt64 {
        shared.withLock { state in
            state.nextID &+= 1
            if state.nextID == 0 { state.nextID = 1 }
            return state.nextID
        }
    }

    func submit(_ outgoing: Outgoing) {
        let accepted = shared.withLock { state in
            guard !state.closed else { return false }
            state.outbox.append(outgoing)
            return true
        }
        if accepted { waker.wake() } else { outgoing.continuation.resume(returning: .closed) }
    }

    func cancel(_ id: UInt64) {
        shared.withLock { $0.cancelled.append(id) }
        waker.wake()
    }

    func close() {
        shared.withLock { $0.closed = true }
        waker.wake()
    }

    fileprivate func take() -> (outbox: [Outgoing], cancelled: [UInt64], closed: Bool) {
        shared.withLock { state in
            defer {
                state.outbox.removeAll()
                state.cancelled.removeAll()
            }
            return (state.outbox, state.cancelled, state.closed)
        }
    }
}

/// Moves a non-Sendable value to the one thread that will own it from now on.
struct UncheckedTransfer<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

/// The state owned by a connection's thread.
private final class ClientLoop {
    let socket: ZMQSocket
    let monitor: ZMQSocketMonitor?
    let waker: Waker
    let logger: Logger
    let endpoint: String
    var pending: [UInt64: ClientConnection.Outgoing] = [:]
    var unsent: [ClientConnection.Outgoing] = []
    /// Cancellations that arrived before their request (a task cancelled early).
    var earlyCancels: Set<UInt64> = []
    let clock = ContinuousClock()

    init(socket: ZMQSocket, monitor: ZMQSocketMonitor?, waker: Waker, logger: Logger, endpoint: String) {
        self.socket = socket
        self.monitor = monitor
        self.waker = waker
        self.logger = logger
        self.endpoint = endpoint
    }

    func run(connection: ClientConnection) {
        let poller = ZMQPoller()
        poller.add(fileDescriptor: waker.fileDescriptor)
        let dealer = poller.add(socket)
        let events = monitor.map { poller.add($0.socket) }
        var closing = false
        while !closing {
            poller.setEvents(unsent.isEmpty ? .readable : [.readable, .writable], at: dealer)
            let nearest = [pending.values.lazy.map(\.deadline).min(), unsent.lazy.map(\.sendBy).min()].compactMap { $0 }.min()
            let timeout = nearest.map { max(.zero, $0 - clock.now) }
            do {
                let ready = try poller.poll(timeout: timeout)
                if ready.contains(0) {
                    waker.drain()
                    let work = connection.take()
                    for item in work.outbox {
                        if earlyCancels.remove(item.id) != nil {
                            item.continuation.resume(returning: .cancelled)
                        } else {
                            unsent.append(item)
                        }
                    }
                    for id in work.cancelled { cancel(id) }
                    closing = work.closed
                }
                try flushUnsent()
                if ready.contains(dealer) { try receiveReplies() }
                if let events, ready.contains(events) { try readConnectionEvents() }
            } catch {
                if error != .terminated { logger.error("rpc.client.failed", metadata: ["rpc.error": "\(error)"]) }
                closing = true
            }
            expire()
        }
        for item in unsent { item.continuation.resume(returning: .closed) }
        for item in pending.values { item.continuation.resume(returning: .closed) }
        unsent.removeAll()
        pending.removeAll()
        monitor?.close()
        socket.close()
    }

    /// A dropped connection ends what was sent on it (replies that arrived
    /// before the drop are taken first); unsent requests wait for the reconnect.
    private func readConnectionEvents() throws(ZMQError) {
        guard let monitor else { return }
        var dropped = false
        while let event = try monitor.next() {
            if event.kind == .disconnected { dropped = true }
        }
        guard dropped else { return }
        try receiveReplies()
        guard !pending.isEmpty else { return }
        logger.info("rpc.client.disconnected", metadata: ["rpc.endpoint": "\(endpoint)", "rpc.requests_failed": "\(pending.count)"])
        for id in pending.keys.sorted() {
            pending.removeValue(forKey: id)?.continuation.resume(returning: .disconnected)
        }
    }

    private func cancel(_ id: UInt64) {
        if let item = pending.removeValue(forKey: id) {
            item.continuation.resume(returning: .cancelled)
        } else if let index = unsent.firstIndex(where: { $0.id == id }) {
            unsent.remove(at: index).continuation.resume(returning: .cancelled)
        } else {
            earlyCancels.insert(id)
        }
    }

    private func flushUnsent() throws(ZMQError) {
        var sent = 0
        for item in unsent {
            guard try socket.send(item.frames, dontWait: true) else { break }
            pending[item.id] = item
            sent += 1
        }
        if sent > 0 { unsent.removeFirst(sent) }
    }

    private func receiveReplies() throws(ZMQError) {
        while let frames = try socket.receive(dontWait: true) {
            guard let reply = Envelope.parseReply(frames) else {
                logger.notice("rpc.client.reply.malformed", metadata: ["rpc.frames": "\(frames.count)"])
                continue
            }
            guard let item = pending.removeValue(forKey: reply.header.requestID) else {
                // A reply to a request that timed out or was cancelled.
                logger.debug("rpc.client.reply.late", metadata: ["rpc.request_id": "\(reply.header.requestID)"])
                continue
            }
            item.continuation.resume(returning: .reply(reply))
        }
    }

    private func expire() {
        let now = clock.now
        for (id, item) in pending where item.deadline <= now {
            pending[id] = nil
            item.continuation.resume(returning: .timedOut)
        }
        if unsent.contains(where: { $0.sendBy <= now }) {
            for item in unsent where item.sendBy <= now {
                item.continuation.resume(returning: .notSent)
            }
            unsent.removeAll { $0.sendBy <= now }
        }
    }
}
