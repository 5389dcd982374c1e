import Logging
import Synchronization
import ZeroMQ

/// A single-threaded event loop: it polls its sockets and timers and runs the
/// handlers registered for them, all on the thread that calls `run()`.
///
/// Every socket a reactor polls is owned by that thread. Other threads talk to
/// the reactor only through its `ReactorHandle` (post work, stop), which wakes
/// the loop through an eventfd.
public final class Reactor {
    public let context: ZMQContext
    public let logger: Logger
    public let handle: ReactorHandle
    private let poller = ZMQPoller()
    private var readers: [() -> Void] = []
    private var timers: [ReactorTimer] = []
    private var turnEndHandlers: [() -> Void] = []
    private var removals: [ZMQSocket] = []
    private var removedDescriptors: [Int32] = []
    private var nextTimerID = 0
    private let clock = ContinuousClock()

    /// The service this reactor runs (`placement`, `lock`, `node`): the
    /// `service` label of its metrics.
    public let service: String

    /// Creates a reactor; call it on the thread that will run it.
    public init(context: ZMQContext, logger: Logger, service: String = "ringstore") throws(ZMQError) {
        self.context = context
        self.logger = logger
        self.service = service
        self.handle = try ReactorHandle()
        readers.append({})
        poller.add(fileDescriptor: handle.waker.fileDescriptor)
    }

    /// Calls `onReadable` whenever `socket` has a message; the handler should
    /// drain what is waiting (with `dontWait`).
    public func addReader(_ socket: ZMQSocket, onReadable: @escaping () -> Void) {
        poller.add(socket)
        readers.append(onReadable)
    }

    /// Calls `onReadable` whenever the plain file descriptor `fd` (an epoll
    /// set, a listening socket) is readable; the handler should take what is
    /// waiting without blocking.
    public func addReader(fileDescriptor fd: Int32, onReadable: @escaping () -> Void) {
        poller.add(fileDescriptor: fd)
        readers.append(onReadable)
    }

    /// Stops calling the reader of `fd` from the end of the current turn; the
    /// caller closes it after that.
    public func removeReader(fileDescriptor fd: Int32) {
        removedDescriptors.append(fd)
    }

    /// Stops calling the reader of `socket`, from the end of the current turn
    /// (so that removing a reader from inside a handler is safe); the caller
    /// closes the socket after that.
    public func removeReader(_ socket: ZMQSocket) {
        removals.append(socket)
    }

    private func applyRemovals() {
        guard !removals.isEmpty || !removedDescriptors.isEmpty else { return }
        for socket in removals {
            guard let index = poller.index(of: socket) else { continue }
            poller.remove(at: index)
            readers.remove(at: index)
        }
        removals.removeAll()
        for fd in removedDescriptors {
            guard let index = poller.index(ofFileDescriptor: fd) else { continue }
            poller.remove(at: index)
            readers.remove(at: index)
        }
        removedDescriptors.removeAll()
    }

    /// Runs `body` at the end of every loop turn, after the turn's messages and
    /// timers: the place for group commit (one transaction, one fsync, for every
    /// write received in the turn) before the replies go out.
    public func onTurnEnd(_ body: @escaping () -> Void) {
        turnEndHandlers.append(body)
    }

    /// Runs `body` every `interval` on the reactor thread, first after one interval.
    /// Returns an id for `cancelTimer`.
    @discardableResult
    public func every(_ interval: Duration, _ body: @escaping () -> Void) -> Int {
        addTimer(at: clock.now + interval, interval: interval, body)
    }

    /// Runs `body` once after `delay` on the reactor thread. Returns an id for `cancelTimer`.
    @discardableResult
    public func after(_ delay: Duration, _ body: @escaping () -> Void) -> Int {
        addTimer(at: clock.now + delay, interval: nil, body)
    }

    /// Stops a timer; unknown ids are ignored.
    public func cancelTimer(_ id: Int) {
        timers.removeAll { $0.id == id }
    }

    private func addTimer(at deadline: ContinuousClock.Instant, interval: Duration?, _ body: @escaping () -> Void) -> Int {
        nextTimerID += 1
        timers.append(ReactorTimer(id: nextTimerID, deadline: deadline, interval: interval, body: body))
        return nextTimerID
    }

    /// The current time of the reactor's monotonic clock.
    public var now: ContinuousClock.Instant { clock.now }

    /// Runs the loop until `handle.stop()` is called or the context shuts down.
    public func run() throws(ZMQError) {
        logger.debug("reactor.started")
        while !handle.isStopped {
            let timeout = timers.lazy.map(\.deadline).min().map { max(.zero, $0 - clock.now) }
            let ready: [Int]
            do {
                ready = try poller.poll(timeout: timeout)
            } catch let error where error == .terminated {
                break
            }
            for index in ready {
                if index == 0 {
                    handle.waker.drain()
                    for work in handle.takePosted() { work(self) }
                } else {
                    readers[index]()
                }
            }
            fireDueTimers()
            for handler in turnEndHandlers { handler() }
            applyRemovals()
        }
        logger.debug("reactor.stopped")
    }

    private func fireDueTimers() {
        let now = clock.now
        guard timers.contains(where: { $0.deadline <= now }) else { return }
        let due = timers.filter { $0.deadline <= now }
        timers.removeAll { $0.deadline <= now && $0.interval == nil }
        for index in timers.indices where timers[index].deadline <= now {
            if let interval = timers[index].interval {
                // Skip missed ticks rather than firing a burst after a stall.
                var next = timers[index].deadline + interval
                while next <= now { next += interval }
                timers[index].deadline = next
            }
        }
        for timer in due { timer.body() }
    }
}

struct ReactorTimer {
    let id: Int
    var deadline: ContinuousClock.Instant
    let interval: Duration?
    let body: () -> Void
}

/// A weak reference to an object that lives on a reactor's thread, which any
/// thread (a signal watcher's, say) may hold: `post` runs work with the object
/// on the reactor thread, if the object still exists then. Holding it never
/// keeps the object alive, and the object is only ever touched on its thread.
public struct ReactorBound<Object: AnyObject>: @unchecked Sendable {
    private final class Box {
        weak var object: Object?
        init(_ object: Object) { self.object = object }
    }

    private let box: Box
    private let handle: ReactorHandle

    /// `object` belongs to `reactor`'s thread.
    public init(_ object: Object, on reactor: Reactor) {
        self.init(object, on: reactor.handle)
    }

    /// `object` belongs to the thread of the reactor `handle` posts to.
    public init(_ object: Object, on handle: ReactorHandle) {
        box = Box(object)
        self.handle = handle
    }

    /// Runs `work` with the object on the reactor thread at its next turn;
    /// nothing happens if the object is gone by then or the reactor stopped.
    public func post(_ work: @escaping @Sendable (Object) -> Void) {
        handle.post { [self] _ in
            if let object = box.object { work(object) }
        }
    }
}

/// The thread-safe side of a `Reactor`: post work to its thread, or stop it.
public final class ReactorHandle: Sendable {
    let waker: Waker
    private let state = Mutex<(posted: [@Sendable (Reactor) -> Void], stopped: Bool)>(([], false))

    init() throws(ZMQError) {
        waker = try Waker()
    }

    /// Runs `work` on the reactor thread at its next turn. Work posted after
    /// `stop()` is discarded.
    public func post(_ work: @escaping @Sendable (Reactor) -> Void) {
        let accepted = state.withLock { state in
            guard !state.stopped else { return false }
            state.posted.append(work)
            return true
        }
        if accepted { waker.wake() }
    }

    /// Asks the loop to end after its current turn; safe from any thread.
    public func stop() {
        state.withLock { $0.stopped = true }
        waker.wake()
    }

    /// Whether `stop()` was called.
    public var isStopped: Bool { state.withLock { $0.stopped } }

    func takePosted() -> [@Sendable (Reactor) -> Void] {
        state.withLock { state in
            let work = state.posted
            state.posted.removeAll()
            return work
        }
    }
}
