import CEventLoop
import Glibc
import Logging
import RPC

/// A listening TCP socket and its connections in one epoll set, which a
/// reactor polls as one of its descriptors, next to its ZeroMQ sockets: the
/// loop the RESP front door and the HTTP port share. The owner decides what
/// a connection is and what to do when it is ready; this set accepts, and
/// says which descriptor is ready for what. Level-triggered.
public final class SocketSet {
    public struct Readiness: Sendable {
        public let readable: Bool
        public let writable: Bool
        /// An error or a hang-up (there may still be bytes to read).
        public let closed: Bool
    }

    /// The address actually bound, `host:port`.
    public let address: String
    /// A new connection: non-blocking, close-on-exec, TCP_NODELAY; not watched yet.
    public var onAccept: (Int32) -> Void = { Glibc.close($0) }
    /// A watched connection is ready.
    public var onReady: (Int32, Readiness) -> Void = { _, _ in }
    private let listener: Int32
    private let epoll: Int32
    private let reactor: Reactor
    private let logger: Logger
    private var fds = [Int32](repeating: 0, count: 64)
    private var events = [Int32](repeating: 0, count: 64)

    /// Listens on `listen` (`HOST:PORT`; `option` names it in errors) and
    /// joins `reactor`'s poll.
    public init(reactor: Reactor, listen: String, option: String, logger: Logger) throws(ListenError) {
        self.reactor = reactor
        self.logger = logger
        (listener, address) = try ListeningSocket.open(listen, option: option)
        epoll = ringstore_epoll_create()
        guard epoll >= 0 else {
            let error = errno
            Glibc.close(listener)
            throw ListenError("\(option): epoll_create1: errno \(error)")
        }
        _ = ringstore_epoll_watch(epoll, listener, Int32(RINGSTORE_READABLE), 1)
        reactor.addReader(fileDescriptor: epoll) { [unowned self] in poll() }
    }

    /// Watches `fd` for what is asked (`add` the first time, then changes).
    public func watch(_ fd: Int32, readable: Bool, writable: Bool, add: Bool) {
        let interest = (readable ? Int32(RINGSTORE_READABLE) : 0) | (writable ? Int32(RINGSTORE_WRITABLE) : 0)
        _ = ringstore_epoll_watch(epoll, fd, interest, add ? 1 : 0)
    }

    /// Stops watching `fd` (the owner closes it).
    public func forget(_ fd: Int32) {
        _ = ringstore_epoll_forget(epoll, fd)
    }

    /// Leaves the reactor's poll and closes the listening socket (the
    /// connections are the owner's to close).
    public func close() {
        reactor.removeReader(fileDescriptor: epoll)
        Glibc.close(listener)
        Glibc.close(epoll)
    }

    private func poll() {
        while true {
            let count = Int(ringstore_epoll_ready(epoll, &fds, &events, Int32(fds.count)))
            guard count > 0 else { return }
            for index in 0..<count {
                let fd = fds[index], ready = events[index]
                if fd == listener {
                    acceptAll()
                } else {
                    onReady(fd, Readiness(readable: ready & Int32(RINGSTORE_READABLE) != 0,
                                          writable: ready & Int32(RINGSTORE_WRITABLE) != 0,
                                          closed: ready & Int32(RINGSTORE_CLOSED) != 0))
                }
            }
            if count < fds.count { return }
        }
    }

    private func acceptAll() {
        while true {
            let fd = ringstore_accept_nonblocking(listener)
            if fd < 0 {
                if errno != EAGAIN && errno != EWOULDBLOCK {
                    logger.warning("socket.accept.failed", metadata: ["socket.address": "\(address)", "socket.errno": "\(errno)"])
                }
                return
            }
            onAccept(fd)
        }
    }
}
