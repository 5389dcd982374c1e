import Glibc
import Logging
import RESP
import RPC
import ServiceHost

/// The TCP side of the RESP front door, on the node's reactor thread: a
/// listening socket and every client connection in one epoll set, which the
/// reactor polls as a single descriptor next to its ZeroMQ sockets. Commands
/// run on the same thread as the coordinator they call, with no hand-off.
///
/// Level-triggered: a connection is read while it has bytes and room for
/// more commands in flight; replies are written at the end of each reactor
/// turn (one write for a turn's pipelined replies), and what the kernel does
/// not take waits for EPOLLOUT.
final class RESPListener {
    struct Limits {
        /// Connections at once; one more is told so and closed.
        var maxClients = 10_000
        /// Commands of one connection waiting for their replies; reading
        /// stops at this many and resumes at half. It bounds what one
        /// connection's replies can hold (128 reads of the largest value)
        /// and is far above what pipelining needs to keep the node busy.
        var maxInFlight = 128
        /// Unsent reply bytes at which a connection is no longer read (a
        /// client that sends and never reads holds this much at most, plus
        /// the replies of its commands in flight).
        var pauseReadingAtOutputBytes = 4 << 20
        /// Unsent reply bytes beyond which a connection is closed.
        var maxOutputBytes = 256 << 20
        /// Bytes read from one connection per reactor turn, so that one
        /// pipelining client does not starve the others.
        var readPerTurn = 256 << 10
    }

    /// The address actually bound (`host:port`).
    let address: String
    let limits: Limits
    private let reactor: Reactor
    private let logger: Logger
    private let sockets: SocketSet
    private var connections: [Int32: RESPConnection] = [:]
    private var dirty: Set<Int32> = []
    /// Where every connection's bytes are read into (one buffer, reused).
    private var readBuffer = [UInt8](repeating: 0, count: 64 << 10)
    private var nextID: Int64 = 0
    private let makeParser: () -> RESPParser
    /// Runs each command a connection read; the reply goes to the connection.
    var execute: (RESPConnection, [[UInt8]]) -> Void = { connection, _ in connection.reply { $0.error("ERR not ready") } }
    /// Connections accepted since start, for INFO.
    private(set) var acceptedTotal = 0

    var clientCount: Int { connections.count }

    init(reactor: Reactor, listen: String, limits: Limits = Limits(), logger: Logger,
         makeParser: @escaping () -> RESPParser) throws {
        self.reactor = reactor
        self.limits = limits
        self.logger = logger
        self.makeParser = makeParser
        sockets = try SocketSet(reactor: reactor, listen: listen, option: "--resp-listen", logger: logger)
        address = sockets.address
        sockets.onAccept = { [unowned self] fd in accepted(fd) }
        sockets.onReady = { [unowned self] fd, ready in
            guard let connection = connections[fd] else { return }
            if ready.closed && !ready.readable {
                drop(connection, reason: nil)
                return
            }
            if ready.writable { write(connection) }
            if ready.readable && connections[fd] != nil { read(connection) }
        }
        reactor.onTurnEnd { [unowned self] in flushDirty() }
    }

    /// Closes every connection and the listening socket.
    func shutdown() {
        for connection in Array(connections.values) { drop(connection, reason: nil) }
        sockets.close()
    }

    // MARK: Events

    private func accepted(_ fd: Int32) {
        if connections.count >= limits.maxClients {
            let refusal = Array("-ERR max number of clients reached\r\n".utf8)
            _ = refusal.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            close(fd)
            return
        }
        nextID += 1
        acceptedTotal += 1
        let connection = RESPConnection(id: nextID, fd: fd, parser: makeParser(), peer: ConnectionAddress.peer(of: fd) ?? "unknown")
        connection.onReply = { [unowned self] connection in dirty.insert(connection.fd) }
        connections[fd] = connection
        sockets.watch(fd, readable: true, writable: false, add: true)
        connection.interest = (true, false)
    }

    private func read(_ connection: RESPConnection) {
        var budget = limits.readPerTurn
        while budget > 0 && mayRead(connection) {
            let count = readBuffer.withUnsafeMutableBytes { Glibc.read(connection.fd, $0.baseAddress, min($0.count, budget)) }
            if count == 0 {
                // The client closed its side: answer what it sent, then close.
                connection.peerClosed = true
                break
            }
            if count < 0 {
                if errno == EINTR { continue }
                if errno != EAGAIN && errno != EWOULDBLOCK { drop(connection, reason: nil); return }
                break
            }
            budget -= count
            readBuffer.withUnsafeBytes { connection.parser.append(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
            runCommands(connection)
            if connections[connection.fd] == nil { return }
        }
        runCommands(connection)
        updateInterest(connection)
        if connection.peerClosed && connection.inFlight == 0 && connection.unsent == 0 { drop(connection, reason: nil) }
    }

    /// Parses and runs what the connection has buffered, while it has room.
    private func runCommands(_ connection: RESPConnection) {
        while !connection.closing && hasRoom(connection) {
            let command: [[UInt8]]
            do {
                guard let next = try connection.parser.next() else { return }
                command = next
            } catch {
                // As Redis: say what was wrong, then close once it is sent.
                connection.reply { $0.error("ERR \(error.message)") }
                connection.closing = true
                logger.notice("resp.protocol_error", metadata: ["resp.peer": "\(connection.peer)", "resp.error": "\(error.message)"])
                return
            }
            execute(connection, command)
        }
    }

    private func flushDirty() {
        guard !dirty.isEmpty else { return }
        let fds = dirty
        dirty.removeAll(keepingCapacity: true)
        for fd in fds {
            guard let connection = connections[fd] else { continue }
            write(connection)
        }
    }

    private func write(_ connection: RESPConnection) {
        connection.collectReplies()
        while connection.unsent > 0 {
            let count = connection.withUnsent { bytes in Glibc.write(connection.fd, bytes.baseAddress, bytes.count) }
            if count < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK { break }
                drop(connection, reason: nil)
                return
            }
            connection.sent(count)
        }
        if connection.unsent > limits.maxOutputBytes {
            drop(connection, reason: "output buffer over \(limits.maxOutputBytes) bytes (a client that does not read)")
            return
        }
        if connection.unsent == 0 && connection.inFlight == 0 && (connection.closing || connection.peerClosed) {
            drop(connection, reason: nil)
            return
        }
        updateInterest(connection)
        // Room again after a full window: read what waited in the kernel.
        if !connection.closing && connection.inFlight <= limits.maxInFlight / 2 && connection.parser.buffered > 0 {
            runCommands(connection)
            updateInterest(connection)
        }
    }

    /// Whether the connection is read now: not closing, room for commands,
    /// and its replies are being taken.
    private func mayRead(_ connection: RESPConnection) -> Bool {
        !connection.closing && !connection.peerClosed && hasRoom(connection)
    }

    /// Room for another command: fewer in flight than the limit, and than
    /// its typical reply fits in the output allowance (a client reading
    /// 512 KB values gets 8 at a time, one reading small values 128), and the
    /// replies so far are being taken.
    private func hasRoom(_ connection: RESPConnection) -> Bool {
        let fitting = max(1, limits.pauseReadingAtOutputBytes / max(1, connection.typicalReplyBytes))
        return connection.inFlight < min(limits.maxInFlight, fitting) && connection.unsent < limits.pauseReadingAtOutputBytes
    }

    private func updateInterest(_ connection: RESPConnection) {
        let wanted = (readable: mayRead(connection), writable: connection.unsent > 0)
        guard wanted != connection.interest else { return }
        connection.interest = wanted
        sockets.watch(connection.fd, readable: wanted.readable, writable: wanted.writable, add: false)
    }

    /// Closes every connection `matches` picks.
    func drop(where matches: (RESPConnection) -> Bool, reason: String) {
        for connection in connections.values where matches(connection) { drop(connection, reason: reason) }
    }

    private func drop(_ connection: RESPConnection, reason: String?) {
        if let reason { logger.notice("resp.client.closed", metadata: ["resp.peer": "\(connection.peer)", "resp.reason": "\(reason)"]) }
        connections[connection.fd] = nil
        dirty.remove(connection.fd)
        sockets.forget(connection.fd)
        close(connection.fd)
        connection.closed = true
    }
}
