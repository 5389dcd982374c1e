import Glibc
import Logging
import RPC

/// A small HTTP/1.1 server on a service's reactor thread, for the operations
/// port: health and readiness probes, Prometheus metrics, placement's status
/// page and its event stream. Routes run on the reactor thread, so they read
/// the service's state directly, with no locks and no hand-off.
///
/// Deliberately small: GET and HEAD of a path, no request bodies, one
/// request per connection (`Connection: close`), and streamed responses for
/// server-sent events. The listening socket and its connections are one epoll
/// set, polled by the reactor as one descriptor, as the RESP front door's.
public final class HTTPServer {
    public struct Limits: Sendable {
        /// Connections at once; more are closed at once.
        public var maxConnections = 256
        /// A request head larger than this is answered 431.
        public var maxHeadBytes = 16 << 10
        /// A client that has not sent its whole head by then is closed.
        public var headTimeout: Duration = .seconds(10)
        /// Unsent stream bytes beyond which a stream's client is closed.
        public var maxStreamBacklog = 1 << 20
        public init() {}
    }

    /// The address actually bound, `host:port`.
    public let address: String
    public let limits: Limits
    /// Runs before every route but those in `openPaths`: nil lets the request
    /// through, a response refuses it.
    public var authorize: (HTTPRequest) -> HTTPResponse? = { _ in nil }
    /// Paths `authorize` never sees (liveness and readiness probes).
    public var openPaths: Set<String> = []

    private let reactor: Reactor
    private let logger: Logger
    private let sockets: SocketSet
    private var routes: [String: (HTTPRequest) -> HTTPReply] = [:]
    private var connections: [Int32: Connection] = [:]
    private var sweepTimer: Int?
    private var readBuffer = [UInt8](repeating: 0, count: 16 << 10)

    private final class Connection {
        let fd: Int32
        let opened: ContinuousClock.Instant
        let peer: String
        var head: [UInt8] = []
        var output: [UInt8] = []
        var written = 0
        /// Set once the request was answered.
        var answered = false
        var stream: HTTPStream?
        var interest: (readable: Bool, writable: Bool)?

        init(fd: Int32, opened: ContinuousClock.Instant, peer: String) {
            self.fd = fd
            self.opened = opened
            self.peer = peer
        }
    }

    public init(reactor: Reactor, listen: String, option: String = "--http-listen", limits: Limits = Limits(),
                logger: Logger) throws(ListenError) {
        self.reactor = reactor
        self.limits = limits
        self.logger = logger
        sockets = try SocketSet(reactor: reactor, listen: listen, option: option, logger: logger)
        address = sockets.address
        sockets.onAccept = { [unowned self] fd in accepted(fd) }
        sockets.onReady = { [unowned self] fd, ready in
            guard let connection = connections[fd] else { return }
            if ready.readable { read(connection) }
            guard connections[fd] != nil else { return }
            if ready.closed && !ready.readable {
                drop(connection)
                return
            }
            if ready.writable { write(connection) }
        }
    }

    /// Answers GET and HEAD of `path` with `handler`.
    public func route(_ path: String, _ handler: @escaping (HTTPRequest) -> HTTPReply) {
        routes[path] = handler
    }

    /// Starts closing clients that are slow to send their request.
    public func start() {
        sweepTimer = reactor.every(.seconds(1)) { [unowned self] in sweepSlowClients() }
    }

    /// Closes every connection and the listening socket.
    public func shutdown() {
        if let sweepTimer { reactor.cancelTimer(sweepTimer) }
        for connection in Array(connections.values) { drop(connection) }
        sockets.close()
    }

    public var connectionCount: Int { connections.count }

    // MARK: Events

    private func accepted(_ fd: Int32) {
        guard connections.count < limits.maxConnections else {
            close(fd)
            return
        }
        let connection = Connection(fd: fd, opened: reactor.now, peer: ConnectionAddress.peer(of: fd) ?? "unknown")
        connections[fd] = connection
        watch(connection, readable: true, writable: false)
    }

    private func read(_ connection: Connection) {
        while true {
            let count = readBuffer.withUnsafeMutableBytes { Glibc.read(connection.fd, $0.baseAddress, $0.count) }
            if count == 0 {
                drop(connection)
                return
            }
            if count < 0 {
                if errno == EINTR { continue }
                if errno != EAGAIN && errno != EWOULDBLOCK { drop(connection) }
                return
            }
            // After the answer, what a client sends is ignored (a stream's
            // client only ever closes).
            guard !connection.answered else { continue }
            connection.head += readBuffer[0..<count]
            if let end = Self.headEnd(connection.head) {
                answer(connection, head: Array(connection.head[0..<end]))
                return
            }
            if connection.head.count > limits.maxHeadBytes {
                respond(connection, .text(431, "request head over \(limits.maxHeadBytes) bytes"), includeBody: true)
                return
            }
        }
    }

    private static func headEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for index in 0...(bytes.count - 4)
        where bytes[index] == 13 && bytes[index + 1] == 10 && bytes[index + 2] == 13 && bytes[index + 3] == 10 {
            return index
        }
        return nil
    }

    private func answer(_ connection: Connection, head: [UInt8]) {
        guard var request = HTTPRequest.parse(head: head) else {
            respond(connection, .text(400, "not an HTTP/1.x request"), includeBody: true)
            return
        }
        request.peer = connection.peer
        guard request.method == "GET" || request.method == "HEAD" else {
            respond(connection, .text(405, "only GET and HEAD", headers: [("Allow", "GET, HEAD")]), includeBody: true)
            return
        }
        let includeBody = request.method == "GET"
        guard let route = routes[request.path] else {
            respond(connection, .text(404, "no such path: \(request.path)"), includeBody: includeBody)
            return
        }
        if !openPaths.contains(request.path), let refusal = authorize(request) {
            logger.notice("http.refused", metadata: ["http.peer": "\(request.peer)", "http.path": "\(request.path)",
                                                     "http.status": "\(refusal.status)"])
            respond(connection, refusal, includeBody: includeBody)
            return
        }
        switch route(request) {
        case .response(let response):
            respond(connection, response, includeBody: includeBody)
        case .stream(let contentType, let open):
            connection.answered = true
            connection.output = HTTPResponse.head(status: 200, contentType: contentType, headers: [], length: nil)
            guard includeBody else {
                connection.stream = nil
                write(connection)
                return
            }
            let stream = HTTPStream { [weak self, weak connection] in
                guard let self, let connection else { return }
                write(connection)
            }
            connection.stream = stream
            open(stream)
            write(connection)
        }
    }

    private func respond(_ connection: Connection, _ response: HTTPResponse, includeBody: Bool) {
        connection.answered = true
        connection.output = response.encoded(includeBody: includeBody)
        write(connection)
    }

    private func write(_ connection: Connection) {
        if let stream = connection.stream, !stream.pending.isEmpty {
            connection.output += stream.pending
            stream.pending.removeAll(keepingCapacity: true)
        }
        while connection.written < connection.output.count {
            let count = connection.output.withUnsafeBytes {
                Glibc.write(connection.fd, $0.baseAddress! + connection.written, $0.count - connection.written)
            }
            if count < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK { break }
                drop(connection)
                return
            }
            connection.written += count
        }
        if connection.written == connection.output.count {
            connection.output.removeAll(keepingCapacity: true)
            connection.written = 0
            if connection.stream == nil {
                drop(connection)
                return
            }
        } else if connection.output.count - connection.written > limits.maxStreamBacklog {
            logger.notice("http.stream.dropped", metadata: ["http.peer": "\(connection.peer)",
                                                            "http.reason": "over \(limits.maxStreamBacklog) bytes unread"])
            drop(connection)
            return
        }
        // A stream keeps reading (to see its client close).
        watch(connection, readable: connection.stream != nil || !connection.answered, writable: !connection.output.isEmpty)
    }

    private func watch(_ connection: Connection, readable: Bool, writable: Bool) {
        if let interest = connection.interest, interest == (readable, writable) { return }
        sockets.watch(connection.fd, readable: readable, writable: writable, add: connection.interest == nil)
        connection.interest = (readable, writable)
    }

    private func sweepSlowClients() {
        let now = reactor.now
        for connection in Array(connections.values) where !connection.answered && now - connection.opened > limits.headTimeout {
            drop(connection)
        }
    }

    private func drop(_ connection: Connection) {
        guard connections.removeValue(forKey: connection.fd) != nil else { return }
        sockets.forget(connection.fd)
        close(connection.fd)
        if let stream = connection.stream {
            stream.isOpen = false
            connection.stream = nil
            stream.onClose()
        }
    }
}
